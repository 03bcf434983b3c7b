"""The one command line all four scripts share, the seeding helper, and the error-to-exit-code wrapper."""

import argparse
import hashlib
import math
import random
import sys
from pathlib import Path

import numpy as np

from common.data import TRAIN_SIZE
from common.errors import UserError


class Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr (exit 2) instead of usage + error."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {value}")
    return value


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number greater than 0, got {text}")
    return value


def non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


SEED_MAX = 2**64 - 1  # torch.manual_seed's limit; NumPy's SeedSequence takes any non-negative integer


def seed_value(text):
    """A seed: a whole number in 0 .. 2**64 - 1, which NumPy and PyTorch both accept."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to 2**64 - 1, got {value}")
    return value


def train_subset_size(text):
    value = positive_int(text)
    if value > TRAIN_SIZE:
        raise argparse.ArgumentTypeError(f"the training set has {TRAIN_SIZE} images, cannot take {value}")
    return value


def make_parser(model, description, *, epochs, lr, batch_size, checkpoint_suffix, optimizer, init):
    """The shared flags, with ``model``'s report defaults; scripts add their own (--dtype, --device).

    Parse with :func:`parse_args`, which checks the flags against each other.
    """
    quick = QUICK_EXAMPLE.get(model)
    p = Parser(prog=f"{model}.py", description=description,
               epilog=quick and f"A quick run that learns (under a minute): python {model}.py {quick}")
    p.add_argument("--epochs", type=positive_int, default=epochs,
                   help="number of epochs to train (default: %(default)s)")
    p.add_argument("--lr", type=positive_float, default=lr, help="learning rate (default: %(default)s)")
    p.add_argument("--batch-size", type=positive_int, default=batch_size,
                   help="training batch size (default: %(default)s)")
    p.add_argument("--optimizer", choices=["sgd", "adam"], default=optimizer,
                   help="sgd (with --momentum) or adam (betas 0.9, 0.999, eps 1e-8), PyTorch's update rules "
                        "(default: %(default)s)")
    p.add_argument("--momentum", type=momentum_value, default=None,
                   help=f"SGD momentum, 0 <= m < 1; only with --optimizer sgd (default: "
                        f"{MOMENTUM_DEFAULT.get(model, 0.0) if optimizer == 'sgd' else 0.0})")
    p.add_argument("--init", choices=["pytorch", "xavier"], default=init,
                   help="weights: pytorch = U(+-1/sqrt(fan_in)) for weights and biases (PyTorch's default), "
                        "xavier = Glorot-uniform weights, zero biases (default: %(default)s)")
    p.add_argument("--permute-pixels", type=seed_value, default=None, metavar="SEED",
                   help="shuffle the 784 pixel positions of every training and test image with one fixed "
                        "permutation drawn from SEED (the spatial-structure control; default: off)")
    p.add_argument("--seed", type=seed_value, default=0,
                   help="random seed, 0 to 2**64-1: initialisation and data order (default: %(default)s)")
    p.add_argument("--data-dir", default=None,
                   help="folder with the MNIST files (default: $MNIST_DIR, then ./data; downloaded if missing)")
    p.add_argument("--out-dir", default="figures",
                   help=f"figures and metrics.json go to OUT_DIR/{model}/ (default: %(default)s)")
    p.add_argument("--checkpoint", default=None,
                   help=f"where the trained weights are saved, and read by --eval-only (default: "
                        f"checkpoints/{model}{checkpoint_suffix}; --eval-only falls back to the committed "
                        f"reference/{model}{checkpoint_suffix} when that is missing)")
    p.add_argument("--limit-train", type=train_subset_size, default=None, metavar="N",
                   help="train on the first N training images only, for quick runs (default: all 60000; "
                        "with --eval-only, the checkpoint's)")
    p.add_argument("--eval-only", action="store_true",
                   help="skip training: load --checkpoint, re-evaluate, redraw figures and metrics.json")
    p.add_argument("--eval-train", choices=["last", "every"], default="last",
                   help="when to evaluate the whole training set: after the last epoch (default; every epoch "
                        "still records the mean loss and accuracy over its batches, as the report logged them) "
                        "or after every epoch (the CNNs then spend a quarter more time evaluating)")
    p.add_argument("--quiet", action="store_true", help="no progress bars, only the per-epoch lines")
    p.add_argument("--no-figures", action="store_true",
                   help="write only metrics.json and the checkpoint, no PNGs (reproduce.py --findings uses it)")
    p.set_defaults(model=model, checkpoint_suffix=checkpoint_suffix)
    return p


REFERENCE_DIR = Path(__file__).resolve().parent.parent / "reference"  # the committed reproduction's weights
# What --momentum means when not given, per script: nn_torch.py's report run is SGD with momentum 0.9.
MOMENTUM_DEFAULT = {"nn_torch": 0.9}
# One epoch on 2,000 images learns only 40-82% at the report's batch sizes (too few steps); these settings
# reach 85-92% (tests/test_scripts.py and `reproduce.py --quick` use them).
QUICK_EXAMPLE = {"nn_numpy": "--epochs 3 --limit-train 2000 --batch-size 8",
                 "nn_torch": "--epochs 3 --limit-train 2000 --batch-size 8",
                 "cnn_numpy": "--epochs 1 --limit-train 2000 --batch-size 8 --lr 0.05",
                 "cnn_torch": "--epochs 1 --limit-train 2000 --batch-size 8"}


def parse_args(parser, argv=None):
    """Parse, then check the flags against each other (exit 2 with one line) and fill derived defaults."""
    args = parser.parse_args(argv)
    if args.optimizer == "adam" and args.momentum is not None:
        parser.error("--momentum applies to --optimizer sgd only (Adam's betas are fixed at 0.9, 0.999)")
    if args.momentum is None:
        args.momentum = MOMENTUM_DEFAULT.get(args.model, 0.0) if args.optimizer == "sgd" else 0.0
    if args.checkpoint is None:
        args.checkpoint = default_checkpoint(args.model, args.checkpoint_suffix, args.eval_only)
    return args


def default_checkpoint(model, suffix, eval_only):
    """checkpoints/<model>; for --eval-only, the committed reference/<model> where the first is missing."""
    path = Path("checkpoints") / f"{model}{suffix}"
    reference = REFERENCE_DIR / f"{model}{suffix}"
    if eval_only and not path.exists() and reference.is_file():
        print(f"{model}.py: no {path}; evaluating the committed reference checkpoint {reference}", flush=True)
        return str(reference)
    return str(path)


def momentum_value(text):
    value = non_negative_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be below 1, got {text}")
    return value


def seed_everything(seed):
    """Seed Python, NumPy and (if the script imported it) PyTorch; returns ``(init_rng, order_rng)``.

    Two independent NumPy generators derived from ``seed``: ``init_rng`` draws the NumPy models' weights,
    ``order_rng`` every epoch's shuffle. Because the shuffle has a stream of its own, every script given the
    same seed, batch size and training set sees exactly the same batches, whatever its architecture or
    framework (the PyTorch scripts draw their weights from torch's generator instead).
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch = sys.modules.get("torch")  # never imported from here: the NumPy scripts stay torch-free
    if torch is not None:
        torch.manual_seed(seed)
    init, order = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(init), np.random.default_rng(order)


def order_digest(order):
    """A short fingerprint of one epoch's shuffle, recorded per epoch so that runs can be compared."""
    return hashlib.sha256(np.asarray(order, dtype=np.int64).tobytes()).hexdigest()[:16]


def resolve_data_flags(args, record=None):
    """Fill the data flags left at None (--limit-train, --dtype, --permute-pixels).

    With --eval-only, ``record`` is the checkpoint's record: flags not given take the checkpoint's values, so
    the evaluation sees the training's data; flags given explicitly win, and Run.restore records them as what
    was evaluated. Otherwise: all 60000 images, float32.
    """
    config = (record or {}).get("config", {})
    for key in ("limit_train", "permute_pixels"):
        if getattr(args, key, 0) is None:
            setattr(args, key, config.get(key))
    if getattr(args, "dtype", "") is None:
        args.dtype = config["dtype"] if config.get("dtype") in ("float32", "float64") else "float32"
    return args


def run_main(main, prog):
    """Call ``main()``; a UserError or Ctrl-C becomes one line on stderr and an exit code, no traceback."""
    try:
        main()
    except UserError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; nothing was written", file=sys.stderr)
        return 130
    return 0
