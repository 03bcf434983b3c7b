"""The original report's pickled NumPy checkpoints, read defensively and mapped onto this kit's layers.

    python nn_numpy.py --eval-only --checkpoint model.pkl     # grade a checkpoint in the original's format
    python cnn_numpy.py --eval-only --checkpoint data/original/cnn_pure_python-model.pkl
    python reproduce.py --original                            # all six files (reproduction/original.py)

    arrays = load_pickle("nn_pure_python-model.pkl")  # {"layer1_W": (784, 128) float64, ..., "train_losses": ...}
    state, record, _ = load_checkpoint(path, model, config)   # as common.checkpoint.load_npz returns it

The original (github.com/yongjoon2001/DGIST-Deep-Learning-PA1) pickled a dict of float64 arrays, read here
through common/safe_pickle.py (nothing in the file is run). A dict's entries must be named arrays, number lists
or, beside them, plain scalars, strings and number lists kept as notes (``'epochs': 20``, ``'train_accs': [...]``).
The original's six files (FILES: the two pickles and four training logs) are named here, with their sha256.
"""

import re
from pathlib import Path

import numpy as np

from common.checkpoint import check_finite, check_shapes, identify, require_file
from common.errors import UserError
from common.safe_pickle import (MAX_NESTING, ArraysOnlyUnpickler, ObjectDtype, Refused, TooDeep, check_nesting,
                                  check_pickle_nesting, describe_notes, is_note, is_number_list, note_value,
                                  sha256_of)

REPOSITORY = "github.com/yongjoon2001/DGIST-Deep-Learning-PA1"
COMMIT = "a6e4bbed9f9705b3d97c3ca0a695625a6926eca7"
RAW_BASE = f"https://raw.githubusercontent.com/yongjoon2001/DGIST-Deep-Learning-PA1/{COMMIT}/checkpoints/"
# Local name -> (path under the repository's checkpoints/, sha256). The local name is "<dir>-<file>".
FILES = {
    "cnn_pure_python-model.pkl": ("cnn_pure_python/model.pkl",
                                  "df98ab9713930b43b8ae49926fed1ce0aa44bbd49ec465c907d5fd6c5ff475b6"),
    "nn_pure_python-model.pkl": ("nn_pure_python/model.pkl",
                                 "9b7c79326cd25dd4808f2eeab8183f0e15415dd1d2d350afd9e051e3c583eb53"),
    "cnn_pure_python-training_metrics.txt": ("cnn_pure_python/training_metrics.txt",
                                             "a0347a5a3852c03f6b8ae750fedff3648d92610acdc0f6b39cabb6c82b32f871"),
    "nn_pure_python-training_metrics.txt": ("nn_pure_python/training_metrics.txt",
                                            "4a201f3c8f58c08c24edfbc3a56c5b7d2fd2ded6120c77d49e6755da28ff5dc9"),
    "cnn_framework-training_metrics.txt": ("cnn_framework/training_metrics.txt",
                                           "e45213944fc2f1a9fd2213c51c1dfb3d7dd061b97fd9cb89004e1116e1cd51ca"),
    "nn_framework-training_metrics.txt": ("nn_framework/training_metrics.txt",
                                          "3ecca0209762355914e49d1c85f02fb1dfd5100300b495414a04e4d586d80af1"),
}
# This kit's model -> the original's run of it.
RUNS = {"nn_numpy": "nn_pure_python", "nn_torch": "nn_framework", "cnn_numpy": "cnn_pure_python",
        "cnn_torch": "cnn_framework"}
PICKLE_SUFFIXES = (".pkl", ".pickle")
LOSS_KEYS = ("train_losses", "test_losses")


def is_pickle(path):
    """True for a file that is (or is named as) a pickle: the original's format, not this kit's .npz."""
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return True
    try:
        with open(path, "rb") as f:
            return f.read(1) == b"\x80"  # pickle protocol 2+ (an .npz is a zip: "PK")
    except OSError:
        return False


def load_pickle(path, notes=None):
    """The original's checkpoint as {name: ndarray}, read without running anything in the file.

    Number lists (the per-epoch ``train_losses``/``test_losses``) become float64 arrays. Other entries that
    are not weights (scalars, strings, number lists, small dicts of them) go to ``notes`` (name -> value)
    when it is given, and are refused otherwise.
    """
    path = require_file(path)
    if identify(path)[0] == "torch":
        raise UserError(f"{path} is a PyTorch file (torch.save), not a pickle of arrays; grade.py reads any "
                        f"state_dict (python grade.py FOLDER), nn_torch.py and cnn_torch.py the .pt files "
                        f"this kit writes")
    try:
        with open(path, "rb") as f:
            check_pickle_nesting(f)  # before the load: hashing a too-deep tuple kills the process
            obj = ArraysOnlyUnpickler(f).load()
            check_nesting(obj)
    except (TooDeep, RecursionError):
        raise UserError(f"refusing to load {path}: it holds containers nested deeper than {MAX_NESTING} levels, "
                        f"not a dict of arrays") from None
    except Refused as e:
        raise UserError(f"refusing to load {path}: it contains {e.name}, not only arrays") from None
    except ObjectDtype:
        raise UserError(f"refusing to load {path}: it contains an array of Python objects, not only "
                        f"arrays of numbers") from None
    except MemoryError:
        raise UserError(f"{path} is not a checkpoint in the original's format (it asks for more memory than "
                        f"there is)") from None
    except Exception as e:  # noqa: BLE001 - a malformed pickle can raise almost anything; none is a bug of ours
        raise UserError(f"{path} is not a readable checkpoint in the original's format "
                        f"({type(e).__name__}: {e})") from None
    return check_arrays(obj, path, notes)


def check_arrays(obj, path, notes=None):
    """``obj`` must be a dict of name -> numeric ndarray (or list of numbers).

    With ``notes`` (a dict), entries that cannot be weights (see :func:`is_note`) and are not named as the
    original names a weight go there instead of being refused.
    """
    if not isinstance(obj, dict):
        raise UserError(f"{path} holds a {type(obj).__name__}, not a dict of named arrays; it is not a "
                        f"checkpoint in the original's format")
    arrays = {}
    for name, value in obj.items():
        if not isinstance(name, str):
            raise UserError(f"{path} has an entry named {name!r}, not by a string; it is not a checkpoint in "
                            f"the original's format")
        if notes is not None and name not in LOSS_KEYS and not NAME.match(name) and is_note(value):
            notes[name] = value
            continue
        if is_number_list(value):
            value = np.array(value, dtype=np.float64)
        if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu":
            kind = f"an array of {value.dtype}" if isinstance(value, np.ndarray) else f"a {type(value).__name__}"
            raise UserError(f"{path}: {name} is {kind}, not an array of numbers; it is not a checkpoint in the "
                            f"original's format")
        arrays[name] = value
    return arrays


# --- names -> this kit's layers -----------------------------------------------------------------------------

# The original's names: "conv<k>_W" is the k-th Conv2d, "layer<k>_W" the k-th Linear, "linear_W" the only
# Linear. Matched by layer type, so the kit's layer order (e.g. ReLU before or after pooling) does not matter.
NAME = re.compile(r"^(?:(conv|layer)(\d+)|(linear))_(W|b)$")


def layer_indices(model, kind):
    return [i for i, layer in enumerate(model.layers) if type(layer).__name__ == kind]


def kit_name(name, model, path):
    """The kit's parameter name ("3.W") for the original's ``name`` ("conv2_W")."""
    match = NAME.match(name)
    if not match:
        raise UserError(f"{path}: unexpected entry {name!r}; the original's checkpoints hold conv<k>_W/_b, "
                        f"layer<k>_W/_b, linear_W/_b, train_losses and test_losses")
    prefix, number, linear, param = match.groups()
    kind = "Conv2d" if prefix == "conv" else "Linear"
    indices = layer_indices(model, kind)
    if linear:
        if len(indices) != 1:
            raise UserError(f"{path} holds {name} for a model with one Linear layer; this model has "
                            f"{len(indices)}: is it a checkpoint of the other model?")
        return f"{indices[0]}.{param}"
    k = int(number)
    if not 1 <= k <= len(indices):
        raise UserError(f"{path} holds {name}, but this model has {len(indices)} {kind} layer(s): is it a "
                        f"checkpoint of the other model?")
    return f"{indices[k - 1]}.{param}"


def original_name(key, model):
    """The original's name ("layer3_b") for the kit's parameter ``key`` ("5.b"); inverse of :func:`kit_name`."""
    index, param = key.split(".")
    kind = type(model.layers[int(index)]).__name__
    indices = layer_indices(model, kind)
    if kind == "Linear" and len(indices) == 1:
        return f"linear_{param}"
    return f"{'conv' if kind == 'Conv2d' else 'layer'}{indices.index(int(index)) + 1}_{param}"


def model_of(arrays):
    """The kit model whose weights the original's ``arrays`` are, by their names; None if they name neither."""
    if any(NAME.match(name) and name.startswith("conv") for name in arrays):
        return "cnn_numpy"
    if any(NAME.match(name) for name in arrays):
        return "nn_numpy"
    return None


def to_state_dict(arrays, model, path):
    """The original's ``arrays`` as ``model``'s state dict, checked against the model's shapes and for
    non-finite values.

    Biases stored as (1, n) become (n,). Errors name the original's name, and the kit's beside it.
    """
    owner, this = model_of(arrays), "cnn_numpy" if layer_indices(model, "Conv2d") else "nn_numpy"
    if owner not in (None, this):
        raise UserError(f"{path} is an original-format .pkl checkpoint of {owner} (its names are the "
                        f"{RUNS[owner]} run's), not of {this} — use: python {owner}.py --eval-only "
                        f"--checkpoint {path}")
    state, names = {}, {}
    for name, value in arrays.items():
        if name in LOSS_KEYS:
            continue
        if name.endswith("_b") and value.ndim == 2 and value.shape[0] == 1:
            value = value[0]
        key = kit_name(name, model, path)
        if key in state:
            raise UserError(f"{path} holds both {names[key].split()[0]} and {name} for this model's {key}")
        state[key], names[key] = value, f"{name} ({key})"
    own = {k: v.shape for k, v in model.state_dict().items()}
    missing = {k: s for k, s in own.items() if k not in state}
    check_shapes({names.get(k, k): s for k, s in own.items() if k in state},
                 {names[k]: v.shape for k, v in state.items()}, path)
    if missing:
        lacking = ", ".join(f"{original_name(k, model)} ({k})" for k in sorted(missing))
        expected = ", ".join(original_name(k, model) for k in own)
        raise UserError(f"{path} lacks {lacking}: this model's checkpoint in the original's format holds "
                        f"{expected}; the file is incomplete")
    check_finite({names[k]: v for k, v in state.items()}, path)
    return state


def loss_history(arrays, path):
    """[{"epoch", "train_loss_running", "test_loss"}] from the pickled per-epoch losses; [] where absent.

    The original's train loss is the mean over each epoch's batches, this kit's train_loss_running.
    """
    if not all(k in arrays for k in LOSS_KEYS):
        return []
    train, test = (arrays[k].reshape(-1) for k in LOSS_KEYS)
    if len(train) != len(test):
        raise UserError(f"{path}: train_losses has {len(train)} epochs but test_losses {len(test)}")
    return [{"epoch": i, "train_loss_running": float(a), "test_loss": float(b)}
            for i, (a, b) in enumerate(zip(train, test), 1)]


# The training settings a run's config records; the original's pickle holds none of them.
TRAINING_KEYS = ("epochs", "lr", "batch_size", "seed", "optimizer", "momentum", "init")


def load_checkpoint(path, model, config):
    """--eval-only on the original's format: -> (state, record, iteration_losses), as common.checkpoint.load_npz.

    The record's config holds what the file holds: its path, sha256 and arrays, and the architecture they
    matched (``config["architecture"]``, the script's); the training settings are null (unknown: the file
    does not record them, and the script's defaults are not the submission's). Run.restore adds the data
    flags of this evaluation as config["evaluated_with"]. The pickled per-epoch losses become the history;
    the original kept no per-iteration losses.
    """
    notes = {}
    arrays = load_pickle(path, notes)
    state = to_state_dict(arrays, model, path)
    if notes:
        print(f"{path}: note: kept as notes, not weights: {describe_notes(notes)}", flush=True)
    if not all(k in arrays for k in LOSS_KEYS):
        print(f"{path}: note: no per-epoch losses (train_losses and test_losses) in the file: the loss graph "
              f"will be empty", flush=True)
    record = {"config": {**{key: None for key in TRAINING_KEYS},
                         "unknown": "the training settings (null): the file holds weights and per-epoch losses "
                                    "only; the report's training_metrics.txt gives them",
                         "checkpoint": str(path), "checkpoint_sha256": sha256_of(path),
                         "checkpoint_format": "the original report's pickle",
                         "architecture": config.get("architecture"),
                         "arrays": {name: list(value.shape) for name, value in arrays.items()},
                         "notes": {name: note_value(value) for name, value in notes.items()}},
              "history": loss_history(arrays, path), "seconds_total": None}
    return state, record, []
