"""The private channel between the sandboxed runner and the grader: length-prefixed frames of raw arrays.

    write_frame(fd, {"part": "relu.forward"}, {"y": y})      # inside the sandbox (grading/runner.py)
    for meta, arrays in read_frames(fd):                       # the grader: meta is short text, arrays float64
        if "error" in meta: ...

    reader = FrameReader()                                     # the same, fed as bytes arrive (grading/sandbox.py)
    for meta, arrays in reader.feed(chunk): ...
    for meta, arrays in reader.close(): ...                    # a frame cut short comes back as an error frame

A frame is MAGIC (8 bytes), the header's length (4 bytes) and the payload's length (8 bytes), big-endian, then a
JSON header (a dict) and an .npz payload written by np.savez(allow_pickle=False). Reading never unpickles and never
raises: a frame that is malformed, oversized, truncated, or holds anything but plain numeric arrays (bool, int,
float) comes back as ({"error": "..."}, {}), and reading goes on at the next MAGIC. Every array comes back as a
float64 ndarray; the header's strings are cut to MAX_TEXT characters and anything that is not a number, a string,
a list or a dict becomes a string. A frame is never trusted beyond being raw numbers and short text.

This module runs on both sides: it needs only the standard library and NumPy.
"""

import io
import json
import math
import os
import struct
import zipfile

import numpy as np

MAGIC = b"\x93GRFRM1\n"
PREFIX = struct.Struct(">8sIQ")
MAX_HEADER = 256 * 1024
MAX_PAYLOAD = 256 * 2**20
MAX_ARRAYS = 256
MAX_NAME = 100
MAX_TEXT = 2000
MAX_ITEMS = 500          # entries of one list or dict in a header
NUMERIC = "biuf"         # the dtype kinds that come back (as float64)


def write_frame(fd, meta, arrays):
    """Write one frame of ``meta`` (a JSON-able dict; other values become strings) and ``arrays`` (name -> array)
    to the file descriptor ``fd``. Raises ValueError for a non-numeric array, a bad name or an oversized frame."""
    header = json.dumps(meta, default=str, allow_nan=True).encode("utf-8")
    if len(header) > MAX_HEADER:
        raise ValueError(f"the frame's header is {len(header)} bytes (the limit is {MAX_HEADER})")
    checked = {}
    for name, value in arrays.items():
        if not isinstance(name, str) or not name or len(name) > MAX_NAME:
            raise ValueError(f"array name {str(name)[:40]!r} is not a short string")
        array = np.asarray(value)
        if array.dtype.kind not in NUMERIC:
            raise ValueError(f"{name!r} is not a numeric array (dtype {array.dtype})")
        checked[name] = array
    if len(checked) > MAX_ARRAYS:
        raise ValueError(f"{len(checked)} arrays in one frame (the limit is {MAX_ARRAYS})")
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **checked)
    payload = buffer.getvalue()
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"the frame's arrays take {len(payload)} bytes (the limit is {MAX_PAYLOAD})")
    data = memoryview(PREFIX.pack(MAGIC, len(header), len(payload)) + header + payload)
    while data:
        data = data[os.write(fd, data):]


def error_frame(message):
    """The frame a reader gives for what it could not read."""
    return {"error": clean_text(message, 300)}, {}


def read_frames(source, max_payload=MAX_PAYLOAD):
    """Yield (meta, arrays) for each frame read from ``source`` (a file descriptor or a binary file) to its end;
    what cannot be read as a frame is yielded as an error frame, never raised."""
    reader = FrameReader(max_payload)
    while True:
        try:
            chunk = os.read(source, 1 << 20) if isinstance(source, int) else source.read(1 << 20)
        except (OSError, ValueError) as error:
            yield error_frame(f"the channel could not be read: {error}")
            break
        if not chunk:
            break
        yield from reader.feed(chunk)
    yield from reader.close()


class FrameReader:
    """Frames from a byte stream fed in chunks; holds at most one frame's bytes at a time."""

    def __init__(self, max_payload=MAX_PAYLOAD, max_header=MAX_HEADER):
        self.buffer = bytearray()
        self.max_payload, self.max_header = max_payload, max_header
        self.lost = False          # inside a run of bytes that are not a frame (reported once)

    def feed(self, chunk):
        """The frames completed by ``chunk`` (a list of (meta, arrays))."""
        self.buffer += chunk
        frames = []
        while True:
            if not self.resync(frames):
                return frames
            if len(self.buffer) < PREFIX.size:
                return frames
            _, header_len, payload_len = PREFIX.unpack_from(self.buffer)
            if header_len > self.max_header or payload_len > self.max_payload:
                frames.append(error_frame(f"a frame declares {header_len} + {payload_len} bytes (the limits are "
                                          f"{self.max_header} and {self.max_payload})"))
                del self.buffer[:len(MAGIC)]
                self.lost = True
                continue
            end = PREFIX.size + header_len + payload_len
            if len(self.buffer) < end:
                return frames
            header = bytes(self.buffer[PREFIX.size:PREFIX.size + header_len])
            payload = bytes(self.buffer[PREFIX.size + header_len:end])
            del self.buffer[:end]
            frames.append(decode(header, payload, self.max_payload))

    def resync(self, frames):
        """Drop bytes up to the next MAGIC (one error frame per run of stray bytes); False when none is held."""
        at = self.buffer.find(MAGIC)
        if at == 0:
            self.lost = False
            return True
        keep = len(MAGIC) - 1 if at < 0 else 0
        stray = len(self.buffer) - keep if at < 0 else at
        if stray > 0:
            if not self.lost:
                frames.append(error_frame("bytes that are not a frame on the channel"))
            self.lost = True
            del self.buffer[:stray]
        return at >= 0

    def close(self):
        """The error frame for bytes left at the end of the stream, if any."""
        left, self.buffer = len(self.buffer), bytearray()
        if left and not self.lost:
            return [error_frame(f"a frame cut short ({left} bytes at the end of the channel)")]
        return []


def decode(header, payload, max_payload=MAX_PAYLOAD):
    """(meta, arrays) of one frame's header and payload, or an error frame."""
    try:
        meta = json.loads(header.decode("utf-8"))
        if not isinstance(meta, dict):
            return error_frame("a frame's header is not a JSON object")
        meta = clean(meta)
        arrays = load_arrays(payload, max_payload)
    except NotNumbers as error:
        return error_frame(str(error))
    except Exception as error:  # noqa: BLE001 - whatever a forged frame triggers ends as an error frame
        return error_frame(f"a malformed frame ({type(error).__name__}: {error})")
    return meta, arrays


class NotNumbers(ValueError):
    """A payload holding something other than plain numeric arrays."""


def load_arrays(payload, max_payload=MAX_PAYLOAD):
    """name -> float64 array of an .npz payload, each member's .npy header checked before it is read."""
    if not payload:
        return {}
    arrays, total = {}, 0
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        members = archive.infolist()
        if len(members) > MAX_ARRAYS:
            raise NotNumbers(f"a frame holds {len(members)} arrays (the limit is {MAX_ARRAYS})")
        for info in members:
            name = info.filename[:-4] if info.filename.endswith(".npy") else ""
            if not name or len(name) > MAX_NAME:
                raise NotNumbers(f"a frame holds {clean_text(info.filename, 60)!r}, not a named .npy array")
            total += info.file_size
            if total > max_payload:
                raise NotNumbers(f"a frame's arrays unpack to over {max_payload} bytes")
            arrays[name] = load_member(archive.read(info), name)
    return arrays


def load_member(data, name):
    """One .npy member as float64, refused unless its header says a plain numeric array of exactly its size."""
    stream = io.BytesIO(data)
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
    else:
        raise NotNumbers(f"array {name!r} is in .npy format {version}, not 1.0 or 2.0")
    if dtype.hasobject or dtype.kind not in NUMERIC or dtype.names is not None or dtype.subdtype is not None:
        raise NotNumbers(f"array {name!r} is not a plain numeric array (dtype {clean_text(str(dtype), 60)})")
    if math.prod(shape) * dtype.itemsize != len(data) - stream.tell():
        raise NotNumbers(f"array {name!r} does not hold the {shape} its header says")
    return np.asarray(np.load(io.BytesIO(data), allow_pickle=False), dtype=np.float64)


def clean_text(value, limit=MAX_TEXT):
    """``value`` as a string of at most ``limit`` characters, without control characters but newlines."""
    text = value if isinstance(value, str) else str(value)
    text = "".join(c if c.isprintable() or c in "\n\t" else "?" for c in text[:limit + 1])
    return text if len(text) <= limit else text[:limit - 1] + "…"


def clean(value, depth=0):
    """A header value as short text: numbers and strings kept (strings cut), lists and dicts kept to a few levels
    and MAX_ITEMS entries, anything else made a string."""
    if value is None or isinstance(value, (bool, float)):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**63 else float(value)
    if isinstance(value, str):
        return clean_text(value)
    if depth < 4 and isinstance(value, list):
        return [clean(v, depth + 1) for v in value[:MAX_ITEMS]]
    if depth < 4 and isinstance(value, dict):
        return {clean_text(k, MAX_NAME): clean(v, depth + 1) for k, v in list(value.items())[:MAX_ITEMS]}
    return clean_text(json.dumps(value)[:MAX_TEXT + 1])
