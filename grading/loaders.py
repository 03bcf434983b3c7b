"""A submitted file read safely, whatever its name says: a pickle, an .npz, an .npy or a PyTorch file.

    contents = read_model_file("class/alice/model.pkl")
    contents.entries     # [("layer1_W", (784, 128) float64 array), ...], in the file's order
    contents.notes       # {"epochs": "20", "train_losses": "20 numbers"}: what is kept beside the weights
    contents.framework   # "numpy", or "torch" for a PyTorch file (its tensors come back as NumPy arrays)
    contents.format      # "pickle, protocol 5", ".npz", "torch.save zip", ...

The format is told from the file's first bytes, not its name. Nothing in a file runs: pickles (and an .npy
holding a pickled dict) go through common.safe_pickle's ArraysOnlyUnpickler, which admits NumPy arrays in every
protocol's spelling and nothing else; .npz and .npy through np.load(allow_pickle=False); PyTorch files through
torch.load(weights_only=True), torch being imported only for them. A submitted file is opened once, by
:func:`open_model_file`: a symbolic link is never followed and a FIFO or a device never opened. What a file
holds is walked no deeper than safe_pickle.MAX_NESTING levels. Each failure is a :class:`FileVerdict` whose
``status`` is the gradebook's ("refused", "unreadable", "no model") and whose message is one line.
"""

import collections
import errno
import os
import pickle
import re
import stat
import warnings
import zipfile
from dataclasses import dataclass, field

import numpy as np

from common import safe_pickle

SUFFIXES = (".pkl", ".pickle", ".npz", ".npy", ".pt", ".pth")
NPY_MAGIC = b"\x93NUMPY"
# torch.save's legacy (non-zip) format opens with this pickled magic number.
TORCH_LEGACY_HEAD = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."
MAX_DEPTH = 2  # arrays are looked for in a container and in containers one level inside it
RECIPE = "save a dict of its arrays instead, e.g. pickle.dump({'W1': W1, 'b1': b1, ...}, f)"
TORCH_RECIPE = "save its weights instead: torch.save(model.state_dict(), 'model.pt')"
LINK = "a symbolic link (links are not followed): nothing it points to was read"
NOT_REGULAR = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a device",
               stat.S_IFBLK: "a device", stat.S_IFDIR: "a folder"}


class FileVerdict(Exception):
    """Why a file gets no grade: ``status`` is "refused", "unreadable" or "no model"; the message says why."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


@dataclass
class Contents:
    """What a file holds: numeric arrays by name (nested names joined by "."), and everything else as notes."""

    format: str
    framework: str = "numpy"
    entries: list = field(default_factory=list)  # [(name, ndarray)]
    notes: dict = field(default_factory=dict)     # name -> short text


def open_model_file(path, follow_links=False):
    """``path`` opened for reading, in binary; raises FileVerdict ("refused") for a symbolic link (unless
    ``follow_links``) or what is not a regular file (a FIFO, a socket, a device), told by lstat before it is
    opened: no read leaves the folder it is in, none blocks. Opened with O_NOFOLLOW and O_NONBLOCK where the OS
    has them and checked again once open, in case the file was swapped in between."""
    check_regular((os.stat if follow_links else os.lstat)(path).st_mode)
    extra = getattr(os, "O_NONBLOCK", 0) | (0 if follow_links else getattr(os, "O_NOFOLLOW", 0))
    try:
        f = open(path, "rb", opener=lambda name, flags: os.open(name, flags | extra))
    except OSError as e:
        if e.errno == errno.ELOOP:  # made a link since the lstat: O_NOFOLLOW refuses it
            raise FileVerdict("refused", LINK) from None
        raise
    try:
        check_regular(os.fstat(f.fileno()).st_mode)
    except FileVerdict:
        f.close()
        raise
    return f


def check_regular(mode):
    """Raise FileVerdict ("refused") unless ``mode`` (a stat's st_mode) is a regular file's."""
    if stat.S_ISLNK(mode):
        raise FileVerdict("refused", LINK)
    if not stat.S_ISREG(mode):
        raise FileVerdict("refused", f"{NOT_REGULAR.get(stat.S_IFMT(mode), 'a special file')}, not a regular "
                                     f"file: not read")


def sniff(f):
    """"torch", "npz", "npy", "pickle" or None: the format of the binary file ``f``, from its first bytes
    (and its name, for a damaged zip or a pickle of protocol 0 or 1); ``f`` is left at its start."""
    name = str(getattr(f, "name", "")).lower()
    head = f.read(len(TORCH_LEGACY_HEAD))
    f.seek(0)
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(f) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError, ValueError):
            return "npz" if name.endswith(".npz") else "torch"  # damaged; said when read
        finally:
            f.seek(0)
        if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
            return "torch"
        return "npz"
    if head.startswith(NPY_MAGIC):
        return "npy"
    if head.startswith(TORCH_LEGACY_HEAD):
        return "torch"
    if head[:1] == b"\x80" or name.endswith((".pkl", ".pickle")):
        return "pickle"
    return None


def read_model_file(source, follow_links=False):
    """The :class:`Contents` of a file: ``source`` its path (opened by :func:`open_model_file`) or a binary
    file that function opened; raises :class:`FileVerdict` when it cannot be read."""
    if not hasattr(source, "read"):
        with open_model_file(source, follow_links) as f:
            return read_model_file(f)
    kind = sniff(source)
    if kind is None:
        raise FileVerdict("unreadable", "not a pickle, .npz, .npy or PyTorch file (its first bytes are none "
                                        "of theirs)")
    # No "no losses saved" note: grade.py draws no per-file plots (--eval-only, which does, says it itself).
    return {"pickle": read_pickle, "npz": read_npz, "npy": read_npy, "torch": read_torch}[kind](source)


def too_deep():
    """The verdict for a file whose containers nest deeper than safe_pickle.MAX_NESTING levels."""
    return FileVerdict("refused", f"it holds dicts, lists, tuples or sets nested deeper than "
                                  f"{safe_pickle.MAX_NESTING} levels (or one inside itself), which no model's "
                                  f"file does; not read")


def bounded(obj):
    """``obj``, once it is known to nest no deeper than safe_pickle.MAX_NESTING levels; else too_deep()."""
    try:
        safe_pickle.check_nesting(obj)
    except safe_pickle.TooDeep:
        raise too_deep() from None
    return obj


# --- pickles ------------------------------------------------------------------------------------------------

class SubmissionUnpickler(safe_pickle.ArraysOnlyUnpickler):
    """The kit's arrays-only unpickler, plus OrderedDict: a container whose creation runs no code of the file's."""

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        return super().find_class(module, name)


class ObjectArrayUnpickler(SubmissionUnpickler):
    """For an .npy written by np.save(dict): the array of Python objects that wraps the dict is admitted; what
    it holds goes through the same find_class, so it is still arrays, numbers, strings and containers only."""

    def find_class(self, module, name):
        if (module, name) == ("numpy", "dtype"):
            return np.dtype
        return super().find_class(module, name)


def unpickle(f, unpickler=SubmissionUnpickler):
    """The object pickled in ``f``, through ``unpickler``, its tuples first checked to nest no deeper than
    safe_pickle.MAX_NESTING levels (hashing deeper ones crashes); a refusal or damage becomes a FileVerdict."""
    try:
        safe_pickle.check_pickle_nesting(f)
        return unpickler(f).load()
    except safe_pickle.Refused as e:
        raise refused_global(e.name) from None
    except (safe_pickle.TooDeep, RecursionError):
        raise too_deep() from None
    except safe_pickle.ObjectDtype:
        raise FileVerdict("refused", "it holds an array of Python objects, which is never loaded; save arrays "
                                     "of numbers") from None
    except MemoryError:
        raise FileVerdict("refused", "it asks for more memory than a file is allowed (--memory-mb)") from None
    except Exception as e:  # noqa: BLE001 - a damaged pickle raises almost anything; none is a bug of ours
        raise FileVerdict("unreadable", f"truncated or damaged ({type(e).__name__}: {one_line(e)})") from None


def refused_global(name):
    """The verdict for a pickle that names ``name``, a global other than NumPy's array reconstruction."""
    module = name.rsplit(".", 1)[0]
    if module.startswith("torch"):
        return FileVerdict("refused", f"it pickles PyTorch objects with pickle ({name}), which is not read; "
                                      f"{TORCH_RECIPE}")
    if module in ("__main__", "nn_numpy", "cnn_numpy") or name.rsplit(".", 1)[-1][:1].isupper():
        return FileVerdict("refused", f"it pickles a whole object ({name}), not only arrays (nothing in it was "
                                      f"run); {RECIPE}")
    return FileVerdict("refused", f"it contains {name}, not only arrays: loading it would run that; nothing in "
                                  f"it was run")


def read_pickle(f):
    head = f.read(2)
    f.seek(0)
    obj = unpickle(f)
    protocol = head[1] if head[:1] == b"\x80" else "0 or 1"
    contents = Contents(format=f"pickle, protocol {protocol}")
    collect(bounded(obj), "", 0, contents)
    return contents


# --- NumPy's own formats ------------------------------------------------------------------------------------

def read_npz(f):
    contents = Contents(format=".npz")
    try:
        with np.load(f, allow_pickle=False) as archive:
            for name in archive.files:
                try:
                    collect(archive[name], name, 1, contents)
                except ValueError as e:
                    if "allow_pickle" not in str(e):
                        raise
                    contents.notes[name] = "pickled Python objects, never loaded"
    except MemoryError:
        raise FileVerdict("refused", "it asks for more memory than a file is allowed (--memory-mb)") from None
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as e:
        raise FileVerdict("unreadable", f"not a complete .npz: truncated or damaged ({one_line(e)})") from None
    return contents


def read_npy(f):
    """One array; or, for np.save of a dict (an array of objects), the dict, read through the restricted
    unpickler."""
    contents = Contents(format=".npy")
    try:
        version = np.lib.format.read_magic(f)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        _, _, dtype = read_header(f)
        if not dtype.hasobject:
            f.seek(0)
            collect(np.load(f, allow_pickle=False), "", 0, contents)
            return contents
        obj = unpickle(f, ObjectArrayUnpickler)
    except FileVerdict:
        raise
    except MemoryError:
        raise FileVerdict("refused", "it asks for more memory than a file is allowed (--memory-mb)") from None
    except Exception as e:  # noqa: BLE001 - a damaged .npy raises ValueError, EOFError, ...
        raise FileVerdict("unreadable", f"not a complete .npy: truncated or damaged ({one_line(e)})") from None
    if isinstance(obj, np.ndarray) and obj.dtype.hasobject:
        obj = obj.item() if obj.size == 1 else list(obj.reshape(-1))
    contents.format = ".npy of pickled objects (np.save of a dict), read as arrays only"
    collect(bounded(obj), "", 0, contents)
    return contents


# --- PyTorch ----------------------------------------------------------------------------------------------------

UNSUPPORTED_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def read_torch(f):
    """A torch.save file, read with weights_only=True; tensors become NumPy arrays (bfloat16 as float32)."""
    import torch

    try:
        check_torch_nesting(f)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = torch.load(f, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = UNSUPPORTED_GLOBAL.search(str(e))
        name = found[1] if found else "an object weights_only=True does not admit"
        if name.startswith("torch.nn.modules") or (found and name.rsplit(".", 1)[-1][:1].isupper()):
            raise FileVerdict("refused", f"it is a whole pickled model ({name}), which is never loaded (it could "
                                         f"run code); {TORCH_RECIPE}") from None
        raise FileVerdict("refused", f"it contains {name}, not only tensors: nothing in it was run") from None
    except (safe_pickle.TooDeep, RecursionError):
        raise too_deep() from None
    except MemoryError:
        raise FileVerdict("refused", "it asks for more memory than a file is allowed (--memory-mb)") from None
    except Exception as e:  # noqa: BLE001 - a damaged file makes torch raise RuntimeError, EOFError, ...
        raise FileVerdict("unreadable", f"a PyTorch file, truncated or damaged ({type(e).__name__}: "
                                        f"{one_line(e)})") from None
    contents = Contents(format="torch.save" + (" zip" if zipfile.is_zipfile(f) else " (legacy)"),
                        framework="torch")
    collect(tensors_as_arrays(bounded(obj), torch), "", 0, contents)
    return contents


def check_torch_nesting(f):
    """Raise safe_pickle.TooDeep where a torch.save zip's data.pkl builds tuples nested too deep to hash (see
    safe_pickle.check_pickle_nesting); a damaged zip is left to torch.load to report. ``f`` is left at its
    start."""
    try:
        with zipfile.ZipFile(f) as archive:
            for name in archive.namelist():
                if name == "data.pkl" or name.endswith("/data.pkl"):
                    with archive.open(name) as pickled:
                        safe_pickle.check_pickle_nesting(pickled)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        pass
    finally:
        f.seek(0)


def tensors_as_arrays(obj, torch):
    if isinstance(obj, torch.Tensor):
        tensor = obj.detach().cpu()
        return (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()
    if isinstance(obj, dict):
        return {key: tensors_as_arrays(value, torch) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [tensors_as_arrays(value, torch) for value in obj]
    return obj


# --- containers -> named arrays --------------------------------------------------------------------------------

def collect(obj, name, depth, contents):
    """Walk ``obj`` (dict, list or tuple, nested up to MAX_DEPTH) into contents.entries and contents.notes."""
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "fiu" and obj.dtype != bool:
            contents.entries.append((name or "(the array)", obj))
        else:
            contents.notes[name or "(the array)"] = f"an array of {obj.dtype}, not of numbers"
    elif safe_pickle.is_number_list(obj) and len(obj):
        contents.notes[name] = f"{len(obj)} numbers"
    elif isinstance(obj, (dict, list, tuple)) and not (isinstance(obj, dict) and safe_pickle.is_note(obj)
                                                       and depth > 0):
        items = obj.items() if isinstance(obj, dict) else enumerate(obj)
        if depth >= MAX_DEPTH:
            contents.notes[name] = f"a {type(obj).__name__} nested too deep to hold the model; not read"
            return
        for key, value in items:
            collect(value, f"{name}.{key}" if name else str(key), depth + 1, contents)
    elif safe_pickle.is_note(obj):
        text = repr(safe_pickle.note_value(obj)) if not isinstance(obj, dict) else f"{len(obj)} entries"
        contents.notes[name or "(the object)"] = text if len(text) <= 40 else text[:37] + "..."
    else:
        contents.notes[name or "(the object)"] = f"a {type(obj).__name__}, not read"


def one_line(error):
    text = " ".join(str(error).split())
    return text if len(text) <= 160 else text[:157] + "..."
