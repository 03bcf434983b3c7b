"""Running the models: one script in a child process (its log streamed and kept), and the runs already on disk,
reused, checked by their first epoch, or trained again (reproduction/reuse.py decides).

    code, last_line, peak_mb = train_one("cnn_numpy", seed, args)            # the report's configuration
    code, last_line, peak_mb = train_one("cnn_numpy", seed, args, "cnn_numpy+adam")   # a findings group
    runs = RunsOnDisk(args); record, why = runs.check("nn_numpy", seed)     # None: train it

Each model trains in its own process (a crash loses only that model; the NumPy runs never load torch), its output
streamed with the model's name in front and kept as train.log next to its figures (eval.log for --eval-only).
Seed 0 writes OUT/<model>/ and CHECKPOINTS/<model>.*; seed k > 0 OUT/seeds/seed<k>/<model>/ and
CHECKPOINTS/seed<k>/<model>.*; a findings group OUT/findings/runs/<group>/seed<k>/<model>/.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common.cli import REFERENCE_DIR
from common.io import write_json, write_text
from common.models import checkpoint_name
from common.provenance import code_digest, machine_id
from reproduction.experiments import FINDINGS_RUNS, QUICK_BASE, QUICK_FLAGS
from reproduction.reuse import REUSE, VERIFY, decide, mark_verified, verify

ROOT = Path(__file__).resolve().parent.parent


# --- running one model ---------------------------------------------------------------------------------------

def run_dir(out_dir, model, seed):
    return Path(out_dir) / model if seed == 0 else Path(out_dir) / "seeds" / f"seed{seed}" / model


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


def findings_run_dir(out_dir, group, seed):
    return Path(out_dir) / "findings" / "runs" / group / f"seed{seed}"


def findings_seeds_on_disk(out_dir, group):
    model = FINDINGS_RUNS[group][0]
    folders = Path(out_dir, "findings", "runs", group).glob(f"seed*/{model}/metrics.json")
    return sorted(int(f.parent.parent.name.removeprefix("seed")) for f in folders
                  if f.parent.parent.name.removeprefix("seed").isdigit())


def read_record(folder):
    return json.loads((Path(folder) / "metrics.json").read_text())


def seeds_on_disk(out_dir, model):
    seeds = [0] if (run_dir(out_dir, model, 0) / "metrics.json").is_file() else []
    for folder in sorted(Path(out_dir, "seeds").glob("seed*")):
        suffix = folder.name.removeprefix("seed")
        if suffix.isdigit() and int(suffix) > 0 and (folder / model / "metrics.json").is_file():
            seeds.append(int(suffix))
    return sorted(seeds)


# --- runs already on disk: reused, checked by their first epoch, or trained again ------------------------

class RunsOnDisk:
    """One call's look at the runs on disk: which can stand for the run this call would make (reproduction/reuse.py)."""

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
            answer = subprocess.run([sys.executable, "-m", "reproduction.ask_config", model, json.dumps(flag_sets)], cwd=ROOT,
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
