"""The PyTorch scripts' run harness, shaped like the NumPy one (common/harness_numpy.py). Skip it on a first
reading.

    python nn_torch.py                 # nn_torch.main -> harness_torch.prepare, then harness_torch.train_or_evaluate
    python cnn_torch.py --eval-only    # harness_torch.evaluate_checkpoint instead of training

nn_torch.py and cnn_torch.py hold the model and one epoch of training (train_epoch). This module does the rest:
the device (--device auto picks cuda, then mps, then cpu), the seeds and the data as device tensors (prepare), the
epochs with an evaluation after each (fit), --init and --optimizer, the checkpoint (a plain state_dict plus the
run's record as JSON text, loadable with weights_only=True) and --eval-only of it, and through common/run.py the
progress bars, metrics.json and the figures.
"""

import json
import math
import pickle
import warnings
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from common import original_pickle
from common.checkpoint import (check_finite, check_record, check_shapes, identify, require_file,
                               unreadable_reason, wrong_script)
from common.cli import DataOrder, resolve_data_flags, seed_everything
from common.data import load_model_inputs
from common.errors import UsageError, UserError
from common.io import atomic_path, strict_json
from common.run import Run, dump_config


def select_device(name):
    """"auto" -> cuda, else mps, else cpu. Asking for a device that is not there is a UserError."""
    available = {"cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available(), "cpu": True}
    if name == "auto":
        name = next(d for d in ("cuda", "mps", "cpu") if available[d])
    if not available[name]:
        raise UsageError(f"--device {name}: no {name.upper()} device is available on this machine; "
                        f"use --device cpu (or auto)")
    return torch.device(name)


def to_device(data, device):
    """NumPy (x_train, y_train, x_test, y_test) -> the same as tensors on ``device``."""
    return tuple(torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in data)


@torch.no_grad()
def predict(model, images, batch_size=500):
    """Logits (N, 10) as a float32 NumPy array, computed in batches to bound memory."""
    model.eval()
    return torch.cat([model(images[i:i + batch_size]) for i in range(0, len(images), batch_size)]).cpu().numpy()


def fit(run, model, train_epoch, data, labels, batch_size, rng, shuffle):
    """Train for run.epochs(): ``train_epoch(order, progress)`` trains one epoch in ``order``; after each, the test
    set (and, with --eval-train, the training set) is evaluated and recorded. ``data`` holds device tensors,
    ``labels`` the NumPy (y_train, y_test)."""
    x_train, _, x_test, _ = data
    steps = math.ceil(len(x_train) / batch_size)
    data_order = DataOrder(rng, len(x_train), shuffle)
    with run:
        for epoch in run.epochs():
            with run.progress(epoch, steps) as progress:
                order, progress.order_digest = data_order()
                train_epoch(order, progress)
            train_logits = predict(model, x_train) if run.evaluates_train(epoch) else None
            run.end_epoch(state_dict(model), train_logits, labels[0], predict(model, x_test), labels[1])


def state_dict(model):
    return {name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()}


def save_checkpoint(path, state, record, iteration_losses):
    """A plain state_dict plus the run's record as JSON text: loadable with weights_only=True."""
    payload = {"state_dict": state, "record": strict_json(record),
               "iteration_losses": torch.tensor(np.asarray(iteration_losses, dtype=np.float32))}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path, model_name):
    """-> (state_dict, record, iteration_losses), checked to be ``model_name``'s, with finite weights.

    Never unpickles code. A NumPy .npz or an original-format .pkl is named as such, with the command that
    reads it; nothing torch says (warnings, error text) reaches the user.
    """
    path = require_file(path)
    kind, owner = identify(path)
    if kind == "npz":
        raise wrong_script(path, kind, owner, model_name)
    if kind == "pickle":  # the original's format, or torch's legacy one: only the first loads as plain arrays
        try:
            names = original_pickle.load_pickle(path)
        except UserError:
            pass
        else:
            raise wrong_script(path, kind, original_pickle.model_of(names), model_name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
        bare = isinstance(payload, dict) and "record" not in payload  # a student's own state_dict or checkpoint
        record = None if bare else json.loads(payload["record"])
        if not bare:
            state, iteration_losses = dict(payload["state_dict"]), payload["iteration_losses"].numpy()
    except Exception as e:  # noqa: BLE001 - whatever a damaged file provokes, the user gets the kit's words
        reason = ("it holds pickled Python objects, which are never loaded"
                  if isinstance(e, pickle.UnpicklingError) else unreadable_reason(e))
        raise UserError(f"{path} is not a readable checkpoint ({reason}); give --checkpoint one that "
                        f"{model_name}.py wrote, or train again to write one") from None
    if bare:
        raise UserError(f"{path} holds weights without the record this kit writes (a bare state_dict or another "
                        f"training checkpoint); grade it with `python grade.py {path.parent}`, which reads any "
                        f"layout and names")
    check_record(record, model_name, path)
    check_finite(state, path)
    return state, record, iteration_losses


def evaluate_checkpoint(run, model, data, labels, checkpoint):
    """--eval-only: put the loaded weights in, take over their record, evaluate; returns the final numbers.

    checkpoint: (state_dict, record, iteration_losses) as load_checkpoint returns it.
    """
    state, record, iteration_losses = checkpoint
    own = model.state_dict()
    check_shapes({k: v.shape for k, v in own.items()}, {k: v.shape for k, v in state.items()}, run.checkpoint)
    model.load_state_dict(state)
    run.restore(record, iteration_losses)
    return run.evaluate(predict(model, data[0]), labels[0], predict(model, data[2]), labels[1])


def train_or_evaluate(args, model_name, model, train_epoch, setup, **record):
    """Say which code trains, then train ``model`` with ``train_epoch(order, progress)`` (or, with --eval-only,
    evaluate the loaded checkpoint instead) and write every output. ``record`` adds descriptive entries to the
    run's config (memory format, architecture), as the NumPy harness's does."""
    say_what_trains(model_name, args, setup.device)
    config = dump_config(args, device=str(setup.device), dtype="float32", **record)
    run = Run(model_name, "torch", config, args, save_checkpoint)
    final = None
    if args.eval_only:
        final = evaluate_checkpoint(run, model, setup.data, setup.labels, setup.checkpoint)
    else:
        fit(run, model, train_epoch, setup.data, setup.labels, args.batch_size, setup.order_rng, args.shuffle)
    run.finish(setup.test_images, final)


def say_what_trains(model_name, args, device):
    """The run's first line: which code trains (or evaluates), as the NumPy scripts say it."""
    print(f"{model_name}: {'evaluating' if args.eval_only else 'training'} with PyTorch {torch.__version__} "
          f"({model_name}.py) on {device}", flush=True)


def initialise(model, init):
    """--init: "pytorch" keeps PyTorch's defaults; "xavier" = Glorot-uniform weights and zero biases, as the
    NumPy scripts' init_weights (same fans: fan_in = C_in*k*k, fan_out = C_out*k*k); "normal" = N(0, 0.1^2)
    weights and zero biases, the original's NumPy MLP."""
    if init in ("xavier", "normal"):
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, (nn.Linear, nn.Conv2d)):
                    if init == "xavier":
                        nn.init.xavier_uniform_(module.weight)
                    else:
                        nn.init.normal_(module.weight, 0.0, 0.1)
                    nn.init.zeros_(module.bias)
    return model


def make_optimizer(model, args):
    if args.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=args.lr)
    return torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)


class Setup(NamedTuple):
    """What a PyTorch script needs before it builds its model (see prepare)."""
    checkpoint: object      # (state_dict, record, iteration losses) of an --eval-only .pt; None otherwise
    device: object          # torch.device (--device)
    order_rng: object       # draws the data order (common.cli.DataOrder); the weights come from torch's generator
    data: tuple             # (x_train, y_train, x_test, y_test) as tensors on the device, images (N, *image_shape)
    labels: tuple           # (y_train, y_test) as NumPy arrays
    test_images: object     # (10000, 28, 28) NumPy: the test images as the figures show them (unpermuted)


def prepare(args, model_name, image_shape):
    """What the PyTorch scripts share before building the model: --eval-only's checkpoint, the device, the
    seeds, the data."""
    checkpoint = load_checkpoint(args.checkpoint, model_name) if args.eval_only else None
    resolve_data_flags(args, checkpoint and checkpoint[1])
    device = select_device(args.device)
    _, order_rng = seed_everything(args.seed)  # the weights come from torch's generator, seeded there too
    x_train, y_train, x_test, y_test, test_images = load_model_inputs(args.data_dir, args.limit_train,
                                                                      args.permute_pixels)
    shaped = (x_train.reshape(-1, *image_shape), y_train, x_test.reshape(-1, *image_shape), y_test)
    return Setup(checkpoint, device, order_rng, to_device(shaped, device), (y_train, y_test), test_images)


def add_device_flag(parser):
    parser.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto",
                        help="where to train: auto = cuda, else mps, else cpu (default: %(default)s)")
