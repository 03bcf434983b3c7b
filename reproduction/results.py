"""The results page: figures/results.md (ours beside the report's, seed noise, the report against our seeds)
and figures/comparison.png, from the metrics.json records of the runs.

    records, sources = load_records("figures", finished, models_run)   # model -> records by seed, where from
    text = write_results(args, records, sources, total_seconds, failures, peaks, trained)
    rows = parse_results_table(text)                                 # the table back, as dicts keyed by COLUMNS

Pure functions over records, except write_results and plot_comparison, which write OUT/results.md and
OUT/comparison.png.
"""

import json
import math
import os
import platform
import re
import sys
from pathlib import Path

import numpy as np

from common.io import write_text
from common.models import MODELS, TITLES
from reproduction import stats
from reproduction.procedure import report_against_seeds
from reproduction.report import REPORT
from reproduction.runs import run_dir, seeds_on_disk
from reproduction.stats import mean_std

# The report's final numbers (reproduction/report.py: the "Final Results" of its four training logs).
REPORT_TEST_ACC = {model: numbers["test_acc"] for model, numbers in REPORT.items()}
COLUMNS = ["Model", "Train Acc (%)", "Test Acc (%)", "Train Loss", "Test Loss", "epochs", "seconds",
           "Report Train Acc (%)", "Report Test Acc (%)", "Report Train Loss", "Report Test Loss",
           "Δ Test Acc (pp)", "run"]


def load_records(out_dir, finished, models_run, kept=(), now="this run"):
    """-> (model -> list of metrics.json records by seed, model -> where they come from), in MODELS order.

    Models run now contribute the seeds that finished now (``now`` names them: "this run", or "re-evaluated
    now" for --eval-only) and the seeds in ``kept`` (--eval-only found no checkpoint but a record); every
    other model, whatever records an earlier run left in ``out_dir`` (seed 0 and figures/seeds/seed<k>/),
    so that `--models X` updates X's row and keeps the others'.
    """
    records, sources = {}, {}
    for model in MODELS:
        if model in models_run:
            fresh = sorted(seed for m, seed in finished if m == model)
            earlier = sorted(seed for m, seed in kept if m == model)
        else:
            fresh, earlier = [], seeds_on_disk(out_dir, model)
        read = {seed: json.loads((run_dir(out_dir, model, seed) / "metrics.json").read_text())
                for seed in fresh + earlier}
        if not read:
            continue
        records[model] = [read[seed] for seed in sorted(read)]
        parts = [now] if fresh else []
        if earlier:
            parts.append(earlier_run([read[seed] for seed in earlier]))
        if fresh and earlier:  # the row's seed list follows: "now (seed 0) + earlier run (...), seeds 0, 1, 2"
            parts[0] += f" ({seed_words(fresh)})"
        sources[model] = " + ".join(parts)
    return records, sources


def seed_words(seeds):
    return f"seed {seeds[0]}" if len(seeds) == 1 else "seeds " + ", ".join(map(str, seeds))


def earlier_run(runs):
    finished = [r["finished_at"] for r in runs if r.get("finished_at")]
    return f"earlier run ({max(finished)[:16].replace('T', ' ')} UTC)" if finished else "earlier run"


def fmt(values, digits):
    mean, std = mean_std(values)
    return f"{mean:.{digits}f}" if len(values) == 1 else f"{mean:.{digits}f} ± {std:.{digits}f}"


def summary_rows(records, sources=None):
    rows = []
    for model, runs in records.items():
        finals = [r["final"] for r in runs]
        test_acc = [100 * f["test_acc"] for f in finals]
        rows.append({
            "Model": f"{model} ({TITLES[model]})",
            "Train Acc (%)": fmt([100 * f["train_acc"] for f in finals], 2),
            "Test Acc (%)": fmt(test_acc, 2),
            "Train Loss": fmt([f["train_loss"] for f in finals], 4),
            "Test Loss": fmt([f["test_loss"] for f in finals], 4),
            "epochs": str(runs[0]["config"]["epochs"]),
            "seconds": fmt([r["seconds_total"] for r in runs], 0),
            "Report Train Acc (%)": f"{REPORT[model]['train_acc']:.2f}",
            "Report Test Acc (%)": f"{REPORT[model]['test_acc']:.2f}",
            "Report Train Loss": f"{REPORT[model]['train_loss']:.4f}",
            "Report Test Loss": f"{REPORT[model]['test_loss']:.4f}",
            "Δ Test Acc (pp)": f"{mean_std(test_acc)[0] - REPORT_TEST_ACC[model]:+.2f}",
            "run": f"{(sources or {}).get(model, 'this run')}, {seed_list(runs)}",
        })
    return rows


def seed_list(runs):
    return seed_words([r["config"].get("seed", "?") for r in runs])


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


NOISE_PAIRS = [("cnn_numpy", "nn_numpy", "CNN vs MLP, NumPy"), ("cnn_torch", "nn_torch", "CNN vs MLP, PyTorch"),
               ("cnn_numpy", "nn_torch", "CNN (NumPy) vs MLP (PyTorch)"),
               ("cnn_torch", "nn_numpy", "CNN (PyTorch) vs MLP (NumPy)"),
               ("nn_torch", "nn_numpy", "PyTorch vs NumPy, MLP"), ("cnn_torch", "cnn_numpy", "PyTorch vs NumPy, CNN")]


def percent_test_accuracies(records, model):
    return [100 * r["final"]["test_acc"] for r in records.get(model, [])]


def noise_section(records):
    """The seed-noise table: Welch's t-test per comparison, Holm-adjusted over the table (analysis.stats)."""
    tests = [(title, stats.welch(percent_test_accuracies(records, a), percent_test_accuracies(records, b)))
             for a, b, title in NOISE_PAIRS]
    tests = [(title, w) for title, w in tests if w is not None]
    if not tests:
        return ""
    adjusted = stats.holm([w.p for _, w in tests])
    lines = [f"| {title} | {w.diff:+.2f} | {w.se:.2f} | {w.t:+.1f} | {w.df:.1f} | {w.p:.3f} | {p_adj:.3f} | "
             f"{stats.verdict(p_adj)} |" for (title, w), p_adj in zip(tests, adjusted)]
    n = sorted({len(v) for v in records.values()})
    return ("\n## Beyond seed noise?\n\nDifference of mean test accuracy over the seeds (percentage points), "
            f"its standard error, Welch's t with its degrees of freedom, and the p-value before and after "
            f"Holm's correction for the {len(tests)} comparisons ({'/'.join(map(str, n))} seeds per model). "
            f"Rule: {stats.RULE}.\n\n"
            "| comparison | Δ test acc (pp) | std. error | t | df | p | p (Holm) | verdict |\n"
            "|---|---|---|---|---|---|---|---|\n" + "\n".join(lines) + "\n")


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
                      label=TITLES[model])
        left.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        left.set_xlabel("epoch")
        left.set_ylabel("test cross-entropy loss")
        left.set_title("Test loss per epoch (seed 0)")
        left.grid(True, alpha=0.3)
        left.legend()
        x = np.arange(len(models))
        spread = [mean_std(percent_test_accuracies(records, m)) for m in models]
        right.errorbar(x - 0.08, [s[0] for s in spread], yerr=[s[1] for s in spread], fmt="o", capsize=4,
                       color="tab:blue", label=f"ours (mean ± std, {min(len(records[m]) for m in models)} seed(s))")
        right.scatter(x + 0.08, [REPORT_TEST_ACC[m] for m in models], marker="D", color="tab:red", zorder=3,
                      label="report")
        for xi, (mean, std) in zip(x, spread):
            right.annotate(f"{mean:.2f}", (xi - 0.08, mean + std), textcoords="offset points", xytext=(0, 5),
                           ha="center", fontsize=9, color="tab:blue")
        low = min(min(s[0] - s[1] for s in spread), min(REPORT_TEST_ACC[m] for m in models))
        high = max(max(s[0] + s[1] for s in spread), max(REPORT_TEST_ACC[m] for m in models))
        right.set_ylim(math.floor(low * 4 - 1) / 4, min(100, math.ceil(high * 4 + 1) / 4))
        right.set_xlim(-0.5, len(models) - 0.5)
        right.set_xticks(x, [TITLES[m].replace(", ", "\n") for m in models])
        right.set_ylabel("test accuracy (%)")
        right.set_title("Test accuracy: ours vs the report")
        right.grid(True, axis="y", alpha=0.3)
        right.legend(loc="best")
        fig.tight_layout()
        save(fig, path)


def write_results(args, records, sources, total_seconds, failures, peaks, trained=()):
    """results.md and comparison.png; ``trained``: the (model, seed) runs trained now."""
    rows = summary_rows(records, sources)
    command = "python reproduce.py" + "".join(f" {a}" for a in sys.argv[1:])
    training = training_seconds(records, trained)
    took = f"this run took {total_seconds / 60:.1f} min ({total_seconds:.0f} s)"
    if training and not args.eval_only:
        took += (f", of which {training:.0f} s in the scripts' training loops ({total_seconds / training:.2f}x; "
                 f"the rest is start-up, evaluation and figures)")
    produced = (f"Produced by `{command}` on {platform.machine()} with {os.cpu_count()} CPU cores, "
                f"Python {platform.python_version()}; {took}")
    earlier = earlier_results(args.out_dir) if args.eval_only or not trained else {}
    if earlier.get("trained"):  # the training's provenance stays; this run is named beside it
        what = "Re-evaluated" if args.eval_only else "Rewritten, every run reused from disk,"
        produced = (f"{what} by `{command}` ({took[len('this run took '):]}); the runs were trained by "
                    + earlier["trained"].replace("; this run took", "; that run took", 1))
    text = (f"# Results\n\n{produced}. Mean ± sample std "
            f"over the seeds named in the last column, which also says whether a row comes from this run or "
            f"was kept from an earlier one.\n"
            f"Accuracies in %, losses are mean cross-entropy (nats); our train numbers are measured on the whole "
            f"training set after the last epoch (the report's train loss is its last epoch's running average); "
            f"seconds = one whole run (training, evaluation, figures).\n\n"
            + results_table(rows))
    if earlier.get("peaks"):
        text += "\n" + earlier["peaks"] + "\n"
    if peaks:
        text += (f"\nPeak memory per {'evaluation' if args.eval_only else 'run'} (MB, largest over seeds): "
                 + ", ".join(f"{m} {max(p):.0f}" for m, p in peaks.items()) + ".\n")
    text += noise_section(records)
    text += report_against_seeds(records)
    if failures:
        text += "\n## Failed runs\n\n" + "\n".join(f"- {m} seed {s}: {why}" for m, s, why in failures) + "\n"
    write_text(Path(args.out_dir) / "results.md", text)
    plot_comparison(Path(args.out_dir) / "comparison.png", records)
    return text


def earlier_results(out_dir):
    """From the results.md on disk, what an --eval-only rewrite must keep: which command trained the runs, where
    and how long it took ("trained": "`command` on ...; this run took ..."), and the training runs' peak-memory
    line ("peaks"); {} when there is none."""
    path = Path(out_dir) / "results.md"
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    trained = re.search(r"(?:Produced|the runs were trained) by (`.*?)\. Mean ± sample std", text, re.S)
    peaks = re.search(r"^Peak memory per run .*$", text, re.M)
    return {"trained": trained and trained[1], "peaks": peaks and peaks[0]}


def training_seconds(records, trained):
    """Seconds the runs trained now ((model, seed) pairs) spent in their training loops: their epochs' seconds."""
    return sum(entry["seconds"] for model, runs in records.items() for record in runs
               if (model, record["config"].get("seed")) in trained for entry in record["history"])
