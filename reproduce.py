"""Regenerate the whole report: train the four models with the report's configurations, redraw every figure,
and write figures/results.md (ours beside the report's) and figures/comparison.png.

    python reproduce.py                          # one seed, the four models (what `make reproduce` runs)
    python reproduce.py --seeds 3                # every model with seeds 0, 1, 2: mean ± std, seed-noise check
    python reproduce.py --models cnn_numpy,cnn_torch
    python reproduce.py --quick                  # smoke run on 2,000 images, into runs/quick/ (see --help)
    python reproduce.py --eval-only              # re-evaluate the saved checkpoints, no training; seeds
                                                 # without a checkpoint keep their recorded rows
    python reproduce.py --findings               # the report's Discussion checked: extra runs, 3 seeds, about
                                                 # 40 min; uses the main runs on disk (run --seeds 3 first)
    python reproduce.py --seeds 8 --reuse        # after --seeds 3: checks seeds 0-2 by their first epoch,
                                                 # trains seeds 3-7

Every run is trained, unless --reuse: then a run already on disk is reused when its configuration and seed
match and either this machine trained (or checked) it with today's code, or its first epoch, trained again here,
matches bit for bit (common/reuse.py); anything else is trained again, never mixed. One line per run says
which, and why. --findings reuses the runs on disk that way (its extra runs and the main ones).

Each model trains in its own process (a crash loses only that model; the NumPy runs never load torch),
its output is streamed here with the model's name in front, and kept as train.log next to its figures
(eval.log for --eval-only: an evaluation never replaces the log of the training that made the weights).
Seed 0 writes figures/<model>/ and checkpoints/<model>.*; seed k > 0 writes figures/seeds/seed<k>/<model>/
and checkpoints/seed<k>/<model>.*.
"""

import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import original
from analysis import stats
from analysis.procedure import report_against_seeds
from analysis.report import REPORT
from analysis.stats import mean_std
from common.cli import QUICK_EXAMPLE, REFERENCE_DIR, Parser, positive_int
from common.io import write_json, write_text
from common.reuse import REUSE, VERIFY, code_digest, decide, machine_id, mark_verified, verify
from common.run import TITLES

MODELS = ["nn_numpy", "nn_torch", "cnn_numpy", "cnn_torch"]
LABELS = TITLES
# The report's final numbers (analysis/report.py: the "Final Results" of its four training logs).
REPORT_TEST_ACC = {model: numbers["test_acc"] for model, numbers in REPORT.items()}
# --quick: one epoch on the first 2,000 training images. At the report's batch sizes that is too few steps
# to learn much (40-82% test accuracy), so the smoke run takes smaller batches (and, for the plain-SGD CNN,
# a larger step; the MLPs, 75-83% after one such epoch, get three); tests/test_scripts.py uses the same
# settings, and they are the quick runs the scripts' --help recommends (common.cli.QUICK_EXAMPLE).
QUICK_FLAGS = {model: QUICK_EXAMPLE[model].split() for model in MODELS}  # one source: common.cli
QUICK_BASE = ["--epochs", "1", "--limit-train", "2000"]  # what the extra --findings runs take with --quick
QUICK_DIR = "runs/quick"  # scratch, never committed (.gitignore): a smoke run leaves figures/ alone


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
COLUMNS = ["Model", "Train Acc (%)", "Test Acc (%)", "Train Loss", "Test Loss", "epochs", "seconds",
           "Report Train Acc (%)", "Report Test Acc (%)", "Report Train Loss", "Report Test Loss",
           "Δ Test Acc (pp)", "run"]
ROOT = Path(__file__).resolve().parent


# --- running one model ---------------------------------------------------------------------------------------

def run_dir(out_dir, model, seed):
    return Path(out_dir) / model if seed == 0 else Path(out_dir) / "seeds" / f"seed{seed}" / model


def checkpoint_name(model):
    return model + (".npz" if model.endswith("numpy") else ".pt")


def checkpoint_path(checkpoint_dir, model, seed):
    name = checkpoint_name(model)
    return Path(checkpoint_dir) / name if seed == 0 else Path(checkpoint_dir) / f"seed{seed}" / name


def train_one(model, seed, args, group=None):
    """Run ``model``'s script in a child process; stream and keep its log.

    group: None for the report's configuration, else a name of FINDINGS_RUNS (its flags, its own folders,
    no PNGs). Returns (exit code, last line, peak memory in MB or None).
    """
    if group is None:
        out_root, checkpoint = run_dir(args.out_dir, model, seed).parent, checkpoint_to_use(model, seed, args)[0]
    else:
        out_root = findings_run_dir(args.out_dir, group, seed)
        checkpoint = Path(args.checkpoint_dir) / "findings" / group / f"seed{seed}" / checkpoint_name(model)
    command = [sys.executable, str(ROOT / f"{model}.py"), "--seed", str(seed), "--out-dir", str(out_root),
               "--checkpoint", str(checkpoint), "--quiet", *run_flags(model, args, group)]
    if group is not None:
        command.append("--no-figures")
    if args.data_dir:
        command += ["--data-dir", args.data_dir]
    if args.eval_only:
        command.append("--eval-only")
    log = Path(out_root) / model / ("eval.log" if args.eval_only else "train.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    tag = f"[{group or model} seed {seed}]"
    lines = []
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as child:
        for line in child.stdout:
            print(f"{tag} {line}", end="", flush=True)
            lines.append(line)
        child.returncode, peak_mb = wait_with_peak_memory(child)
    peak = "not measured on this system" if peak_mb is None else f"{peak_mb:.0f} MB"
    lines.append(f"# exit code {child.returncode}; peak memory {peak}\n")
    # A failed run never replaces the log of a finished one: it goes beside it.
    write_text(log if child.returncode == 0 else log.with_name(f"{log.stem}.failed.log"), "".join(lines))
    return child.returncode, (lines[-2].strip() if len(lines) > 1 else ""), peak_mb


def run_flags(model, args, group=None):
    """The flags that make a run's configuration: the group's (FINDINGS_RUNS), then --quick's."""
    flags = list(FINDINGS_RUNS[group][1]) if group else []
    if args.quick:
        flags += QUICK_BASE if group else QUICK_FLAGS[model]
    return flags


def wait_with_peak_memory(child):
    """-> (exit code, peak resident memory of the child in MB, or None where the OS does not tell).

    os.wait4 exists on Linux and macOS; ru_maxrss is in kB on Linux but in bytes on macOS. On Windows the
    child is simply waited for.
    """
    if not hasattr(os, "wait4"):
        return child.wait(), None
    _, status, usage = os.wait4(child.pid, 0)
    per_mb = 1024 * 1024 if sys.platform == "darwin" else 1024
    return os.waitstatus_to_exitcode(status), usage.ru_maxrss / per_mb


# --- the findings: extra configurations, and the report's Discussion checked (analysis/findings.py) ----------------

PERMUTATION_SEED = 0  # the one fixed pixel permutation of the spatial-structure control
# The kit's earlier defaults (before it followed the original's procedure): a new order every epoch and, for
# nn_numpy, PyTorch's initialisation in float32. The "+earlier" groups are those runs; the permuted-pixel control
# is measured against them, with the same procedure.
EARLIER = {"nn_numpy": ["--shuffle", "epoch", "--init", "pytorch", "--dtype", "float32"],
           "nn_torch": ["--shuffle", "epoch"], "cnn_numpy": ["--shuffle", "epoch"], "cnn_torch": ["--shuffle", "epoch"]}
# group name (analysis/findings.py) -> (script, flags on top of the script's report defaults)
FINDINGS_RUNS = {
    # the recipe crossover: each recipe is its optimizer, hyperparameters and initialisation
    "nn_numpy+momentum": ("nn_numpy", ["--lr", "0.01", "--momentum", "0.9", "--init", "pytorch"]),  # nn_torch's
    "nn_torch+sgd": ("nn_torch", ["--lr", "0.1", "--momentum", "0", "--init", "normal"]),           # nn_numpy's
    "cnn_numpy+adam": ("cnn_numpy", ["--optimizer", "adam", "--lr", "0.001", "--epochs", "10",
                                     "--batch-size", "32", "--init", "pytorch"]),      # cnn_torch's recipe
    "cnn_torch+sgd": ("cnn_torch", ["--optimizer", "sgd", "--lr", "0.01", "--epochs", "5", "--batch-size", "16",
                                    "--init", "xavier"]),                                # cnn_numpy's recipe
    # the procedure ablation: nn_numpy over {once, epoch} x {normal, pytorch} (float64), and the earlier defaults
    "nn_numpy+epoch": ("nn_numpy", ["--shuffle", "epoch"]),
    "nn_numpy+pytorch-init": ("nn_numpy", ["--init", "pytorch"]),
    "nn_numpy+epoch+pytorch-init": ("nn_numpy", ["--shuffle", "epoch", "--init", "pytorch"]),
    "cnn_numpy+float64": ("cnn_numpy", ["--dtype", "float64"]),  # the original's CNN weights are float64
    **{f"{model}+earlier": (model, EARLIER[model]) for model in MODELS},
    **{f"{model}+permuted": (model, [*EARLIER[model], "--permute-pixels", str(PERMUTATION_SEED)]) for model in MODELS},
}


def findings_run_dir(out_dir, group, seed):
    return Path(out_dir) / "findings" / "runs" / group / f"seed{seed}"


def findings_seeds_on_disk(out_dir, group):
    model = FINDINGS_RUNS[group][0]
    folders = Path(out_dir, "findings", "runs", group).glob(f"seed*/{model}/metrics.json")
    return sorted(int(f.parent.parent.name.removeprefix("seed")) for f in folders
                  if f.parent.parent.name.removeprefix("seed").isdigit())


def read_record(folder):
    return json.loads((Path(folder) / "metrics.json").read_text())


# --- runs already on disk: reused, checked by their first epoch, or trained again (common/reuse.py) ------------

# Asks a script which configuration it would record for some flags, without training: its own parser and
# defaults (and, for PyTorch, the device "auto" picks), so that reproduce.py repeats none of them.
CONFIG_QUERY = """
import contextlib, json, sys
from common.cli import parse_args, resolve_data_flags
from common.reuse import COMPARED
script = __import__(sys.argv[1])
configs = []
with contextlib.redirect_stdout(sys.stderr):  # the scripts' notes about their flags
    for flags in json.loads(sys.argv[2]):
        args = resolve_data_flags(parse_args(script.build_parser(), flags))
        if getattr(args, "device", None) is not None:
            from nn_torch import select_device
            args.device = str(select_device(args.device))
        configs.append({key: getattr(args, key) for key in COMPARED if hasattr(args, key)})
print(json.dumps(configs))
"""


class RunsOnDisk:
    """One call's look at the runs on disk: which can stand for the run this call would make (common/reuse.py)."""

    def __init__(self, args):
        self.args = args
        self.machine = machine_id()
        self.digests, self.configs = {}, {}
        self.check_seconds = {}  # group or model -> seconds of each first-epoch check

    def digest(self, model):
        if model not in self.digests:
            self.digests[model] = code_digest(ROOT / f"{model}.py")
        return self.digests[model]

    def wanted(self, model, group, seed):
        """The config a run of ``model`` (in ``group``) with ``seed`` would record, as its script says."""
        if model not in self.configs:
            groups = [None, *(g for g, (m, _) in FINDINGS_RUNS.items() if m == model)]
            flag_sets = [run_flags(model, self.args, g) for g in groups]
            answer = subprocess.run([sys.executable, "-c", CONFIG_QUERY, model, json.dumps(flag_sets)], cwd=ROOT,
                                    capture_output=True, text=True, check=True)
            self.configs[model] = dict(zip(groups, json.loads(answer.stdout)))
        return {**self.configs[model][group], "seed": seed}

    def path(self, model, seed, group=None):
        folder = run_dir(self.args.out_dir, model, seed) if group is None else \
            findings_run_dir(self.args.out_dir, group, seed) / model
        return folder / "metrics.json"

    def first_epoch(self, model, seed, group):
        """A function that trains the run's first epoch again into a scratch folder and returns its record."""
        def run():
            with tempfile.TemporaryDirectory() as tmp:
                command = [sys.executable, str(ROOT / f"{model}.py"), "--seed", str(seed),
                           *run_flags(model, self.args, group), "--epochs", "1", "--no-figures", "--quiet",
                           "--out-dir", tmp, "--checkpoint", str(Path(tmp) / checkpoint_name(model))]
                if self.args.data_dir:
                    command += ["--data-dir", self.args.data_dir]
                done = subprocess.run(command, capture_output=True, text=True)
                return read_record(Path(tmp) / model) if done.returncode == 0 else None
        return run

    def check(self, model, seed, group=None, first_epoch=True):
        """-> (the record on disk, if it can stand for this run, else None; why). Prints a line when it is used.
        first_epoch=False: a record from other code is not checked by its first epoch, only left out."""
        tag, path = f"[{group or model} seed {seed}]", self.path(model, seed, group)
        try:
            record = json.loads(path.read_text()) if path.is_file() else None
        except (OSError, ValueError):
            record = {}  # unreadable: counts as a run that did not finish
        decision = decide(record, self.wanted(model, group, seed) if record else {}, self.digest(model),
                          self.machine)
        if decision.action == VERIFY and not first_epoch:
            return None, f"{decision.why} (reproduce.py --seeds {seed + 1} --reuse checks it by its first epoch)"
        if decision.action == VERIFY:
            started = time.perf_counter()
            checked = verify(record, self.first_epoch(model, seed, group), self.digest(model))
            took = time.perf_counter() - started
            self.check_seconds.setdefault(group or model, []).append(took)
            if checked.action != REUSE:
                return None, f"{decision.why}, and {checked.why}"
            record = mark_verified(record, f"{self.digest(model)}@{self.machine}")
            write_json(path, record)
            print(f"{tag} verified by its first epoch on this machine: reused ({decision.why}; {checked.why}, "
                  f"{took:.1f} s)",
                  flush=True)
            return record, checked.why
        if decision.action == REUSE:
            print(f"{tag} reused: {decision.why}", flush=True)
            return record, decision.why
        return None, decision.why

    def summary(self):
        """'first-epoch checks: nn_numpy 3 in 12 s, ...' or ''."""
        return ", ".join(f"{name} {len(s)} in {sum(s):.0f} s" for name, s in self.check_seconds.items())


def gpu_timings(args):
    """Epoch seconds of nn_torch and cnn_torch on cuda and on cpu, in one run; None where no CUDA device is."""
    probe = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.is_available() and "
                            "torch.cuda.get_device_name(0))"], capture_output=True, text=True)
    machine = probe.stdout.strip()
    if probe.returncode != 0 or machine in ("", "False"):
        return None
    timings = {"machine": machine}
    with tempfile.TemporaryDirectory() as tmp:
        for model in ("nn_torch", "cnn_torch"):
            for device in ("cpu", "cuda"):
                command = [sys.executable, str(ROOT / f"{model}.py"), "--epochs", "2", "--device", device,
                           "--quiet", "--no-figures", "--out-dir", tmp, "--checkpoint", f"{tmp}/{model}.pt"]
                if args.data_dir:
                    command += ["--data-dir", args.data_dir]
                if subprocess.run(command, capture_output=True).returncode == 0:
                    history = read_record(Path(tmp) / model)["history"]
                    timings.setdefault(model, {})[device] = [h["seconds"] for h in history]
    return timings


def findings_plan(args, models):
    """[(group, seed, whether to train it if it cannot be reused)], seed by seed: seeds 0..N-1 of the groups of
    ``models``, and every seed of any group already on disk."""
    plan = {(seed, i, group): model in models and seed < args.seeds
            for i, (group, (model, _)) in enumerate(FINDINGS_RUNS.items())
            for seed in {*findings_seeds_on_disk(args.out_dir, group), *(range(args.seeds) if model in models
                                                                         else [])}}
    return [(group, seed, wanted) for (seed, _, group), wanted in sorted(plan.items())]


def run_findings(args, models):
    """Write figures/findings.md from the main runs on disk (each checked; `--seeds N` trains them) and the extra
    configurations of ``models`` for seeds 0..N-1 (reused when they still stand, else trained), plus any other
    seeds of them on disk that still stand. Returns (failures, the RunsOnDisk that checked them)."""
    runs, groups, failures = RunsOnDisk(args), {}, []
    for model in MODELS:
        for seed in seeds_on_disk(args.out_dir, model):
            record, why = runs.check(model, seed)
            if record is None:
                print(f"[{model} seed {seed}] left out of the findings: {why} (reproduce.py --seeds trains it "
                      f"again)", flush=True)
            else:
                groups.setdefault(model, []).append(record)
    for group, seed, wanted in findings_plan(args, models):
        model = FINDINGS_RUNS[group][0]
        record, why = runs.check(model, seed, group)
        if record is None and not wanted:
            print(f"[{group} seed {seed}] left out of the findings: {why}", flush=True)
            continue
        if record is None:
            print(f"[{group} seed {seed}] training: {why}", flush=True)
            code, last_line, _ = train_one(model, seed, args, group)
            if code != 0:
                failures.append((group, seed, f"exit code {code}: {last_line}"))
                print(f"reproduce.py: {group} seed {seed} failed (exit code {code}); going on with the others",
                      file=sys.stderr, flush=True)
                continue
            record = read_record(findings_run_dir(args.out_dir, group, seed) / model)
        groups.setdefault(group, []).append(record)
    from analysis.findings import write_findings  # matplotlib only when it is needed
    from analysis.procedure import ABLATION, ablation_section

    ablation_groups = {g for _, _, a, b in ABLATION for g in (a, b) if g in FINDINGS_RUNS}
    seconds = sum(entry["seconds"] for g in ablation_groups for r in groups.get(g, []) for entry in r["history"])
    text = write_findings(args.out_dir, groups, gpu_timings(args), extra=ablation_section(groups, seconds))
    print("\n" + text)
    return failures, runs


# --- results -------------------------------------------------------------------------------------------------

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


def seeds_on_disk(out_dir, model):
    seeds = [0] if (run_dir(out_dir, model, 0) / "metrics.json").is_file() else []
    for folder in sorted(Path(out_dir, "seeds").glob("seed*")):
        suffix = folder.name.removeprefix("seed")
        if suffix.isdigit() and int(suffix) > 0 and (folder / model / "metrics.json").is_file():
            seeds.append(int(suffix))
    return sorted(seeds)


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
            "Model": f"{model} ({LABELS[model]})",
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
                      label=LABELS[model])
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
        right.set_xticks(x, [LABELS[m].replace(", ", "\n") for m in models])
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


def checkpoint_to_use(model, seed, args):
    """-> (where the run's checkpoint goes or, for --eval-only, is read from; why that one).

    For --eval-only of seed 0 with the default folder, the committed reference/<model> checkpoint when
    checkpoints/ has none (a fresh clone).
    """
    path = checkpoint_path(args.checkpoint_dir, model, seed)
    if args.checkpoint_dir_given:
        return path, "in --checkpoint-dir"
    reference = REFERENCE_DIR / path.name
    if args.eval_only and seed == 0 and not path.exists() and reference.is_file():
        return reference, f"no {path}: the committed reference checkpoint"
    return path, "saved there by the run that trained it"


def eval_plan(args, models):
    """--eval-only: the (model, seed) pairs to look at, seed by seed: seeds 0..N-1 (--seeds) and every seed
    with a record on disk."""
    seeds = {model: set(range(args.seeds)) | set(seeds_on_disk(args.out_dir, model)) for model in models}
    return [(model, seed) for seed in sorted(set().union(*seeds.values())) for model in models
            if seed in seeds[model]]


def evaluate_or_keep(model, seed, args):
    """--eval-only: "run" when the checkpoint is there; else "keep" the recorded run (no checkpoint, but its
    metrics.json is on disk), or the reason it can do neither."""
    checkpoint, why = checkpoint_to_use(model, seed, args)
    tag = f"[{model} seed {seed}]"
    if checkpoint.is_file():
        print(f"{tag} evaluating {checkpoint} ({why})", flush=True)
        return "run"
    record = run_dir(args.out_dir, model, seed) / "metrics.json"
    if record.is_file():
        print(f"{tag} no checkpoint at {checkpoint}; keeping the recorded run {record}", flush=True)
        return "keep"
    return (f"no checkpoint at {checkpoint} and no recorded run at {record}; train it first (reproduce.py "
            f"without --eval-only) or pass --checkpoint-dir")


def build_parser():
    p = Parser(prog="reproduce.py", description="Train the four models and regenerate the report's figures.")
    p.add_argument("--models", default=",".join(MODELS),
                   help="comma-separated subset of " + ", ".join(MODELS) + " (default: all four)")
    p.add_argument("--seeds", type=positive_int, default=None,
                   help="run every model with seeds 0..N-1 and report mean ± std (default: 1; 3 with "
                        "--findings); seeds beyond N already on disk stay in the table when this machine trained "
                        "or checked them with the same configuration and today's code")
    p.add_argument("--reuse", action="store_true",
                   help="reuse a run already on disk when its configuration and seed match and its first epoch, "
                        "trained again on this machine, matches bit for bit (unless this machine trained or "
                        "checked it with this code before); default: train every run")
    p.add_argument("--findings", action="store_true",
                   help="check the report's Discussion: the extra configurations (recipe crossover, permuted "
                        "pixels) for each seed, reused from disk where they still stand, else trained; the main "
                        "runs on disk, each checked (--seeds trains them); writes figures/findings.md")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke run {quick_description()} (with --findings, each extra configuration "
                        f"{' '.join(QUICK_BASE)}); into {QUICK_DIR}/, checkpoints in {QUICK_DIR}/checkpoints/, "
                        f"unless --out-dir/--checkpoint-dir")
    p.add_argument("--eval-only", action="store_true",
                   help="no training: re-evaluate every checkpoint found (seed 0: --checkpoint-dir, else "
                        "checkpoints/, else the committed reference/) and redraw the figures; a seed without a "
                        "checkpoint keeps its recorded metrics.json, so results.md keeps every seed's row; "
                        "each evaluation's log is eval.log (train.log stays the training's)")
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
    args.out_dir = args.out_dir or (QUICK_DIR if args.quick else "figures")
    args.checkpoint_dir_given = args.checkpoint_dir is not None
    args.checkpoint_dir = args.checkpoint_dir or str(Path(args.out_dir) / "checkpoints" if args.quick
                                                     else "checkpoints")
    args.seeds = args.seeds or (3 if args.findings else 1)
    started = time.perf_counter()
    if args.findings:
        try:
            failures, runs = run_findings(args, models)
        except KeyboardInterrupt:
            print("reproduce.py: interrupted; finished runs keep their outputs", file=sys.stderr)
            return 130
        checks = f"; first-epoch checks: {runs.summary()}" if runs.check_seconds else ""
        print(f"reproduce.py: findings in {Path(args.out_dir) / 'findings.md'}; {len(failures)} run(s) failed; "
              f"total {(time.perf_counter() - started) / 60:.1f} min{checks}")
        return 1 if failures else 0
    failures, finished, kept, reused, peaks = [], [], [], [], {}
    plan = eval_plan(args, models) if args.eval_only else [(m, s) for s in range(args.seeds) for m in models]
    runs = None if args.eval_only else RunsOnDisk(args)
    try:
        for model, seed in plan:
            action = evaluate_or_keep(model, seed, args) if args.eval_only else "run"
            if action == "keep":
                kept.append((model, seed))
                continue
            if runs is not None:
                record, why = runs.check(model, seed) if args.reuse else (None, "reproduce.py trains every run "
                                                                                 "(--reuse reuses runs on disk)")
                if record is not None:
                    reused.append((model, seed))
                    continue
                print(f"[{model} seed {seed}] training: {why}", flush=True)
            if action != "run":
                failures.append((model, seed, action))
                print(f"reproduce.py: {model} seed {seed}: {action}; going on with the others",
                      file=sys.stderr, flush=True)
                continue
            code, last_line, peak_mb = train_one(model, seed, args)
            if code != 0:
                failures.append((model, seed, f"exit code {code}: {last_line}"))
                print(f"reproduce.py: {model} seed {seed} failed (exit code {code}); going on with the others",
                      file=sys.stderr, flush=True)
            else:
                finished.append((model, seed))
                if peak_mb is not None:
                    peaks.setdefault(model, []).append(peak_mb)
    except KeyboardInterrupt:
        print("reproduce.py: interrupted; finished runs keep their outputs", file=sys.stderr)
        return 130
    if runs is not None:  # seeds on disk beyond --seeds stay in the table while they stand as they are
        for model in models:
            for seed in (s for s in seeds_on_disk(args.out_dir, model) if s >= args.seeds):
                record, why = runs.check(model, seed, first_epoch=False)
                if record is not None:
                    reused.append((model, seed))
                else:
                    print(f"[{model} seed {seed}] left out of results.md: {why}", flush=True)
    total = time.perf_counter() - started
    records, sources = load_records(args.out_dir, finished, models, kept + reused,
                                    "re-evaluated now" if args.eval_only else "this run")
    where = "nothing was written"
    if records:
        text = write_results(args, records, sources, total, failures, peaks, finished)
        print("\n" + text)
        where = f"results in {Path(args.out_dir) / 'results.md'}"
    done = f"{len(finished)} run(s) finished" + (f", {len(kept)} kept from their records" if kept else "")
    done += f", {len(reused)} reused from disk" if reused else ""
    done += f" (first-epoch checks: {runs.summary()})" if runs and runs.check_seconds else ""
    print(f"reproduce.py: {done}, {len(failures)} failed; total {total / 60:.1f} min; {where}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
