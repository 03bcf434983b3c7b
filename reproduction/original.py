"""The original report's own weights and logs beside this kit: `reproduce.py --original [DIR]`.

    python reproduce.py --original                          # download the six files into data/original/, then grade
    python reproduce.py --original ~/Downloads/original     # use copies already there (each checked by sha256)
    ORIGINAL_MIRROR=/srv/pa1/checkpoints python reproduce.py --original   # download from another place

The six files (see common/original.py) are the two pickled NumPy models and the four training logs of
github.com/yongjoon2001/DGIST-Deep-Learning-PA1 at one pinned commit. Missing ones are downloaded into DIR
from the commit's raw URLs (or ORIGINAL_MIRROR: a URL or folder laid out as the repository's checkpoints/),
sha256-checked, through a temp file. Then the two NumPy models are evaluated here through the scripts'
own --eval-only, into OUT/original/<model>/, and OUT/original.md puts, for each of the four models, the
report's numbers (from its logs), the original weights evaluated here, and this kit's runs (read from
OUT/<model>/metrics.json and OUT/seeds/seed*/<model>/metrics.json) side by side, with
OUT/original/loss_overlay.png: the original runs' per-epoch losses over ours.
"""

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import cnn_numpy
import nn_numpy
from common.cli import run_main
from common.data import check_sha256, download, mirror_base
from common.errors import DataError, UserError
from common.io import write_text
from common.models import MODELS, TITLES
from common.original_pickle import COMMIT, FILES, RAW_BASE, REPOSITORY, RUNS
from reproduction.stats import mean_std

DEFAULT_DIR = "data/original"
SCRIPTS = {"nn_numpy": nn_numpy, "cnn_numpy": cnn_numpy}  # the models whose original weights were published


# --- the six files -------------------------------------------------------------------------------------------

def fetch(folder):
    """Local name -> path of the six files in ``folder``, downloading the missing ones; all sha256-checked."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise DataError(f"--original {folder} is not a folder; give the folder that holds (or will hold) the "
                        f"original's six files")
    advice = (f"put the six files ({', '.join(FILES)}) in {folder}; they are under checkpoints/ in "
              f"{REPOSITORY} at commit {COMMIT[:7]}")
    paths = {}
    for name, (repo_path, sha256) in FILES.items():
        path = folder / name
        if path.is_file():
            check_sha256(path, sha256)
        else:
            url = mirror_base("ORIGINAL_MIRROR", RAW_BASE, "the original's checkpoints/ folders") + repo_path
            download(url, path, lambda tmp, source, sha256=sha256: check_sha256(tmp, sha256, source),
                     advice=advice, mirror_var="ORIGINAL_MIRROR")
        paths[name] = path
    return paths


# --- training_metrics.txt ----------------------------------------------------------------------------------------

@dataclass
class TrainingLog:
    """One run of the original, as its training_metrics.txt tells it. Accuracies are fractions, losses nats."""

    title: str
    config: dict  # "Epochs" -> "10", "Learning Rate" -> "0.001", ... (as written)
    train_acc: float
    test_acc: float
    train_loss: float
    test_loss: float
    epochs: list = field(default_factory=list)
    train_losses: list = field(default_factory=list)
    test_losses: list = field(default_factory=list)


FINALS = {"Train Accuracy": "train_acc", "Test Accuracy": "test_acc", "Final Train Loss": "train_loss",
          "Final Test Loss": "test_loss"}
KEY_VALUE = re.compile(r"^\s+([A-Za-z][A-Za-z ()/-]*?):\s*(.+?)\s*$")
LOSS_ROW = re.compile(r"^\s*(\d+)\s+(\S+)\s+(\S+)\s*$")


def read_text(path):
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"no file at {path}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path} is not a text file; it is not a training_metrics.txt of the original") from None
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from None


def number(text, path, what):
    try:
        return float(text.split()[0])
    except (ValueError, IndexError):
        raise UserError(f"{path}: {what} is {text!r}, not a number") from None


def parse_training_metrics(path):
    """Parse the original's training_metrics.txt into a :class:`TrainingLog`; one-line UserError if malformed."""
    lines = read_text(path).splitlines()
    title = next((line.strip() for line in lines if line.strip() and not line.startswith("=")), "")
    config, finals, rows = {}, {}, []
    section = None
    for number_, line in enumerate(lines, 1):
        if line.rstrip().endswith(":") and not line.startswith(" "):
            section = line.rstrip()[:-1]
        elif section == "Loss History (per epoch)" and (row := LOSS_ROW.match(line)):
            rows.append((int(row[1]), number(row[2], path, f"line {number_}'s train loss"),
                         number(row[3], path, f"line {number_}'s test loss")))
        elif (pair := KEY_VALUE.match(line)) and section in ("Training Configuration", "Final Results"):
            key, value = pair.groups()
            if key in FINALS:
                finals[FINALS[key]] = number(value, path, key)
            elif section == "Training Configuration":
                config[key] = value
    missing = [key for key, attr in FINALS.items() if attr not in finals]
    if missing or not rows:
        what = f"no '{missing[0]}:' line" if missing else "no per-epoch loss table"
        raise UserError(f"{path}: {what}; it is not a training_metrics.txt of the original")
    epochs = [r[0] for r in rows]
    if epochs != list(range(1, len(rows) + 1)):
        raise UserError(f"{path}: the loss table's epochs are {epochs}, not 1 to {len(rows)}")
    if "Epochs" in config and config["Epochs"] != str(len(rows)):
        raise UserError(f"{path}: Epochs says {config['Epochs']} but the loss table has {len(rows)} rows")
    return TrainingLog(title, config, epochs=epochs, train_losses=[r[1] for r in rows],
                       test_losses=[r[2] for r in rows], **finals)


# --- this kit's runs -------------------------------------------------------------------------------------------

def kit_records(out_dir, model):
    """This kit's metrics.json records of ``model``: seed 0 and every figures/seeds/seed*/ run on disk."""
    out_dir = Path(out_dir)
    paths = [out_dir / model / "metrics.json", *sorted(out_dir.glob(f"seeds/seed*/{model}/metrics.json"))]
    records = []
    for path in paths:
        if path.is_file():
            try:
                records.append(json.loads(path.read_text()))
            except (OSError, ValueError) as e:
                raise DataError(f"cannot read {path} ({e}); run reproduce.py again to rewrite it") from None
    return records


def fmt(values, digits, scale=1.0):
    if not len(values):
        return "—"
    mean, std = mean_std([scale * v for v in values])
    return f"{mean:.{digits}f}" if len(values) == 1 else f"{mean:.{digits}f} ± {std:.{digits}f}"


def row(model, source, train_acc, test_acc, train_loss, test_loss):
    """A table row; each value a list (one per run) of fractions (accuracies) or nats (losses)."""
    return (f"| {TITLES[model]} | {source} | {fmt(train_acc, 2, 100)} | {fmt(test_acc, 2, 100)} | "
            f"{fmt(train_loss, 4)} | {fmt(test_loss, 4)} |")


# --- original.md and the overlay --------------------------------------------------------------------------------

def write_markdown(path, command, logs, graded, kit):
    """``command``: what wrote it (:func:`command_line`); ``logs``: model -> TrainingLog; ``graded``: model ->
    metrics.json of the original weights; ``kit``: model -> this kit's records."""
    lines = ["# The original's own weights and logs", "",
             f"Written by `{command}` from the six files of {REPOSITORY} at commit {COMMIT} (sha256-checked, "
             f"so any folder holding them gives these numbers). Accuracies in %, losses in "
             f"nats (mean cross-entropy) on the whole 60,000 training and 10,000 test images.", "",
             "| model | numbers from | train acc | test acc | train loss | test loss |", "|---|---|---|---|---|---|"]
    for model in MODELS:
        log = logs[model]
        lines.append(row(model, f"the report (its `{RUNS[model]}/training_metrics.txt`)",
                         [log.train_acc], [log.test_acc], [log.train_loss], [log.test_loss]))
        if model in graded:
            f = graded[model]["final"]
            lines.append(row(model, f"the original's weights, evaluated here ([figures](original/{model}/))",
                             [f["train_acc"]], [f["test_acc"]], [f["train_loss"]], [f["test_loss"]]))
        runs = [r["final"] for r in kit[model]]
        lines.append(row(model, f"this kit, {len(runs)} seed(s)" if runs else "this kit: no run on disk yet",
                         *([r[k] for r in runs] for k in ("train_acc", "test_acc", "train_loss", "test_loss"))))
    lines += ["", fidelity_sentence(logs, graded), "", LOSS_NOTE, "",
              "The report's configurations, from its logs:", "",
              "| model | " + " | ".join(CONFIG_KEYS) + " |", "|---|" + "---|" * len(CONFIG_KEYS)]
    lines += [f"| {TITLES[m]} | " + " | ".join(logs[m].config.get(k, "—") for k in CONFIG_KEYS) + " |"
              for m in MODELS]
    lines += ["", "![the original runs' per-epoch losses beside this kit's](original/loss_overlay.png)", ""]
    write_text(path, "\n".join(lines))


CONFIG_KEYS = ["Epochs", "Learning Rate", "Batch Size", "Optimizer"]
LOSS_NOTE = ("The report's own rows were measured differently from the others: its train loss is the mean "
             "over the last epoch's batches while the weights still changed (its first epochs' train losses lie "
             "far above their test losses), not the final weights' loss on the whole training set; and its NumPy "
             "MLP's test loss is −log(p + 1e-7) averaged over batches of 32, the last one of 16 "
             "(tests/test_original.py recomputes it from the original's weights). The overlay below therefore "
             "sets the original's train losses beside this kit's running means of the same kind.")


def fidelity_sentence(logs, graded):
    """Whether the original weights, run through this kit's models, give the report's test accuracy."""
    parts = []
    for model, record in graded.items():
        acc, reported = record["final"]["test_acc"], logs[model].test_acc
        verdict = "exactly the report's" if round(acc, 4) == round(reported, 4) else f"not the report's {reported:.2%}"
        parts.append(f"{TITLES[model]} {acc:.2%} ({verdict})")
    dtype = graded[next(iter(graded))]["config"]["evaluated_with"]["dtype"]
    return ("The original's weights, loaded into this kit's NumPy models and evaluated on the 10,000 test "
            f"images ({dtype}), give: " + "; ".join(parts) + ".")


def plot_overlay(path, logs, kit):
    """2x2: for each model, the original run's per-epoch train/test loss over this kit's (mean, min-max band)."""
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    from common.plots import STYLE, save

    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
        for ax, model in zip(axes.flat, MODELS):
            log = logs[model]
            # The original's train loss is the mean over each epoch's batches, so it meets ours of that kind.
            for key, ours, color, marker in (("train", "train_loss_running", "tab:blue", "o"),
                                             ("test", "test_loss", "tab:orange", "s")):
                ax.plot(log.epochs, getattr(log, f"{key}_losses"), marker + "-", color=color, markersize=4,
                        label=f"{key}, original")
                histories = [r["history"] for r in kit[model]]
                if histories:
                    n = min(len(h) for h in histories)
                    values = np.array([[h[i][ours] for i in range(n)] for h in histories])
                    epochs = [histories[0][i]["epoch"] for i in range(n)]
                    ax.plot(epochs, values.mean(axis=0), marker + "--", color=color, markersize=4,
                            markerfacecolor="white", label=f"{key}, this kit (mean of {len(histories)})")
                    if len(histories) > 1:
                        ax.fill_between(epochs, values.min(axis=0), values.max(axis=0), color=color, alpha=0.2)
            ax.set_yscale("log")
            ax.set_title(f"{TITLES[model]}: original vs this kit")
            ax.set_xlabel("epoch")
            ax.set_ylabel("cross-entropy loss (log scale)")
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
        fig.suptitle("Per-epoch loss of the original runs (solid) and of this kit's (dashed; band = min–max over "
                     "seeds)\ntrain = mean over the epoch's batches, as the original logged it; test = whole test set")
        fig.tight_layout()
        save(fig, path)


# --- the command ---------------------------------------------------------------------------------------------

def grade(model, checkpoint, out_dir, data_dir):
    """The original weights through ``model``'s own --eval-only: figures into OUT/original/<model>/."""
    argv = ["--eval-only", "--checkpoint", str(checkpoint), "--out-dir", str(Path(out_dir) / "original"), "--quiet"]
    if data_dir:
        argv += ["--data-dir", data_dir]
    SCRIPTS[model].main(argv)
    return json.loads((Path(out_dir) / "original" / model / "metrics.json").read_text())


def run(args):
    folder = Path(args.original)
    out_dir = Path(args.out_dir or "figures")
    paths = fetch(folder)
    logs = {m: parse_training_metrics(paths[f"{run}-training_metrics.txt"])
            for m, run in RUNS.items()}
    graded = {m: grade(m, paths[f"{RUNS[m]}-model.pkl"], out_dir, args.data_dir) for m in SCRIPTS}
    kit = {m: kit_records(out_dir, m) for m in MODELS}
    write_markdown(out_dir / "original.md", command_line(out_dir), logs, graded, kit)
    plot_overlay(out_dir / "original" / "loss_overlay.png", logs, kit)
    print(f"reproduce.py: {fidelity_sentence(logs, graded)} Written: {out_dir / 'original.md'}, "
          f"{out_dir / 'original'}/")


def command_line(out_dir):
    """The command that rewrites original.md, without the folder the six files were read from: they are
    sha256-checked, so where they sat on this machine changes nothing (and names nobody else's machine)."""
    return "python reproduce.py --original" + ("" if Path(out_dir) == Path("figures") else f" --out-dir {out_dir}")


def main(args):
    """`reproduce.py --original [DIR]`; ``args`` from reproduce.py's parser. Returns the exit code."""
    return run_main(lambda: run(args), "reproduce.py")


if __name__ == "__main__":  # pragma: no cover - the command is `reproduce.py --original`
    raise SystemExit("run it as: python reproduce.py --original [DIR]")
