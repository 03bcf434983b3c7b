"""Checkpoints without pickle: the weights, plus the run's record (config, history) as JSON.

NumPy models are saved here as .npz (read back with allow_pickle=False); the torch scripts save a
state_dict with the same record through torch.save and read it with weights_only=True (nn_torch.py).
Both check what they read with :func:`check_record` and :func:`check_shapes`.
"""

import json
import zipfile
from pathlib import Path

import numpy as np

from common.errors import UsageError, UserError
from common.io import atomic_path

FORMAT = 1


def interrupted_path(path):
    """Where an interrupted run keeps its last complete epoch, beside (never over) a finished run's file."""
    path = Path(path)
    return path.with_name(f"{path.stem}.interrupted{path.suffix}")


def require_file(path):
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no checkpoint at {path}; train first (without --eval-only) or pass --checkpoint")
    return path


def check_record(record, model, path):
    """``record`` is the checkpoint's JSON record; it must belong to ``model``."""
    if not isinstance(record, dict) or record.get("format") != FORMAT or "model" not in record:
        raise UserError(f"{path} is not a checkpoint written by this kit")
    if record["model"] != model:
        raise UserError(f"{path} is a checkpoint of {record['model']}, not of {model}")
    return record


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
    arrays["record"] = np.array(json.dumps(record))
    arrays["iteration_losses"] = np.asarray(iteration_losses, dtype=np.float32)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: savez adds no ".npz" to its name
        np.savez(f, **arrays)


def load_npz(path, model):
    """-> (state, record, iteration_losses), checked to be ``model``'s."""
    path = require_file(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            record = json.loads(str(f["record"]))
            state = {key.removeprefix("state/"): f[key] for key in f.files if key.startswith("state/")}
            iteration_losses = f["iteration_losses"]
    except (zipfile.BadZipFile, ValueError, KeyError, OSError, EOFError) as e:
        raise UserError(f"{path} is not a readable checkpoint ({type(e).__name__}: {e}); "
                        f"delete it and train again") from None
    return state, check_record(record, model, path), iteration_losses
