"""A pickle read without running anything in it: only the globals that rebuild NumPy arrays are admitted.

    from common.safe_pickle import ArraysOnlyUnpickler, Refused, ObjectDtype
    with open("model.pkl", "rb") as f:
        obj = ArraysOnlyUnpickler(f).load()       # dicts, lists, numbers, strings and numeric ndarrays only

A pickle can run any code while it loads. :class:`ArraysOnlyUnpickler` admits exactly what NumPy array
reconstruction needs, in every pickle protocol's spelling of it (ndarray, dtype, _reconstruct and scalar;
protocol 5's _frombuffer; protocols 0-2's _codecs.encode of the raw bytes), and ends the load at any other
global (:class:`Refused`, naming it) or at an array of Python objects (:class:`ObjectDtype`). The helpers below
tell plain values a training script saves beside its weights (notes) from the weights themselves, and bound
how deep a walk of what a pickle holds goes (:func:`check_pickle_nesting` before the load,
:func:`check_nesting` after it: :class:`TooDeep` past MAX_NESTING levels); none of them recurses without limit.
Framework-free: the NumPy scripts (common/original_pickle.py) and grade.py (grading/loaders.py) read through it.
"""

import hashlib
import pickle
import pickletools

import numpy as np

# Dicts, lists, tuples and sets nested deeper than this are no checkpoint's (a model's needs 3): their walks
# stop here, and grade.py refuses the file (check_nesting, check_pickle_nesting).
MAX_NESTING = 32
NOTE_ENTRIES = 10_000  # a note's dicts hold at most this many entries in all (each visit of a shared one counts)


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


class TooDeep(Exception):
    """Containers nested deeper than MAX_NESTING levels (or one inside itself)."""

    def __init__(self):
        super().__init__(f"nested deeper than {MAX_NESTING} levels")


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


SCALARS = (bool, int, float, str, np.generic)
CONTAINERS = (dict, list, tuple, set, frozenset)


def is_note(value):
    """A plain value a training script saves beside its weights: a scalar, a string, a number list, or a small
    dict of those (a config: at most 100 entries a level, NOTE_ENTRIES in all, MAX_NESTING levels deep).
    Walked without recursion, so that no nesting, sharing or cycle can overflow the stack."""
    pending, entries = [(value, 1)], 0
    while pending:
        value, depth = pending.pop()
        if value is None or isinstance(value, SCALARS):
            continue
        if not isinstance(value, dict):
            if not is_number_list(value):
                return False
            continue
        entries += len(value)
        if depth > MAX_NESTING or len(value) > 100 or entries > NOTE_ENTRIES or not all(
                isinstance(k, str) for k in value):
            return False
        pending.extend((v, depth + 1) for v in value.values())
    return True


def note_value(value, depth=1):
    """A note as JSON can hold it: NumPy scalars as Python numbers, tuples as lists; a container deeper than
    MAX_NESTING levels (never in a note :func:`is_note` admits) as "..."."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (dict, list, tuple)) and depth > MAX_NESTING:
        return "..."
    if isinstance(value, dict):
        return {k: note_value(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [note_value(v, depth + 1) for v in value]
    return value


def check_nesting(value, limit=MAX_NESTING):
    """Raise :class:`TooDeep` where ``value`` holds dicts, lists, tuples or sets (keys included) nested deeper
    than ``limit`` levels, or one inside itself. Walked without recursion; a container met again is walked
    again only at a greater depth, so that shared ones cost at most ``limit`` walks each."""
    pending, deepest = [(value, 1)], {}
    while pending:
        value, depth = pending.pop()
        if not isinstance(value, CONTAINERS) or deepest.get(id(value), 0) >= depth:
            continue
        if depth > limit:
            raise TooDeep()
        deepest[id(value)] = depth
        items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
        pending.extend((item, depth + 1) for item in items if isinstance(item, CONTAINERS))


def _stack_effect(op):
    """(what ``op`` does to the depths :func:`check_pickle_nesting` keeps, values it takes off the pickle's
    stack (of which before its mark, for one that takes a mark), values it leaves)."""
    names = {"MARK": "mark", "TUPLE": "tuple", "EMPTY_TUPLE": "tuple", "TUPLE1": "tuple", "TUPLE2": "tuple",
             "TUPLE3": "tuple", "PUT": "put", "BINPUT": "put", "LONG_BINPUT": "put", "MEMOIZE": "memoize",
             "GET": "get", "BINGET": "get", "LONG_BINGET": "get", "DUP": "dup"}
    before = [s is pickletools.markobject for s in op.stack_before]
    taken = before.index(True) if True in before else len(before)
    return names.get(op.name, "other"), taken, True in before, len(op.stack_after)


_STACK_EFFECTS = {op: _stack_effect(op) for op in pickletools.opcodes}


def check_pickle_nesting(f, limit=MAX_NESTING):
    """Raise :class:`TooDeep` where the pickle in ``f`` (read from where it stands, and put back there) builds
    tuples nested deeper than ``limit`` levels. Hashing one (a dict key, a set's item) recurses in C beyond
    any recursion limit and kills the process, so this is told before the load, from the opcodes: nothing is
    built, each value on the pickle's stack is only the depth of its tuples (a list, dict or set counts 0: it is
    unhashable, or hashed from its items' kept hashes). A damaged pickle is left to the load to report; other
    containers are checked once loaded (:func:`check_nesting`)."""
    start = f.tell()
    stack, marks, memo = [], [], {}
    try:
        for opcode, arg, _ in pickletools.genops(f):
            kind, taken, takes_mark, left = _STACK_EFFECTS[opcode]
            if kind == "other" or kind == "tuple":
                at = (marks.pop() if takes_mark else len(stack)) - taken
                if at < 0:
                    return  # damaged
                depth = 1 + max(stack[at:], default=0) if kind == "tuple" else 0
                if depth > limit:
                    raise TooDeep()
                del stack[at:]
                stack += [depth] * left
            elif kind == "mark":
                marks.append(len(stack))
            elif kind == "put" or kind == "memoize":
                memo[len(memo) if kind == "memoize" else arg] = stack[-1]
            elif kind == "get":
                stack.append(memo.get(arg, 0))
            else:  # DUP
                stack.append(stack[-1])
    except (ValueError, IndexError, TypeError, EOFError, OverflowError):
        return  # damaged: the load says how
    finally:
        f.seek(start)


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


def sha256_of(source):
    """The sha256 of a file, given by its path or as a binary file object (read from where it stands)."""
    if hasattr(source, "read"):
        return _sha256_of_open(source)
    with open(source, "rb") as f:
        return _sha256_of_open(f)


def _sha256_of_open(f):
    digest = hashlib.sha256()
    for block in iter(lambda: f.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()
