"""The one command line all four scripts share, the seeding helper, and the error-to-exit-code wrapper."""

import argparse
import hashlib
import math
import random
import sys
from pathlib import Path

import numpy as np

from common.data import TRAIN_SIZE
from common.errors import SigTerm, UsageError, UserError


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
    epilog = (f"A run with data or training flags other than the report's writes under {SCRATCH_DIR}/,\n"
              f"never over the committed figures/ and checkpoints/.")
    if model in QUICK_EXAMPLE:
        epilog += f"\n\nA quick run that learns (under a minute):\n  python {model}.py {QUICK_EXAMPLE[model]}"
    p = Parser(prog=f"{model}.py", description=description, epilog=epilog,
               formatter_class=argparse.RawDescriptionHelpFormatter)
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
    p.add_argument("--init", choices=["pytorch", "xavier", "normal"], default=init,
                   help="weights: pytorch = U(+-1/sqrt(fan_in)) for weights and biases (PyTorch's default), "
                        "xavier = Glorot-uniform weights, zero biases, normal = N(0, 0.1^2) weights, zero biases "
                        "(the original's NumPy MLP) (default: %(default)s)")
    p.add_argument("--shuffle", choices=["once", "epoch"], default="once",
                   help="data order: once = one random order drawn before the first epoch and kept for every "
                        "epoch (the original's data loader), epoch = a new random order every epoch (the usual "
                        "practice) (default: %(default)s)")
    p.add_argument("--permute-pixels", type=seed_value, default=None, metavar="SEED",
                   help="shuffle the 784 pixel positions of every training and test image with one fixed "
                        "permutation drawn from SEED (the spatial-structure control; default: off)")
    p.add_argument("--seed", type=seed_value, default=0,
                   help="random seed, 0 to 2**64-1: initialisation and data order (default: %(default)s)")
    p.add_argument("--data-dir", default=None,
                   help="folder with the MNIST files (default: $MNIST_DIR, then ./data; downloaded if missing)")
    p.add_argument("--out-dir", default=None,
                   help=f"figures and metrics.json go to OUT_DIR/{model}/ (default: figures for the report's "
                        f"configuration, i.e. these defaults or --eval-only of the report's checkpoint; "
                        f"{SCRATCH_DIR} for any other data or training flag, so that a trial run never "
                        f"overwrites the committed results)")
    p.add_argument("--checkpoint", default=None,
                   help=f"where the trained weights are saved, and read by --eval-only (default: "
                        f"checkpoints/{model}{checkpoint_suffix} for the report's configuration, "
                        f"{SCRATCH_DIR}/checkpoints/{model}{checkpoint_suffix} for any other; --eval-only reads "
                        f"checkpoints/{model}{checkpoint_suffix}, else the committed "
                        f"reference/{model}{checkpoint_suffix})")
    p.add_argument("--limit-train", type=train_subset_size, default=None, metavar="N",
                   help="train on the first N training images only, for quick runs (default: all 60000; "
                        "with --eval-only, the checkpoint's)")
    p.add_argument("--eval-only", action="store_true",
                   help="skip training: load the checkpoint (--checkpoint, else checkpoints/, else the committed "
                        "reference/; it says which and why), re-evaluate, redraw figures and metrics.json")
    p.add_argument("--eval-train", choices=["last", "every"], default="last",
                   help="when to evaluate the whole training set: after the last epoch (default; every epoch "
                        "still records the mean loss and accuracy over its batches, as the report logged them) "
                        "or after every epoch (the CNNs then spend a quarter more time evaluating)")
    p.add_argument("--quiet", action="store_true", help="no progress bars, only the per-epoch lines")
    p.add_argument("--no-figures", action="store_true",
                   help="write only metrics.json and the checkpoint, no PNGs (reproduce.py --findings uses it)")
    p.set_defaults(model=model, checkpoint_suffix=checkpoint_suffix, dtype_default="float32")
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


SCRATCH_DIR = "runs"  # where runs other than the report's configuration write by default (.gitignore'd)
DATA_FLAGS = ("limit_train", "permute_pixels", "dtype")
TRAINING_FLAGS = ("epochs", "lr", "batch_size", "optimizer", "momentum", "init", "shuffle", "seed", "layers")


def parse_args(parser, argv=None):
    """Parse, then check the flags against each other (exit 2 with one line) and fill derived defaults.

    The report's configuration writes figures/<model>/ and checkpoints/; any other run writes under runs/
    unless --out-dir/--checkpoint say otherwise. --eval-only prints which checkpoint it reads, and why.
    Raises UsageError (exit 2) for an --eval-only checkpoint that is a folder or is missing.
    """
    args = parser.parse_args(argv)
    if args.optimizer == "adam" and args.momentum is not None:
        parser.error("--momentum applies to --optimizer sgd only (Adam's betas are fixed at 0.9, 0.999)")
    if args.momentum is None:
        args.momentum = MOMENTUM_DEFAULT.get(args.model, 0.0) if args.optimizer == "sgd" else 0.0
    name = f"{args.model}{args.checkpoint_suffix}"
    if args.eval_only:
        args.checkpoint = checkpoint_to_evaluate(args.checkpoint, args.model, name)
    differs = departures(parser, args)
    scratch = differs and (args.out_dir is None or args.checkpoint is None)
    if args.checkpoint is None:
        args.checkpoint = str((Path(SCRATCH_DIR) if differs else Path()) / "checkpoints" / name)
    if args.out_dir is None:
        args.out_dir = SCRATCH_DIR if differs else "figures"
    # Said by Run once the checkpoint, if any, has been read: a file that cannot be read gets its error alone.
    args.scratch_note = scratch and (
        f"{args.model}.py: not the report's configuration ({', '.join(differs)}): outputs go under "
        f"{SCRATCH_DIR}/, figures/ and checkpoints/ keep the report's (--out-dir and --checkpoint choose)")
    return args


def departures(parser, args):
    """How this run differs from the report's configuration, as ["--flag value", ...]; [] if it does not.

    Training: any data or training flag off its default. --eval-only: a data flag, or a checkpoint other
    than the report's own (checkpoints/<model> or the committed reference/<model>).
    """
    keys = [k for k in (DATA_FLAGS if args.eval_only else DATA_FLAGS + TRAINING_FLAGS) if hasattr(args, k)]
    report = {key: [parser.get_default(key)] for key in keys}
    if "momentum" in report:  # the default is filled in by parse_args
        report["momentum"] = [MOMENTUM_DEFAULT.get(args.model, 0.0) if report["optimizer"][0] == "sgd" else 0.0]
    report["limit_train"].append(TRAIN_SIZE)  # all of it, as by default
    if "dtype" in report:
        report["dtype"].append(args.dtype_default)  # the default that None stands for
    differs = [f"--{key.replace('_', '-')} {getattr(args, key)}" for key in keys
               if getattr(args, key) not in report[key]]
    name = f"{args.model}{args.checkpoint_suffix}"
    if args.eval_only and Path(args.checkpoint).resolve() not in {(Path("checkpoints") / name).resolve(),
                                                                  (REFERENCE_DIR / name).resolve()}:
        differs.append(f"--checkpoint {args.checkpoint}")
    return differs


def checkpoint_to_evaluate(given, model, name):
    """--eval-only: the checkpoint to read (``given``, else checkpoints/NAME, else the committed reference/NAME);
    prints which and why. A folder, or no file, is a UsageError naming what to do."""
    if given is not None:
        path = Path(given)
        if path.is_dir():
            inside = path / name
            hint = f" (here: --checkpoint {inside})" if inside.is_file() else ""
            raise UsageError(f"--checkpoint {path} is a folder; give the path of a checkpoint file{hint}")
        if not path.is_file():
            raise UsageError(f"no checkpoint at {path} (given by --checkpoint); check the path, or train first "
                             f"(without --eval-only) to write it there")
        print(f"{model}.py: evaluating {path} (given by --checkpoint)", flush=True)
        return str(path)
    path, reference = Path("checkpoints") / name, REFERENCE_DIR / name
    if path.is_file():
        print(f"{model}.py: evaluating {path} (the default: the report's run saves its weights there)", flush=True)
        return str(path)
    if reference.is_file():
        print(f"{model}.py: no {path}; evaluating the committed reference checkpoint {reference}", flush=True)
        return str(reference)
    raise UsageError(f"no checkpoint at {path} and no committed {reference}; train first (python {model}.py) "
                     f"or pass --checkpoint")


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


class DataOrder:
    """Each epoch's order of the training images (--shuffle), drawn from the data-order stream ``rng``.

    shuffle="once": one permutation before the first epoch, the same for every epoch, as the original's data
    loader did (it shuffled its index once, when it was built). shuffle="epoch": a new permutation every epoch,
    the usual practice: each epoch then meets other batches, so no batch's gradient noise repeats. The first
    epoch's permutation is the same either way. Call the object once per epoch: it returns (order, digest).
    """

    def __init__(self, rng, n, shuffle):
        if shuffle not in ("once", "epoch"):
            raise ValueError(f"unknown shuffle {shuffle!r}")
        self.rng, self.n, self.shuffle = rng, n, shuffle
        self.order = None

    def __call__(self):
        if self.order is None or self.shuffle == "epoch":
            self.order = self.rng.permutation(self.n)
            self.digest = order_digest(self.order)
        return self.order, self.digest


def order_digest(order):
    """A short fingerprint of one epoch's shuffle, recorded per epoch so that runs can be compared."""
    return hashlib.sha256(np.asarray(order, dtype=np.int64).tobytes()).hexdigest()[:16]


def resolve_data_flags(args, record=None):
    """Fill the data flags left at None (--limit-train, --dtype, --permute-pixels).

    With --eval-only, ``record`` is the checkpoint's record: flags not given take the checkpoint's values, so
    the evaluation sees the training's data; flags given explicitly win, and Run.restore records them as what
    was evaluated. Otherwise: all 60000 images, the script's default dtype (``args.dtype_default``).
    """
    config = (record or {}).get("config", {})
    for key in ("limit_train", "permute_pixels"):
        if getattr(args, key, 0) is None:
            setattr(args, key, config.get(key))
    if getattr(args, "dtype", "") is None:
        args.dtype = config["dtype"] if config.get("dtype") in ("float32", "float64") else args.dtype_default
    return args


def add_dtype_flag(parser, default, why=""):
    parser.add_argument("--dtype", choices=["float32", "float64"], default=None,
                        help=f"floating-point type of weights and activations (default: {default}"
                             f"{': ' + why if why else ''}; with --eval-only, the checkpoint's)")
    parser.set_defaults(dtype_default=default)
    return parser


def run_main(main, prog):
    """Call ``main()``; a UserError or Ctrl-C becomes one line on stderr and an exit code, no traceback."""
    try:
        main()
    except UserError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return e.exit_code
    except SigTerm:
        print(f"{prog}: terminated (SIGTERM); nothing was written", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; nothing was written", file=sys.stderr)
        return 130
    return 0
