"""Every configuration the reproduction trains, written once, as data: the one table that the runner, the
findings, the ablation and the docs read.

    from reproduction.experiments import EXPERIMENTS, FINDINGS_RUNS, CROSSOVER, CELLS, ABLATION
    FINDINGS_RUNS["cnn_numpy+adam"]      # ("cnn_numpy", ["--optimizer", "adam", ...]): what reproduce.py runs
    CROSSOVER["nn"][("numpy", "torch")]  # "nn_numpy+momentum": NumPy's MLP trained with PyTorch's recipe
    CELLS["nn_numpy+epoch"]              # ("every epoch", "N(0, 0.1²)", "float64"): the ablation's cell

A row of EXPERIMENTS is one group of runs (one per seed): the script it runs, the flags on top of that script's
report defaults, the claims of findings.md it serves, and where it stands in the two designs that compare
groups: the recipe crossover (claims 4 and 5: which framework, whose recipe) and the procedure ablation (its
data order, initialisation and arithmetic). The four main groups are the report's own configurations (no flags).
The rows are in the order the findings' tables list them.
"""

from dataclasses import dataclass

from common.cli import QUICK_EXAMPLE
from common.models import MODELS

# --quick: one epoch on the first 2,000 training images. At the report's batch sizes that is too few steps
# to learn much (40-82% test accuracy), so the smoke run takes smaller batches (and, for the plain-SGD CNN,
# a larger step; the MLPs, 75-83% after one such epoch, get three); tests/test_scripts.py uses the same
# settings, and they are the quick runs the scripts' --help recommends (common.cli.QUICK_EXAMPLE).
QUICK_FLAGS = {model: QUICK_EXAMPLE[model].split() for model in MODELS}  # one source: common.cli
QUICK_BASE = ["--epochs", "1", "--limit-train", "2000"]  # what the extra --findings runs take with --quick
QUICK_DIR = "runs/quick"  # scratch, never committed (.gitignore): a smoke run leaves figures/ alone

PERMUTATION_SEED = 0  # the one fixed pixel permutation of the spatial-structure control
# The kit's earlier defaults (before it followed the original's procedure): a new order every epoch and, for
# nn_numpy, PyTorch's initialisation in float32. The "+earlier" groups are those runs; the permuted-pixel control
# is measured against them, with the same procedure.
EARLIER = {"nn_numpy": ("--shuffle", "epoch", "--init", "pytorch", "--dtype", "float32"),
           "nn_torch": ("--shuffle", "epoch"), "cnn_numpy": ("--shuffle", "epoch"), "cnn_torch": ("--shuffle", "epoch")}
N01 = "N(0, 0.1²)"


@dataclass(frozen=True)
class Experiment:
    group: str                  # its name in findings.md and under figures/findings/runs/
    script: str                 # which of the four models it trains
    flags: tuple = ()           # on top of the script's report defaults
    serves: str = ""            # the claims (findings.md) or section it is run for
    crossover: tuple = None     # (framework, whose recipe): a cell of claims 4 and 5
    procedure: tuple = None     # (data order, initialisation, arithmetic): a cell of the ablation


def permuted(model):
    return Experiment(f"{model}+permuted", model, (*EARLIER[model], "--permute-pixels", str(PERMUTATION_SEED)),
                      "claim 3: the pixels' spatial structure (the +earlier runs with the pixels permuted)")


def earlier(model, procedure):
    return Experiment(f"{model}+earlier", model, EARLIER[model], "the ablation; claim 3's unpermuted side",
                      procedure=procedure)


MAIN = "the report's configuration: results.md; claims 1, 2, 7, 8"
EXPERIMENTS = (
    Experiment("nn_numpy", "nn_numpy", (), MAIN, ("numpy", "numpy"), ("one order", N01, "float64")),
    Experiment("nn_numpy+epoch", "nn_numpy", ("--shuffle", "epoch"), "the ablation: data order",
               procedure=("every epoch", N01, "float64")),
    Experiment("nn_numpy+pytorch-init", "nn_numpy", ("--init", "pytorch"), "the ablation: initialisation",
               procedure=("one order", "PyTorch", "float64")),
    Experiment("nn_numpy+epoch+pytorch-init", "nn_numpy", ("--shuffle", "epoch", "--init", "pytorch"),
               "the ablation: data order and initialisation", procedure=("every epoch", "PyTorch", "float64")),
    earlier("nn_numpy", ("every epoch", "PyTorch", "float32")),
    Experiment("nn_numpy+momentum", "nn_numpy", ("--lr", "0.01", "--momentum", "0.9", "--init", "pytorch"),
               "claims 4, 5: nn_torch's recipe in NumPy", ("numpy", "torch")),
    permuted("nn_numpy"),
    Experiment("nn_torch", "nn_torch", (), MAIN, ("torch", "torch"), ("one order", "PyTorch", "float32")),
    earlier("nn_torch", ("every epoch", "PyTorch", "float32")),
    Experiment("nn_torch+sgd", "nn_torch", ("--lr", "0.1", "--momentum", "0", "--init", "normal"),
               "claims 4, 5: nn_numpy's recipe in PyTorch", ("torch", "numpy")),
    permuted("nn_torch"),
    Experiment("cnn_numpy", "cnn_numpy", (), MAIN, ("numpy", "numpy"), ("one order", "Xavier", "float32")),
    earlier("cnn_numpy", ("every epoch", "Xavier", "float32")),
    Experiment("cnn_numpy+float64", "cnn_numpy", ("--dtype", "float64"),
               "the ablation: the arithmetic (the original's CNN weights are float64)",
               procedure=("one order", "Xavier", "float64")),
    Experiment("cnn_numpy+adam", "cnn_numpy", ("--optimizer", "adam", "--lr", "0.001", "--epochs", "10",
                                               "--batch-size", "32", "--init", "pytorch"),
               "claims 4, 5: cnn_torch's recipe in NumPy", ("numpy", "torch")),
    permuted("cnn_numpy"),
    Experiment("cnn_torch", "cnn_torch", (), MAIN, ("torch", "torch"), ("one order", "PyTorch", "float32")),
    earlier("cnn_torch", ("every epoch", "PyTorch", "float32")),
    Experiment("cnn_torch+sgd", "cnn_torch", ("--optimizer", "sgd", "--lr", "0.01", "--epochs", "5",
                                              "--batch-size", "16", "--init", "xavier"),
               "claims 4, 5: cnn_numpy's recipe in PyTorch", ("torch", "numpy")),
    permuted("cnn_torch"),
)
BY_GROUP = {e.group: e for e in EXPERIMENTS}

# The groups --findings trains beside the main runs: group -> (script, flags).
FINDINGS_RUNS = {e.group: (e.script, list(e.flags)) for e in EXPERIMENTS if e.group not in MODELS}
# The crossover's cells: architecture -> (framework, recipe) -> group, the cells in (framework, recipe) order.
CROSSOVER = {arch: dict(sorted((e.crossover, e.group) for e in EXPERIMENTS
                               if e.crossover and e.script.split("_")[0] == arch))
             for arch in ("nn", "cnn")}
# The ablation's cells: group -> (data order, initialisation, arithmetic), in the table's order.
CELLS = {e.group: e.procedure for e in EXPERIMENTS if e.procedure}
# The ablation's comparisons: (model, change, the group with it, the group without it); each changes one thing
# (the last nn_numpy row: all three).
ABLATION = (
    ("nn_numpy", f"new order every epoch − one order ({N01} init)", "nn_numpy+epoch", "nn_numpy"),
    ("nn_numpy", "new order every epoch − one order (PyTorch init)", "nn_numpy+epoch+pytorch-init",
     "nn_numpy+pytorch-init"),
    ("nn_numpy", f"PyTorch init − {N01} (one order)", "nn_numpy+pytorch-init", "nn_numpy"),
    ("nn_numpy", f"PyTorch init − {N01} (new order every epoch)", "nn_numpy+epoch+pytorch-init", "nn_numpy+epoch"),
    ("nn_numpy", "float32 − float64 (every epoch, PyTorch init)", "nn_numpy+earlier", "nn_numpy+epoch+pytorch-init"),
    ("nn_numpy", "the earlier default − today's (all three)", "nn_numpy+earlier", "nn_numpy"),
    ("nn_torch", "new order every epoch − one order", "nn_torch+earlier", "nn_torch"),
    ("cnn_numpy", "new order every epoch − one order", "cnn_numpy+earlier", "cnn_numpy"),
    ("cnn_numpy", "float64 − float32 (one order), the arithmetic the kit departs from", "cnn_numpy+float64",
     "cnn_numpy"),
    ("cnn_torch", "new order every epoch − one order", "cnn_torch+earlier", "cnn_torch"),
)


def quick_description():
    """What --quick runs, in words, from QUICK_FLAGS: models with the same settings share one phrase."""
    phrases = {}
    for model, flags in QUICK_FLAGS.items():
        settings = dict(zip(flags[::2], flags[1::2]))
        epochs = settings.pop("--epochs")
        limit = int(settings.pop("--limit-train"))
        words = [f"{epochs} epoch{'s' if epochs != '1' else ''}"]
        words += [f"{'batch' if flag == '--batch-size' else flag.lstrip('-')} {value}"
                  for flag, value in settings.items()]
        phrases.setdefault((limit, ", ".join(words)), []).append(model)
    limits = {limit for limit, _ in phrases}
    where = f"on the first {limits.pop():,} training images" if len(limits) == 1 else "on a subset"
    return where + ": " + "; ".join(f"{' and '.join(models)} {words}" for (_, words), models in phrases.items())
