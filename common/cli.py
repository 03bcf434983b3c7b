"""The one command line all four scripts share, the seeding helper, and the error-to-exit-code wrapper."""

import argparse
import math
import random
import sys

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


def train_subset_size(text):
    value = positive_int(text)
    if value > TRAIN_SIZE:
        raise argparse.ArgumentTypeError(f"the training set has {TRAIN_SIZE} images, cannot take {value}")
    return value


def make_parser(model, description, *, epochs, lr, batch_size, checkpoint_suffix):
    """The shared flags, with ``model``'s report defaults; scripts add their own (--dtype, --device)."""
    p = Parser(prog=f"{model}.py", description=description)
    p.add_argument("--epochs", type=positive_int, default=epochs,
                   help="number of epochs to train (default: %(default)s)")
    p.add_argument("--lr", type=positive_float, default=lr, help="learning rate (default: %(default)s)")
    p.add_argument("--batch-size", type=positive_int, default=batch_size,
                   help="training batch size (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--data-dir", default=None,
                   help="folder with the MNIST files (default: $MNIST_DIR, then ./data; downloaded if missing)")
    p.add_argument("--out-dir", default="figures",
                   help=f"figures and metrics.json go to OUT_DIR/{model}/ (default: %(default)s)")
    p.add_argument("--checkpoint", default=f"checkpoints/{model}{checkpoint_suffix}",
                   help="where the trained weights are saved, and read by --eval-only (default: %(default)s)")
    p.add_argument("--limit-train", type=train_subset_size, default=None, metavar="N",
                   help="train on the first N training images only, for quick runs (default: all 60000)")
    p.add_argument("--eval-only", action="store_true",
                   help="skip training: load --checkpoint, re-evaluate, redraw figures and metrics.json")
    p.add_argument("--quiet", action="store_true", help="no progress bars, only the per-epoch lines")
    return p


def seed_everything(seed):
    """Seed Python, NumPy and (if the script imported it) PyTorch; returns the NumPy generator to use."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch = sys.modules.get("torch")  # never imported from here: the NumPy scripts stay torch-free
    if torch is not None:
        torch.manual_seed(seed)
    return np.random.default_rng(seed)


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
