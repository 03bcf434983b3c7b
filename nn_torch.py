"""The report's MLP in PyTorch: 784 -> 128 -> ReLU -> 64 -> ReLU -> 10, cross-entropy, SGD with momentum.

    python nn_torch.py                           # the report's run: 20 epochs, lr 0.01, momentum 0.9, batch 32
    python nn_torch.py --device cuda             # auto picks cuda, then mps, then cpu
    python nn_torch.py --epochs 3 --limit-train 2000 --batch-size 8    # a quick run that learns (~85-88%)
    python nn_torch.py --momentum 0 --lr 0.1     # nn_numpy.py's recipe (plain SGD), in PyTorch
    python nn_torch.py --eval-only               # redraw figures/nn_torch/ from checkpoints/nn_torch.pt
                                                 # (or the committed reference/nn_torch.pt)

The whole dataset lives on the device as one tensor; an epoch takes its batches as slices of a random
permutation drawn with NumPy from --seed's data-order stream: one permutation kept for every epoch by default
(--shuffle once, as the original's loader), or a new one each epoch (--shuffle epoch, what a DataLoader with
shuffle=True does). Every script given the same seed, --shuffle, batch size and training set sees exactly the
same batches (common.cli.seed_everything). No DataLoader.
cnn_torch.py imports the device, training, evaluation and checkpoint helpers from here.
"""

import json
import math
import pickle
import sys
import warnings

import numpy as np
import torch
from torch import nn

from common import original
from common.checkpoint import (check_finite, check_record, check_shapes, identify, require_file,
                               unreadable_reason, wrong_script)
from common.cli import DataOrder, make_parser, parse_args, resolve_data_flags, run_main, seed_everything
from common.data import load_model_inputs
from common.errors import UsageError, UserError
from common.io import atomic_path, strict_json
from common.run import Run, dump_config


def mlp():
    """The report's MLP with PyTorch's default initialisation. Indices match nn_numpy.mlp()'s layers."""
    return nn.Sequential(nn.Flatten(),
                         nn.Linear(784, 128), nn.ReLU(),
                         nn.Linear(128, 64), nn.ReLU(),
                         nn.Linear(64, 10))


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


def train_epoch(model, loss_fn, optimizer, images, labels, order, batch_size, progress):
    """One pass over the training set in ``order`` (a NumPy permutation of its indices), one step per batch."""
    model.train()
    order = torch.from_numpy(order).to(images.device)
    images, labels = images[order], labels[order]  # one gather per epoch; batches are then plain views
    for start in range(0, len(images), batch_size):
        x, y = images[start:start + batch_size], labels[start:start + batch_size]
        optimizer.zero_grad(set_to_none=True)
        logits = model(x)
        loss = loss_fn(logits, y)
        loss.backward()
        optimizer.step()
        progress.step(loss.item(), (logits.argmax(dim=1) == y).sum().item(), len(y))


@torch.no_grad()
def predict(model, images, batch_size=500):
    """Logits (N, 10) as a float32 NumPy array, computed in batches to bound memory."""
    model.eval()
    return torch.cat([model(images[i:i + batch_size]) for i in range(0, len(images), batch_size)]).cpu().numpy()


def fit(run, model, loss_fn, optimizer, data, labels, batch_size, rng, shuffle):
    """Train for run.epochs(); ``data`` holds device tensors, ``labels`` the NumPy (y_train, y_test)."""
    x_train, y_train, x_test, _ = data
    steps = math.ceil(len(x_train) / batch_size)
    data_order = DataOrder(rng, len(x_train), shuffle)
    with run:
        for epoch in run.epochs():
            with run.progress(epoch, steps) as progress:
                order, progress.order_digest = data_order()
                train_epoch(model, loss_fn, optimizer, x_train, y_train, order, batch_size, progress)
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
            names = original.load_pickle(path)
        except UserError:
            pass
        else:
            raise wrong_script(path, kind, original.model_of(names), model_name)
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


def train_or_evaluate(run, model, optimizer, data, labels, args, rng, test_images, checkpoint=None):
    """Train (or, with --eval-only, evaluate the loaded ``checkpoint`` instead), then write every output.

    data: (x_train, y_train, x_test, y_test) device tensors; labels: the NumPy (y_train, y_test);
    test_images: (N, 28, 28) NumPy, the test images as the figures show them (unpermuted).
    """
    final = None
    if args.eval_only:
        final = evaluate_checkpoint(run, model, data, labels, checkpoint)
    else:
        fit(run, model, nn.CrossEntropyLoss(), optimizer, data, labels, args.batch_size, rng, args.shuffle)
    run.finish(test_images, final)


def say_what_trains(model_name, args, device):
    """The run's first line: which code trains (or evaluates), as the NumPy scripts say it (harness.py)."""
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


def prepare(args, model_name, image_shape):
    """What the PyTorch scripts share before building the model: --eval-only's checkpoint, the device, the
    seeds, the data. Returns (checkpoint or None, device, order_rng, device tensors, (y_train, y_test) NumPy,
    test_images); the images shaped (N, *image_shape)."""
    checkpoint = load_checkpoint(args.checkpoint, model_name) if args.eval_only else None
    resolve_data_flags(args, checkpoint and checkpoint[1])
    device = select_device(args.device)
    _, order_rng = seed_everything(args.seed)  # the weights come from torch's generator, seeded there too
    x_train, y_train, x_test, y_test, test_images = load_model_inputs(args.data_dir, args.limit_train,
                                                                      args.permute_pixels)
    shaped = (x_train.reshape(-1, *image_shape), y_train, x_test.reshape(-1, *image_shape), y_test)
    return checkpoint, device, order_rng, to_device(shaped, device), (y_train, y_test), test_images


def add_device_flag(parser):
    parser.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto",
                        help="where to train: auto = cuda, else mps, else cpu (default: %(default)s)")


def build_parser():
    p = make_parser("nn_torch", "Train the report's MLP on MNIST with PyTorch.",
                    epochs=20, lr=0.01, batch_size=32, checkpoint_suffix=".pt", optimizer="sgd", init="pytorch")
    add_device_flag(p)
    return p


def main(argv=None):
    args = parse_args(build_parser(), argv)
    checkpoint, device, order_rng, data, labels, test_images = prepare(args, "nn_torch", (28, 28))
    model = initialise(mlp(), args.init).to(device)
    config = dump_config(args, device=str(device), dtype="float32", architecture="784-128-ReLU-64-ReLU-10")
    say_what_trains("nn_torch", args, device)
    run = Run("nn_torch", "torch", config, args, save_checkpoint)
    train_or_evaluate(run, model, make_optimizer(model, args), data, labels, args, order_rng, test_images,
                      checkpoint)


if __name__ == "__main__":
    sys.exit(run_main(main, "nn_torch.py"))
