"""The LMS's zips unpacked safely into the out folder: one folder per submission, nothing written anywhere else.

    result = unpack_zip(Path("CLASS/PA1_202412345_이경민.zip"), Path("graded/unpacked"))
    result.folder, result.status, result.notes       # graded/unpacked/PA1_202412345_이경민, "unpacked", [...]

Refused entries (each a note, the rest unpacked): a name with ``..`` or an absolute path, a symbolic link, a
device, FIFO or socket, an encrypted entry, a duplicate. Refused zips (status "refused", no folder): more than
MAX_ENTRIES entries, more than MAX_TOTAL bytes unpacked, or an entry that unpacks to more than MAX_RATIO times its
compressed size (a zip bomb: counted as the bytes come out, never trusting the sizes the zip declares). A zip
inside the zip is unpacked one level into a folder of its own name, within the same limits; deeper ones are left
packed, noted. "not a zip", "empty" and "encrypted" (every entry) are statuses of their own. Names are decoded as
their writer meant: UTF-8 when the zip's flag says so, else UTF-8 when the bytes are valid UTF-8 and not ASCII
(Linux and macOS tools that omit the flag), else CP949 (Korean Windows tools; a superset of EUC-KR) when that
decodes, else CP437, the zip format's default.
"""

import dataclasses
import io
import os
import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath

MAX_ENTRIES = 2000
MAX_TOTAL = 256 << 20       # bytes unpacked per submission
MAX_RATIO = 200             # unpacked / compressed, per entry (text compresses ~4-10x; a bomb ~1000x)
RATIO_FLOOR = 1 << 20       # entries unpacking to less than this are not held to MAX_RATIO
CHUNK = 1 << 16
UTF8_FLAG = 0x800
ENCRYPTED_FLAG = 0x1


class Refused(Exception):
    """The whole zip is refused: the message is its note."""


@dataclasses.dataclass
class Unpacked:
    name: str                   # the submission's name: the zip's file name without .zip
    folder: Path = None         # where it was unpacked (None when refused)
    status: str = "unpacked"    # unpacked, refused, not a zip, empty, encrypted
    notes: list = dataclasses.field(default_factory=list)
    files: int = 0
    size: int = 0


def decoded_name(info):
    """The entry's name as its writer meant it (see the module's docstring)."""
    if info.flag_bits & UTF8_FLAG:
        return info.filename
    raw = info.filename.encode("cp437")       # zipfile decoded the bytes as CP437: undo that
    if not raw.isascii():
        for encoding in ("utf-8", "cp949"):
            try:
                return raw.decode(encoding)
            except UnicodeDecodeError:
                continue
    return info.filename


def safe_parts(name):
    """The path parts of an entry's name, or None when it is absolute or climbs out (``..``)."""
    name = name.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return None
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
    if any(p == ".." for p in parts):
        return None
    return parts


def kind_of(info):
    """"file", "folder", "link" or "special" from the entry's Unix mode (where the zip was written on Unix)."""
    mode = info.external_attr >> 16
    if info.is_dir() or stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISLNK(mode):
        return "link"
    if mode and stat.S_IFMT(mode) and not stat.S_ISREG(mode):
        return "special"
    return "file"


class Budget:
    """What one submission may still unpack: entries and bytes."""

    def __init__(self):
        self.entries, self.bytes = MAX_ENTRIES, MAX_TOTAL

    def take_entry(self):
        self.entries -= 1
        if self.entries < 0:
            raise Refused(f"refused: more than {MAX_ENTRIES} entries (a zip bomb or a whole dataset?)")


def copy_entry(archive, info, target, budget):
    """Stream one entry to ``target``, counting the bytes as they come out; a bomb raises Refused."""
    written = 0
    limit_ratio = max(RATIO_FLOOR, MAX_RATIO * max(info.compress_size, 1))
    with archive.open(info) as source, open(target, "xb") as out:
        while True:
            chunk = source.read(CHUNK)
            if not chunk:
                break
            written += len(chunk)
            budget.bytes -= len(chunk)
            if budget.bytes < 0:
                raise Refused(f"refused: it unpacks to more than {MAX_TOTAL >> 20} MiB (a zip bomb?)")
            if written > limit_ratio:
                raise Refused(f"refused: {decoded_name(info)} unpacks to more than {MAX_RATIO} times its packed "
                              f"size ({info.compress_size} bytes): a zip bomb")
            out.write(chunk)
    return written


def extract(archive, dest, budget, notes, depth, label=""):
    """Unpack ``archive`` (a ZipFile) into ``dest``; the counts of files and bytes; notes for what was left."""
    files = size = 0
    infos = archive.infolist()
    if len(infos) > budget.entries:
        raise Refused(f"refused: {len(infos)} entries (the limit is {MAX_ENTRIES})")
    seen = set()
    for info in infos:
        budget.take_entry()
        name = decoded_name(info)
        shown = f"{label}{name}"
        parts, kind = safe_parts(name), kind_of(info)
        if parts is None:
            notes.append(f"left out {shown!r}: its path leaves the submission's folder")
            continue
        if kind in ("link", "special"):
            notes.append(f"left out {shown!r}: a {'symbolic link' if kind == 'link' else 'device, FIFO or socket'}")
            continue
        if not parts or kind == "folder":
            continue
        if info.flag_bits & ENCRYPTED_FLAG:
            notes.append(f"left out {shown!r}: encrypted")
            continue
        target = dest.joinpath(*parts)
        key = "/".join(parts).lower()
        if key in seen:
            notes.append(f"left out {shown!r}: a second entry of that name")
            continue
        seen.add(key)
        if not target.resolve().is_relative_to(dest.resolve()):
            notes.append(f"left out {shown!r}: its path leaves the submission's folder")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.parent.is_symlink() or target.exists():
            notes.append(f"left out {shown!r}: a second entry of that name")
            continue
        if name.lower().endswith(".zip") and depth == 0:
            data = io.BytesIO()
            with archive.open(info) as source:      # held to the same limits as a file
                data_len = 0
                while chunk := source.read(CHUNK):
                    data_len += len(chunk)
                    budget.bytes -= len(chunk)
                    if budget.bytes < 0 or data_len > max(RATIO_FLOOR, MAX_RATIO * max(info.compress_size, 1)):
                        raise Refused(f"refused: the zip inside it, {name}, unpacks past the limits (a zip bomb)")
                    data.write(chunk)
            try:
                with zipfile.ZipFile(data) as inner:
                    inner_dest = target.with_suffix("")
                    inner_dest.mkdir(parents=True, exist_ok=True)
                    n, s = extract(inner, inner_dest, budget, notes, depth + 1, f"{name}/")
                    notes.append(f"unpacked the zip inside it, {name}, into {inner_dest.name}/")
                    files, size = files + n, size + s
                    continue
            except zipfile.BadZipFile:
                notes.append(f"{name} is named .zip but is not a zip: kept as a file")
            target.write_bytes(data.getvalue())
            files, size = files + 1, size + data_len
            continue
        if name.lower().endswith(".zip"):
            notes.append(f"left {shown!r} packed: zips are unpacked one level deep")
        size += copy_entry(archive, info, target, budget)
        files += 1
    return files, size


def unpack_zip(path, out_root):
    """Unpacked: ``path`` (a .zip) into out_root/<its name>/, or the reason it was not."""
    path, out_root = Path(path), Path(out_root)
    result = Unpacked(path.name[:-4] if path.name.lower().endswith(".zip") else path.name)
    dest = out_root / result.name
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        result.status = "not a zip"
        result.notes.append(f"{path.name} is not a zip file ({error})" if not isinstance(error, zipfile.BadZipFile)
                            else f"{path.name} is not a zip file")
        return result
    with archive:
        infos = [i for i in archive.infolist() if not i.is_dir()]
        if not infos:
            result.status = "empty"
            result.notes.append(f"{path.name} is an empty zip")
            return result
        if all(i.flag_bits & ENCRYPTED_FLAG for i in infos):
            result.status = "encrypted"
            result.notes.append(f"{path.name} is encrypted (password-protected): ask the student for a plain zip")
            return result
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        try:
            result.files, result.size = extract(archive, dest, Budget(), result.notes, 0)
        except Refused as refused:
            shutil.rmtree(dest, ignore_errors=True)
            result.status, result.notes = "refused", [str(refused)]
            return result
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as error:
            shutil.rmtree(dest, ignore_errors=True)
            result.status, result.notes = "refused", [f"the zip is damaged: {type(error).__name__}: {error}"]
            return result
    result.folder = dest
    os.chmod(dest, 0o755)
    return result
