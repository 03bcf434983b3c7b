"""reproduce.py's command: the table of runs to make (reproduction/experiments.py), each run made or reused
(reproduction/runs.py), then the pages written (results.py, findings.py, procedure.py, original.py).

    python reproduce.py --seeds 10 --reuse       # reproduction.main.main(): see reproduce.py for every form
"""

import sys
import time
from pathlib import Path

from common.cli import Parser, positive_int
from common.models import MODELS
from reproduction import original
from reproduction.experiments import ABLATION, FINDINGS_RUNS, QUICK_BASE, QUICK_DIR, quick_description
from reproduction.results import load_records, write_results
from reproduction.runs import (RunsOnDisk, checkpoint_to_use, findings_run_dir, findings_seeds_on_disk, gpu_timings,
                               read_record, run_dir, seeds_on_disk, train_one)


# --- the findings: the extra configurations, and the report's Discussion checked (findings.py) ---------------

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
    from reproduction.findings import write_findings  # matplotlib only when it is needed
    from reproduction.procedure import ablation_section

    ablation_groups = {g for _, _, a, b in ABLATION for g in (a, b) if g in FINDINGS_RUNS}
    seconds = sum(entry["seconds"] for g in ablation_groups for r in groups.get(g, []) for entry in r["history"])
    text = write_findings(args.out_dir, groups, gpu_timings(args), extra=ablation_section(groups, seconds))
    print("\n" + text)
    return failures, runs


# --- --eval-only ------------------------------------------------------------------------------------------

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


# --- the command ---------------------------------------------------------------------------------------------

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


def settle(parser, args):
    """Fill in the defaults that depend on other flags; -> the models to run."""
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        parser.error(f"--models: unknown model(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(MODELS)}")
    args.out_dir = args.out_dir or (QUICK_DIR if args.quick else "figures")
    args.checkpoint_dir_given = args.checkpoint_dir is not None
    args.checkpoint_dir = args.checkpoint_dir or str(Path(args.out_dir) / "checkpoints" if args.quick
                                                     else "checkpoints")
    args.seeds = args.seeds or (3 if args.findings else 1)
    return models


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.original is not None:
        return original.main(args)
    models = settle(parser, args)
    started = time.perf_counter()
    try:
        return (findings_command if args.findings else runs_command)(args, models, started)
    except KeyboardInterrupt:
        print("reproduce.py: interrupted; finished runs keep their outputs", file=sys.stderr)
        return 130


def findings_command(args, models, started):
    """--findings: the extra configurations made or reused, then findings.md."""
    failures, runs = run_findings(args, models)
    checks = f"; first-epoch checks: {runs.summary()}" if runs.check_seconds else ""
    print(f"reproduce.py: findings in {Path(args.out_dir) / 'findings.md'}; {len(failures)} run(s) failed; "
          f"total {(time.perf_counter() - started) / 60:.1f} min{checks}")
    return 1 if failures else 0


class Tally:
    """What became of each (model, seed) of one call: finished now, kept from its record (--eval-only without a
    checkpoint), reused from disk, or failed; and the peak memory of the runs that finished."""

    def __init__(self):
        self.failures, self.finished, self.kept, self.reused, self.peaks = [], [], [], [], {}

    def fail(self, model, seed, why, said):
        self.failures.append((model, seed, why))
        print(f"reproduce.py: {model} seed {seed}{said}; going on with the others", file=sys.stderr, flush=True)

    def line(self, runs):
        done = f"{len(self.finished)} run(s) finished" + (f", {len(self.kept)} kept from their records"
                                                           if self.kept else "")
        done += f", {len(self.reused)} reused from disk" if self.reused else ""
        done += f" (first-epoch checks: {runs.summary()})" if runs and runs.check_seconds else ""
        return f"{done}, {len(self.failures)} failed"


def runs_command(args, models, started):
    """The report's configurations (or --eval-only of their checkpoints), then results.md."""
    tally = Tally()
    runs = None if args.eval_only else RunsOnDisk(args)
    plan = eval_plan(args, models) if args.eval_only else [(m, s) for s in range(args.seeds) for m in models]
    for model, seed in plan:
        make_or_reuse(model, seed, args, runs, tally)
    if runs is not None:
        keep_seeds_beyond(args, models, runs, tally)
    total = time.perf_counter() - started
    records, sources = load_records(args.out_dir, tally.finished, models, tally.kept + tally.reused,
                                    "re-evaluated now" if args.eval_only else "this run")
    where = "nothing was written"
    if records:
        text = write_results(args, records, sources, total, tally.failures, tally.peaks, tally.finished)
        print("\n" + text)
        where = f"results in {Path(args.out_dir) / 'results.md'}"
    print(f"reproduce.py: {tally.line(runs)}; total {total / 60:.1f} min; {where}")
    return 1 if tally.failures else 0


def make_or_reuse(model, seed, args, runs, tally):
    """One (model, seed) of the plan: reused from disk (--reuse), kept or evaluated (--eval-only), or trained."""
    action = evaluate_or_keep(model, seed, args) if args.eval_only else "run"
    if action == "keep":
        tally.kept.append((model, seed))
        return
    if runs is not None:
        record, why = runs.check(model, seed) if args.reuse else (None, "reproduce.py trains every run "
                                                                         "(--reuse reuses runs on disk)")
        if record is not None:
            tally.reused.append((model, seed))
            return
        print(f"[{model} seed {seed}] training: {why}", flush=True)
    if action != "run":
        tally.fail(model, seed, action, f": {action}")
        return
    code, last_line, peak_mb = train_one(model, seed, args)
    if code != 0:
        tally.fail(model, seed, f"exit code {code}: {last_line}", f" failed (exit code {code})")
        return
    tally.finished.append((model, seed))
    if peak_mb is not None:
        tally.peaks.setdefault(model, []).append(peak_mb)


def keep_seeds_beyond(args, models, runs, tally):
    """Seeds on disk beyond --seeds stay in the table while they stand as they are (not checked by their first
    epoch: that is --seeds N's job)."""
    for model in models:
        for seed in (s for s in seeds_on_disk(args.out_dir, model) if s >= args.seeds):
            record, why = runs.check(model, seed, first_epoch=False)
            if record is not None:
                tally.reused.append((model, seed))
            else:
                print(f"[{model} seed {seed}] left out of results.md: {why}", flush=True)
