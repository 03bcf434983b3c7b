"""A pickle read without running anything in it: only the globals that rebuild NumPy arrays are admitted.

    from common.safe_pickle import ArraysOnlyUnpickler, Refused, ObjectDtype
    with open("model.pkl", "rb") as f:
        obj = ArraysOnlyUnpickler(f).load()       # dicts, lists, numbers, strings and numeric ndarrays only

A pickle can run any code while it loads. :class:`ArraysOnlyUnpickler` admits exactly what NumPy array
reconstruction needs, in every pickle protocol's spelling of it (ndarray, dtype, _reconstruct and scalar;
protocol 5's _frombuffer; protocols 0-2's _codecs.encode of the raw bytes), and ends the load at any other
global (:class:`Refused`, naming it) or at an array of Python objects (:class:`ObjectDtype`). The helpers below
tell plain values a training script saves beside its weights (notes) from the weights themselves.
Framework-free: the NumPy scripts (common/original_pickle.py) and grade.py (grading/loaders.py) read through it.
"""

import hashlib
import pickle

import numpy as np


def _multiarray():
    try:
        from numpy._core import multiarray  # NumPy >= 2; pickles name it numpy.core.multiarray
    except ImportError:  # pragma: no cover - NumPy 1.x
        from numpy.core import multiarray
    return multiarray


def _reconstruct(subtype, shape, dtype):
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError(f"_reconstruct of {subtype!r}, not of numpy.ndarray")
    return _multiarray()._reconstruct(subtype, shape, dtype)


def _dtype(*args):
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise ObjectDtype()
    return dtype


def _scalar(dtype, *data):
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise ObjectDtype()
    return _multiarray().scalar(dtype, *data)


def _frombuffer(buffer, dtype, shape, order):
    """Protocol 5's spelling of an array: its bytes in band, then dtype, shape and order."""
    if not isinstance(buffer, (bytes, bytearray, memoryview)) or not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise ObjectDtype()
    array = np.frombuffer(buffer, dtype=dtype)
    return array.reshape(shape, order=order) if order in ("C", "F") else array.reshape(shape)


def _codecs_encode(text, encoding="utf-8"):
    """Protocols 0-2's spelling of bytes (an array's raw data, its dtype's byte order): encode(str, 'latin1')."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise Refused("_codecs.encode of something other than latin-1 text")
    return text.encode("latin1")


class ObjectDtype(Exception):
    """An array or scalar of Python objects: they would be unpickled too, so the file is refused."""


class Refused(Exception):
    def __init__(self, name):
        super().__init__(name)
        self.name = name


ALLOWED = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): _dtype, ("_codecs", "encode"): _codecs_encode}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    ALLOWED[(_module, "_reconstruct")] = _reconstruct
    ALLOWED[(_module, "scalar")] = _scalar
for _module in ("numpy.core.numeric", "numpy._core.numeric"):
    ALLOWED[(_module, "_frombuffer")] = _frombuffer


class ArraysOnlyUnpickler(pickle.Unpickler):
    """Admits the few globals that rebuild NumPy arrays; any other global ends the load before it is used."""

    def find_class(self, module, name):
        if (module, name) not in ALLOWED:
            raise Refused(f"{module}.{name}")
        return ALLOWED[(module, name)]


def is_number_list(value):
    return isinstance(value, (list, tuple)) and all(isinstance(v, (int, float, np.integer, np.floating))
                                                    and not isinstance(v, bool) for v in value)


def is_note(value):
    """A plain value a training script saves beside its weights: a scalar, a string, a number list, or a small
    dict of those (a config)."""
    if value is None or isinstance(value, (bool, int, float, str, np.generic)):
        return True
    if isinstance(value, dict):
        return len(value) <= 100 and all(isinstance(k, str) and is_note(v) for k, v in value.items())
    return is_number_list(value)


def note_value(value):
    """A note as JSON can hold it: NumPy scalars as Python numbers, tuples as lists."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: note_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [note_value(v) for v in value]
    return value


def describe_notes(notes):
    """"epochs 20, train_accs (20 numbers)": a short line for the notes kept beside the weights."""
    parts = []
    for name, value in notes.items():
        if isinstance(value, (list, tuple)):
            parts.append(f"{name} ({len(value)} numbers)")
        elif isinstance(value, dict):
            parts.append(f"{name} ({len(value)} entries)")
        else:
            text = repr(note_value(value))
            parts.append(f"{name} {text if len(text) <= 40 else text[:37] + '...'}")
    return ", ".join(parts)


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
