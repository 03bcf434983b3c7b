"""Checkpoints without pickle: the weights, plus the run's record (config, history) as JSON.

    state, record, losses = load_npz("reference/nn_numpy.npz", "nn_numpy")
    identify("reference/cnn_torch.pt")      # ("torch", "cnn_torch"): what a file is, without loading it

NumPy models are saved here as .npz (read back with allow_pickle=False); the torch scripts save a
state_dict with the same record through torch.save and read it with weights_only=True (nn_torch.py).
Both check what they read with :func:`check_record`, :func:`check_shapes` and :func:`check_finite`; a file of
the other framework or model is named as such, with the command that reads it (:func:`wrong_script`).
"""

import json
import re
import zipfile
from pathlib import Path

import numpy as np

from common.errors import UsageError, UserError
from common.io import atomic_path, strict_json
from common.models import MODELS

FORMAT = 1


def interrupted_path(path):
    """Where an interrupted run keeps its last complete epoch, beside (never over) a finished run's file."""
    path = Path(path)
    return path.with_name(f"{path.stem}.interrupted{path.suffix}")


def require_file(path):
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{path} is a folder; give the path of a checkpoint file")
    if not path.is_file():
        raise UsageError(f"no checkpoint at {path}")
    return path


KINDS = {"npz": "a NumPy .npz checkpoint", "torch": "a PyTorch .pt checkpoint",
         "pickle": "an original-format .pkl checkpoint"}
RECORD_MODEL = re.compile(rb'"model": "([a-z_]+)"')  # in the JSON record a torch checkpoint pickles as a string


def identify(path):
    """-> (kind, model): what the file at ``path`` is, read without unpickling anything.

    kind: "npz" (this kit's NumPy format), "torch" (a torch.save zip), "pickle" (a bare pickle, e.g. the
    original's .pkl) or None; model: the kit model its record names, or None where it names none.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(2)
        if head == b"PK":
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
                if "record.npy" in names:
                    with np.load(path, allow_pickle=False) as f:
                        found = re.search(r'"model": "([a-z_]+)"', str(f["record"]))
                    return "npz", found and found[1]
                data = next((n for n in names if n.endswith("/data.pkl")), None)
                if data is not None:
                    found = RECORD_MODEL.search(archive.read(data))
                    return "torch", found and found[1].decode()
        elif head[:1] == b"\x80":
            return "pickle", None
    except (OSError, zipfile.BadZipFile, ValueError, KeyError, EOFError):
        pass
    return None, None


def wrong_script(path, kind, model, script):
    """The error for ``script`` given a file of another format or model: what it is and what reads it."""
    what = KINDS[kind] + (f" of {model}" if model else "")
    reads = ".pt files" if script.endswith("torch") else ".npz files (or the original's .pkl)"
    fix = (f"use: python {model}.py --eval-only --checkpoint {path}" if model in MODELS
           else f"give --checkpoint a file that {script}.py wrote")
    return UserError(f"{path} is {what}; {script}.py reads {reads} — {fix}")


def check_record(record, model, path):
    """``record`` is the checkpoint's JSON record; it must belong to ``model``."""
    if not isinstance(record, dict) or record.get("format") != FORMAT or "model" not in record:
        raise UserError(f"{path} is not a checkpoint written by this kit")
    owner = record["model"]
    if owner != model:
        fix = f" — use: python {owner}.py --eval-only --checkpoint {path}" if owner in MODELS else ""
        raise UserError(f"{path} is a checkpoint of {owner}, not of {model}{fix}")
    return record


def check_finite(state, path):
    """``state``: name -> array. Weights with NaN or infinity cannot be graded: one line naming the array."""
    for name, value in state.items():
        value = np.asarray(value)
        if value.dtype.kind in "fc" and not np.isfinite(value).all():
            bad = int(value.size - np.isfinite(value).sum())
            raise UserError(f"{path}: {name} holds {bad} non-finite value(s) (NaN or infinity) among its "
                            f"{value.size}; these weights cannot be evaluated (the run that wrote them diverged, "
                            f"or the file was altered)")


def check_shapes(expected, found, path):
    """``expected``/``found``: parameter name -> shape. Any difference is a clear error."""
    if set(expected) != set(found):
        missing, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
        raise UserError(f"{path} does not match this model (missing {missing}, unexpected {extra})")
    for name, shape in expected.items():
        if tuple(found[name]) != tuple(shape):
            raise UserError(f"{path}: {name} has shape {tuple(found[name])}, this model needs {tuple(shape)}")


def save_npz(path, state, record, iteration_losses):
    """state: name -> ndarray; record: JSON-able dict; iteration_losses: 1-D float array."""
    arrays = {f"state/{name}": value for name, value in state.items()}
    arrays["record"] = np.array(strict_json(record))
    arrays["iteration_losses"] = np.asarray(iteration_losses, dtype=np.float64)  # a float64 run's may pass 3e38
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: savez adds no ".npz" to its name
        np.savez(f, **arrays)


def load_npz(path, model):
    """-> (state, record, iteration_losses), checked to be ``model``'s, with finite weights."""
    path = require_file(path)
    kind, owner = identify(path)
    if kind == "torch":
        raise wrong_script(path, kind, owner, model)
    try:
        with np.load(path, allow_pickle=False) as f:
            record = json.loads(str(f["record"]))
            state = {key.removeprefix("state/"): f[key] for key in f.files if key.startswith("state/")}
            iteration_losses = f["iteration_losses"]
    except Exception as e:  # noqa: BLE001 - whatever a damaged file provokes, the user gets the kit's words
        raise UserError(f"{path} is not a readable checkpoint ({unreadable_reason(e)}); give --checkpoint one "
                        f"that {model}.py wrote, or train again to write one") from None
    check_record(record, model, path)
    check_finite(state, path)
    return state, record, iteration_losses


def unreadable_reason(error):
    """Why a checkpoint could not be read, in the kit's words rather than the library's."""
    if isinstance(error, zipfile.BadZipFile):
        return "not a complete zip archive: truncated or damaged"
    if isinstance(error, KeyError):
        return "it lacks the weights or the record this kit writes"
    if isinstance(error, json.JSONDecodeError):
        return "its record is not the JSON this kit writes"
    if isinstance(error, ValueError) and "pickle" in str(error):
        return "it holds pickled Python objects, which are never loaded"
    return "truncated or damaged"
