"""One file graded: read safely, identified, evaluated on the test set; run inside a worker process.

    data = Data(test_images, test_labels, train_images[:500], train_labels[:500])
    result = grade_file({"path": "class/alice/model.pkl", "purpose": "grade"}, data)
    result["status"], result["model"], result["test_acc"], result["notes"]   # "graded", "nn_numpy", 97.94, [...]

purpose "reference" (the kit's reference/ checkpoints, the original's weights) reads and identifies a file for
the duplicate check without evaluating it. The result is plain data (it crosses a pipe): status, model,
architecture, test_acc (percent), test_loss, evaluated_with, format, sha256, notes, and ``signature``, 4,096
of the weights in this kit's layout (float64) by which grading.gradebook finds copies.
"""

import math
import time
from dataclasses import dataclass

import numpy as np

from common import models
from common.safe_pickle import sha256_of
from grading.evaluate import choose_layout, numpy_network, scores, torch_network
from grading.identify import identify
from grading.loaders import FileVerdict, open_model_file, read_model_file, sniff, too_deep

# The grader's architecture names ("mlp", "cnn") -> the kit's: common.models names a model <architecture>_<framework>.
KIT_MODELS = {({"nn": "mlp", "cnn": "cnn"}[models.architecture(m)], models.framework(m)): m for m in models.MODELS}
SIGNATURE_SIZE = 4096


@dataclass
class Data:
    """The images a worker needs: the test set to grade on, a few hundred training images to settle layouts.

    images (N, 28, 28) float32 in [0, 1]; labels (N,) int64.
    """

    test_images: np.ndarray
    test_labels: np.ndarray
    train_images: np.ndarray
    train_labels: np.ndarray


def follows_links(task):
    """Whether the task's file may be a symbolic link, followed: the kit's reference/ checkpoints and the
    original's pickles, which the instructor names; a submitted file never is."""
    return task["purpose"] == "reference"


def prepare(task):
    """Before the memory cap: import torch in the worker that is about to read a PyTorch file."""
    try:
        with open_model_file(task["path"], follows_links(task)) as f:
            if sniff(f) != "torch":
                return
        import torch

        torch.set_num_threads(1)
    except (OSError, FileVerdict):
        pass  # grade_file says why


def grade_file(task, data):
    """The gradebook's row for one file, as a dict (see the module docstring)."""
    started = time.perf_counter()
    path = task["path"]
    result = {"status": None, "model": "", "architecture": None, "test_acc": None, "test_loss": None,
              "evaluated_with": "", "format": "", "sha256": None, "notes": [], "signature": None}
    try:
        with open_model_file(path, follows_links(task)) as f:  # opened once: every read below is of this file
            result["sha256"] = sha256_of(f)
            f.seek(0)
            contents = read_model_file(f)
        result["format"] = contents.format
        found = identify(contents.entries)
        evaluate(found, contents, task["purpose"], data, result)
    except FileVerdict as verdict:
        result["status"] = verdict.status
        result["notes"].insert(0, str(verdict))
    except OSError as e:
        result["status"] = "unreadable"
        result["notes"].insert(0, f"cannot read it: {e.strerror or e}")
    except RecursionError:  # a walk of the file's containers that the loaders' depth limits missed
        result["status"] = "refused"
        result["notes"].insert(0, str(too_deep()))
    result["seconds"] = time.perf_counter() - started
    return result


def evaluate(found, contents, purpose, data, result):
    """Fill ``result`` for the identified weights: the layout, the signature and (to grade) the test scores."""
    framework = contents.framework
    build = torch_network if framework == "torch" else numpy_network
    precision = "float64" if found.dtype == np.float64 else "float32"
    result.update(architecture=found.architecture, model=KIT_MODELS[(found.architecture, framework)],
                  evaluated_with=f"{'PyTorch' if framework == 'torch' else 'NumPy'} {precision}")
    layout, layout_note, guessed = choose_layout(found, lambda lay: build(found.architecture, lay.params,
                                                                          found.dtype),
                                                 data.train_images, data.train_labels)
    result["signature"] = signature(layout.params)
    if purpose == "grade":
        accuracy, loss = scores(build(found.architecture, layout.params, found.dtype)(data.test_images),
                                data.test_labels)
        result.update(test_acc=100 * accuracy, test_loss=loss)
        if not math.isfinite(loss):
            result["notes"].append("the test loss is infinite: some logits overflowed")
    result["status"] = "flagged" if guessed or found.guesses else "graded"
    used = set(found.sources)
    unused = [f"{name} {tuple(array.shape)}" for name, array in contents.entries if name not in used]
    result["notes"] += [*found.guesses, *([layout_note] if layout_note else []), *found.notes]
    if unused:
        result["notes"].append("not weights: " + shortened(unused))
    kept = [f"{name} {text}" for name, text in contents.notes.items()]
    if kept:
        result["notes"].append("kept as notes: " + shortened(kept))


def signature(params):
    """SIGNATURE_SIZE weights taken evenly from all of ``params`` (this kit's layout), as float64."""
    flat = np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1) for p in params])
    return flat[np.linspace(0, len(flat) - 1, SIGNATURE_SIZE).astype(np.int64)]


def shortened(items, limit=4):
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")
