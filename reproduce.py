"""Regenerate the whole report: train the four models with the report's configurations, redraw every figure,
and write figures/results.md (ours beside the report's) and figures/comparison.png.

    python reproduce.py                          # one seed, the four models (what `make reproduce` runs)
    python reproduce.py --seeds 3                # every model with seeds 0, 1, 2: mean ± std, seed-noise check
    python reproduce.py --models cnn_numpy,cnn_torch
    python reproduce.py --quick                  # smoke run: 1 epoch on 2,000 images, into figures-quick/
    python reproduce.py --eval-only              # redraw everything from the saved checkpoints, no training

Each model trains in its own process (a crash loses only that model; the NumPy runs never load torch),
its output is streamed here with the model's name in front, and kept as train.log next to its figures.
Seed 0 writes figures/<model>/ and checkpoints/<model>.*; seed k > 0 writes figures/seeds/seed<k>/<model>/.
"""

import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import original
from common.cli import Parser, positive_int
from common.io import write_text
from common.run import TITLES

MODELS = ["nn_numpy", "nn_torch", "cnn_numpy", "cnn_torch"]
LABELS = TITLES
REPORT_TEST_ACC = {"nn_numpy": 97.94, "nn_torch": 97.97, "cnn_numpy": 98.17, "cnn_torch": 98.77}
# --quick: one epoch on the first 2,000 training images. At the report's batch sizes that is too few steps
# to learn much (40-82% test accuracy), so the smoke run takes smaller batches (and, for the plain-SGD CNN,
# a larger step); tests/test_scripts.py uses the same settings.
QUICK_FLAGS = {"nn_numpy": ["--batch-size", "8"], "nn_torch": ["--batch-size", "8"],
               "cnn_numpy": ["--batch-size", "8", "--lr", "0.05"], "cnn_torch": ["--batch-size", "8"]}
QUICK_BASE = ["--epochs", "1", "--limit-train", "2000"]
COLUMNS = ["Model", "Train Acc (%)", "Test Acc (%)", "Train Loss", "Test Loss", "epochs", "seconds",
           "Report Test Acc (%)", "Δ Test Acc (pp)"]
ROOT = Path(__file__).resolve().parent


# --- running one model ---------------------------------------------------------------------------------------

def run_dir(out_dir, model, seed):
    return Path(out_dir) / model if seed == 0 else Path(out_dir) / "seeds" / f"seed{seed}" / model


def checkpoint_path(checkpoint_dir, model, seed):
    name = model + (".npz" if model.endswith("numpy") else ".pt")
    return Path(checkpoint_dir) / name if seed == 0 else Path(checkpoint_dir) / f"seed{seed}" / name


def train_one(model, seed, args):
    """Run ``model``'s script in a child process; stream and keep its log. Returns (exit code, last line)."""
    out_root = run_dir(args.out_dir, model, seed).parent
    command = [sys.executable, str(ROOT / f"{model}.py"), "--seed", str(seed), "--out-dir", str(out_root),
               "--checkpoint", str(checkpoint_path(args.checkpoint_dir, model, seed)), "--quiet"]
    if args.data_dir:
        command += ["--data-dir", args.data_dir]
    if args.quick:
        command += QUICK_BASE + QUICK_FLAGS[model]
    if args.eval_only:
        command.append("--eval-only")
    log = run_dir(args.out_dir, model, seed) / "train.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    tag = f"[{model} seed {seed}]"
    lines = []
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as child:
        for line in child.stdout:
            print(f"{tag} {line}", end="", flush=True)
            lines.append(line)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    peak_mb = usage.ru_maxrss / 1024  # kB on Linux
    lines.append(f"# exit code {child.returncode}; peak memory {peak_mb:.0f} MB\n")
    write_text(log, "".join(lines))
    return child.returncode, (lines[-2].strip() if len(lines) > 1 else ""), peak_mb


# --- results -------------------------------------------------------------------------------------------------

def load_records(out_dir, finished):
    """model -> list of metrics.json records, one per (model, seed) in ``finished``, in MODELS order."""
    records = {}
    for model, seed in sorted(finished, key=lambda ms: (MODELS.index(ms[0]), ms[1])):
        path = run_dir(out_dir, model, seed) / "metrics.json"
        records.setdefault(model, []).append(json.loads(path.read_text()))
    return records


def mean_std(values):
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def fmt(values, digits):
    mean, std = mean_std(values)
    return f"{mean:.{digits}f}" if len(values) == 1 else f"{mean:.{digits}f} ± {std:.{digits}f}"


def summary_rows(records):
    rows = []
    for model, runs in records.items():
        finals = [r["final"] for r in runs]
        test_acc = [100 * f["test_acc"] for f in finals]
        rows.append({
            "Model": f"{model} ({LABELS[model]})",
            "Train Acc (%)": fmt([100 * f["train_acc"] for f in finals], 2),
            "Test Acc (%)": fmt(test_acc, 2),
            "Train Loss": fmt([f["train_loss"] for f in finals], 4),
            "Test Loss": fmt([f["test_loss"] for f in finals], 4),
            "epochs": str(runs[0]["config"]["epochs"]),
            "seconds": fmt([r["seconds_total"] for r in runs], 0),
            "Report Test Acc (%)": f"{REPORT_TEST_ACC[model]:.2f}",
            "Δ Test Acc (pp)": f"{mean_std(test_acc)[0] - REPORT_TEST_ACC[model]:+.2f}",
        })
    return rows


def results_table(rows):
    """A markdown table of ``rows`` (dicts keyed by COLUMNS)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row[c] for c in COLUMNS) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def parse_results_table(text):
    """The rows of the first markdown table in ``text`` with our columns (inverse of results_table)."""
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("|")]
    start = next(i for i, line in enumerate(lines) if [c.strip() for c in line.strip("|").split("|")] == COLUMNS)
    rows = []
    for line in lines[start + 2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) != len(COLUMNS):
            break
        rows.append(dict(zip(COLUMNS, cells)))
    return rows


def compare(records, a, b):
    """Difference of mean test accuracy a - b (pp), its standard error, and Welch's t; None below 2 seeds."""
    if a not in records or b not in records or min(len(records[a]), len(records[b])) < 2:
        return None
    xa = np.array([100 * r["final"]["test_acc"] for r in records[a]])
    xb = np.array([100 * r["final"]["test_acc"] for r in records[b]])
    diff = xa.mean() - xb.mean()
    se = math.sqrt(xa.var(ddof=1) / len(xa) + xb.var(ddof=1) / len(xb))
    return diff, se, (diff / se if se > 0 else math.inf * np.sign(diff))


def noise_section(records):
    pairs = [("cnn_numpy", "nn_numpy", "CNN vs MLP, NumPy"), ("cnn_torch", "nn_torch", "CNN vs MLP, PyTorch"),
             ("cnn_numpy", "nn_torch", "CNN (NumPy) vs MLP (PyTorch)"),
             ("cnn_torch", "nn_numpy", "CNN (PyTorch) vs MLP (NumPy)"),
             ("nn_torch", "nn_numpy", "PyTorch vs NumPy, MLP"), ("cnn_torch", "cnn_numpy", "PyTorch vs NumPy, CNN")]
    lines = []
    for a, b, title in pairs:
        result = compare(records, a, b)
        if result is None:
            continue
        diff, se, t = result
        verdict = ("holds beyond seed noise" if abs(t) >= 3 else
                   "likely, but within about 3 standard errors" if abs(t) >= 2 else "not distinguishable from seed noise")
        lines.append(f"| {title} | {diff:+.2f} | {se:.2f} | {t:+.1f} | {verdict} |")
    if not lines:
        return ""
    n = min(len(v) for v in records.values())
    return ("\n## Beyond seed noise?\n\nDifference of mean test accuracy over the seeds (percentage points), its "
            f"standard error and Welch's t ({n} seeds each; |t| ≥ 3 counted as beyond noise):\n\n"
            "| comparison | Δ test acc (pp) | std. error | t | verdict |\n|---|---|---|---|---|\n"
            + "\n".join(lines) + "\n")


def plot_comparison(path, records):
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from common.plots import STYLE, save

    models = [m for m in MODELS if m in records]
    with plt.rc_context(STYLE):
        fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [1.3, 1]})
        for model in models:
            history = records[model][0]["history"]
            left.plot([h["epoch"] for h in history], [h["test_loss"] for h in history], "o-", markersize=3,
                      label=LABELS[model])
        left.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        left.set_xlabel("epoch")
        left.set_ylabel("test cross-entropy loss")
        left.set_title("Test loss per epoch (seed 0)")
        left.grid(True, alpha=0.3)
        left.legend()
        x = np.arange(len(models))
        stats = [mean_std([100 * r["final"]["test_acc"] for r in records[m]]) for m in models]
        right.errorbar(x - 0.08, [s[0] for s in stats], yerr=[s[1] for s in stats], fmt="o", capsize=4,
                       color="tab:blue", label=f"ours (mean ± std, {min(len(records[m]) for m in models)} seed(s))")
        right.scatter(x + 0.08, [REPORT_TEST_ACC[m] for m in models], marker="D", color="tab:red", zorder=3,
                      label="report")
        for xi, (mean, std) in zip(x, stats):
            right.annotate(f"{mean:.2f}", (xi - 0.08, mean + std), textcoords="offset points", xytext=(0, 5),
                           ha="center", fontsize=9, color="tab:blue")
        low = min(min(s[0] - s[1] for s in stats), min(REPORT_TEST_ACC[m] for m in models))
        high = max(max(s[0] + s[1] for s in stats), max(REPORT_TEST_ACC[m] for m in models))
        right.set_ylim(math.floor(low * 4 - 1) / 4, min(100, math.ceil(high * 4 + 1) / 4))
        right.set_xlim(-0.5, len(models) - 0.5)
        right.set_xticks(x, [LABELS[m].replace(", ", "\n") for m in models])
        right.set_ylabel("test accuracy (%)")
        right.set_title("Test accuracy: ours vs the report")
        right.grid(True, axis="y", alpha=0.3)
        right.legend(loc="best")
        fig.tight_layout()
        save(fig, path)


def write_results(args, records, total_seconds, failures, peaks):
    rows = summary_rows(records)
    seeds = f"{args.seeds} seeds (0–{args.seeds - 1}), mean ± sample std" if args.seeds > 1 else "seed 0"
    command = "python reproduce.py" + "".join(f" {a}" for a in sys.argv[1:])
    text = (f"# Results\n\nProduced by `{command}` on {platform.machine()} with {os.cpu_count()} CPU cores, "
            f"Python {platform.python_version()}; {seeds}; total {total_seconds / 60:.1f} min.\n"
            f"Accuracies in %, losses are mean cross-entropy (nats); train numbers are measured on the whole "
            f"training set after the last epoch; seconds = one whole run (training, evaluation, figures).\n\n"
            + results_table(rows))
    if peaks:
        text += ("\nPeak memory per run (MB, largest over seeds): "
                 + ", ".join(f"{m} {max(p):.0f}" for m, p in peaks.items()) + ".\n")
    text += noise_section(records)
    if failures:
        text += "\n## Failed runs\n\n" + "\n".join(f"- {m} seed {s}: {why}" for m, s, why in failures) + "\n"
    write_text(Path(args.out_dir) / "results.md", text)
    plot_comparison(Path(args.out_dir) / "comparison.png", records)
    return text


def build_parser():
    p = Parser(prog="reproduce.py", description="Train the four models and regenerate the report's figures.")
    p.add_argument("--models", default=",".join(MODELS),
                   help="comma-separated subset of " + ", ".join(MODELS) + " (default: all four)")
    p.add_argument("--seeds", type=positive_int, default=1,
                   help="run every model with seeds 0..N-1 and report mean ± std (default: %(default)s)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 1 epoch on 2,000 training images, into figures-quick/ unless --out-dir")
    p.add_argument("--eval-only", action="store_true",
                   help="no training: redraw everything from the saved checkpoints")
    p.add_argument("--out-dir", default=None, help="where figures and results go (default: figures)")
    p.add_argument("--checkpoint-dir", default=None, help="where checkpoints go (default: checkpoints)")
    p.add_argument("--data-dir", default=None, help="MNIST folder (default: $MNIST_DIR, then ./data)")
    p.add_argument("--original", nargs="?", const=original.DEFAULT_DIR, default=None, metavar="DIR",
                   help="instead of training: grade the original report's own weights and logs, taken from DIR "
                        f"(downloaded there if missing; DIR default: {original.DEFAULT_DIR}), into "
                        "OUT_DIR/original.md and OUT_DIR/original/")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.original is not None:
        return original.main(args)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        build_parser().error(f"--models: unknown model(s) {', '.join(unknown) or '(none)'}; "
                             f"choose from {', '.join(MODELS)}")
    args.out_dir = args.out_dir or ("figures-quick" if args.quick else "figures")
    args.checkpoint_dir = args.checkpoint_dir or str(Path(args.out_dir) / "checkpoints" if args.quick
                                                     else "checkpoints")
    started = time.perf_counter()
    failures, finished, peaks = [], [], {}
    try:
        for seed in range(args.seeds):
            for model in models:
                code, last_line, peak_mb = train_one(model, seed, args)
                if code != 0:
                    failures.append((model, seed, f"exit code {code}: {last_line}"))
                    print(f"reproduce.py: {model} seed {seed} failed (exit code {code}); going on with the others",
                          file=sys.stderr, flush=True)
                else:
                    finished.append((model, seed))
                    peaks.setdefault(model, []).append(peak_mb)
    except KeyboardInterrupt:
        print("reproduce.py: interrupted; finished runs keep their outputs", file=sys.stderr)
        return 130
    total = time.perf_counter() - started
    records = load_records(args.out_dir, finished)
    if records:
        text = write_results(args, records, total, failures, peaks)
        print("\n" + text)
    print(f"reproduce.py: {sum(len(v) for v in records.values())} run(s) finished, {len(failures)} failed; "
          f"total {total / 60:.1f} min; results in {Path(args.out_dir) / 'results.md'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
