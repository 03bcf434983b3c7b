"""The report's Discussion (section 4), claim by claim, as one page: figures/findings.md and figures/findings/*.png.
The claims are pure functions over run records (reproduction/claims.py, reproduction/crossover.py); their verdicts
are read by one rule (reproduction/verdicts.py, reproduction/statistics.md).

    python reproduce.py --findings               # trains (or reuses) the extra configurations, then write_findings
    python -c "import glob, json; from reproduction.findings import write_findings; write_findings('/tmp/f', {m: [
        json.load(open(p)) for p in sorted(glob.glob(f'figures/**/{m}/metrics.json', recursive=True))]
        for m in ('nn_numpy', 'nn_torch', 'cnn_numpy', 'cnn_torch')})"   # claims 1, 2, 7, 8 from the main runs

    from reproduction.findings import write_findings
    text = write_findings("figures", groups)      # figures/findings.md and figures/findings/*.png
    text = write_findings("figures", groups, gpu={"machine": "NVIDIA H100",
                                                  "nn_torch": {"cpu": [1.3, 1.2], "cuda": [0.4, 0.4]}})

A record is one run's metrics.json (common/run.py): model, framework, config (epochs, lr, batch_size, seed,
limit_train, optimizer, momentum, init, ...), history (per epoch: epoch, train/test loss and accuracy as
fractions, seconds), final, confusion_matrix (10x10 counts, rows = actual). ``groups`` maps a configuration
name to the list of its records, one per seed: the report's four (nn_numpy, nn_torch, cnn_numpy, cnn_torch) and
the extra groups of reproduction/experiments.py (the recipe crossover, the +earlier and +permuted runs, the
procedure ablation), each with its flags and the claims it serves.

A claim whose groups are missing says "not measured (...)"; the others still render. Every verdict is read
from an effect's interval (reproduction/stats.py; the rule is statistics.md, read into STATISTICS), never written
per claim: each claim is one family of comparisons, and where the report states an effect its number stands beside
ours.
"""

import warnings
from pathlib import Path

from common.io import write_text
from reproduction.claims import (MIN_SINGLE_SPEEDUP, THRESHOLDS, TOP_K, claim_cnn_vs_mlp, claim_confusions,
                                 claim_convergence, claim_gpu, claim_overfitting, claim_permuted, plot_convergence)
from reproduction.crossover import claim_framework, claim_recipe, plot_crossover
from reproduction.stats import ALPHA, POWER
from reproduction.verdicts import MARGIN_PP, table


# --- the page ---------------------------------------------------------------------------------------------------

FIGURES = {"convergence.png": plot_convergence, "crossover.png": plot_crossover}


# The statistics rule, in words: findings.md's last section. The numbers in it are the constants the code uses.
STATISTICS = (Path(__file__).with_name("statistics.md").read_text(encoding="utf-8").rstrip("\n").format(
    alpha=ALPHA, margin=MARGIN_PP, margin_images=MARGIN_PP * 100, power=POWER, top_k=TOP_K,
    thresholds=", ".join(f"{t:.1%}" for t in THRESHOLDS), min_speedup=MIN_SINGLE_SPEEDUP))


def check_claims(groups, gpu=None):
    """The eight Findings, in the order of the report's Discussion."""
    with warnings.catch_warnings():
        # scipy warns when a group is constant (every seed reached 98% at epoch 1); the intervals stay defined.
        warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
        return [claim_cnn_vs_mlp(groups), claim_convergence(groups), claim_permuted(groups),
                claim_framework(groups), claim_recipe(groups), claim_gpu(gpu), claim_overfitting(groups),
                claim_confusions(groups)]


def findings_markdown(findings, extra=""):
    """The text of figures/findings.md: one summary table, a detail section per claim, the statistics rule."""
    summary = table(["claim", "the report's evidence",
                     "ours: effect [95% family-wise interval] (the report's effect), n seeds", "verdict"],
                    [[f.claim, f.evidence, f.ours, f.verdict] for f in findings])
    sections = []
    for f in findings:
        pictures = "".join(f"\n![{name}](findings/{name})\n" for name in f.figures)
        sections.append(f"## {f.claim}\n\nThe report: {f.evidence}. **Verdict: {f.verdict}.**\n\n"
                        f"{f.detail}{pictures}")
    return ("# The report's findings, checked\n\nEach claim of the report's Discussion (section 4), tested on "
            "our runs with seed noise; every verdict is computed from the numbers (see Statistics at the end).\n\n"
            + summary + "\n" + "\n".join(sections) + (f"\n{extra}" if extra else "")
            + "\n## Statistics\n\n" + STATISTICS + "\n")


def write_findings(out_dir, groups, gpu=None, extra=""):
    """Write OUT_DIR/findings.md and its figures under OUT_DIR/findings/; returns the markdown text. ``extra``:
    a markdown section placed after the claims, before the statistics (reproduce.py: the procedure's ablation)."""
    out_dir = Path(out_dir)
    findings = check_claims(groups, gpu)
    for name in {name for f in findings for name in f.figures}:
        FIGURES[name](out_dir / "findings" / name, groups)
    text = findings_markdown(findings, extra)
    write_text(out_dir / "findings.md", text)
    return text
