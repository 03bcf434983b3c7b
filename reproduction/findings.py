"""The report's Discussion (section 4), claim by claim: pure functions over run records, and the page they make.

    python reproduce.py --findings               # trains (or reuses) the extra configurations, then write_findings
    python -c "import glob, json; from analysis.findings import write_findings; write_findings('/tmp/f', {m: [
        json.load(open(p)) for p in sorted(glob.glob(f'figures/**/{m}/metrics.json', recursive=True))]
        for m in ('nn_numpy', 'nn_torch', 'cnn_numpy', 'cnn_torch')})"   # claims 1, 2, 7, 8 from the main runs

    from reproduction.findings import write_findings
    text = write_findings("figures", groups)      # figures/findings.md and figures/findings/*.png
    text = write_findings("figures", groups, gpu={"machine": "NVIDIA H100",
                                                  "nn_torch": {"cpu": [1.3, 1.2], "cuda": [0.4, 0.4]}})

A record is one run's metrics.json (common/run.py): model, framework, config (epochs, lr, batch_size, seed,
limit_train, optimizer, momentum, init, ...), history (per epoch: epoch, train/test loss and accuracy as
fractions, seconds), final, confusion_matrix (10x10 counts, rows = actual). ``groups`` maps a configuration
name to the list of its records, one per seed:

    nn_numpy, nn_torch, cnn_numpy, cnn_torch   the report's four configurations (the main runs)
    nn_numpy+momentum    nn_numpy with nn_torch's recipe: SGD lr 0.01, momentum 0.9, PyTorch init
    nn_torch+sgd         nn_torch with nn_numpy's recipe: plain SGD lr 0.1, momentum 0, N(0, 0.1^2) init
    cnn_numpy+adam       cnn_numpy with cnn_torch's recipe: Adam lr 1e-3, 10 epochs, batch 32, PyTorch init
    cnn_torch+sgd        cnn_torch with cnn_numpy's recipe: plain SGD lr 0.01, 5 epochs, batch 16, Xavier init
    nn_numpy+earlier, nn_torch+earlier, cnn_numpy+earlier, cnn_torch+earlier
                         the kit's earlier defaults: a new data order every epoch (nn_numpy: also PyTorch init,
                         float32)
    nn_numpy+permuted, nn_torch+permuted, cnn_numpy+permuted, cnn_torch+permuted
                         the +earlier runs with --permute-pixels (one fixed permutation of the 784 pixels); compared
                         with the +earlier groups where present, else with the main runs
    (the ablation groups nn_numpy+epoch, +pytorch-init, +epoch+pytorch-init: analysis/procedure.py)

A claim whose groups are missing says "not measured (...)"; the others still render. Every verdict is read
from an effect's interval (analysis/stats.py; the rule is STATISTICS below), never written per claim: each claim
is one family of comparisons, and where the report states an effect its number stands beside ours.
"""

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reproduction.report import overfitting_gap, test_acc_difference
from reproduction.stats import (
    ALPHA,
    FAILS,
    HOLDS,
    POWER,
    UNRESOLVED,
    contrast,
    judge,
    mean_std,
    seeds_for_equivalence,
    seeds_to_exclude,
    tost,
)
from common.data import TRAIN_SIZE
from common.io import write_text
from common.models import MODELS, TITLES
from reproduction.experiments import CROSSOVER
FRAMEWORKS = {"numpy": "NumPy", "torch": "PyTorch"}
ARCHITECTURES = {"nn": "MLP", "cnn": "CNN"}
THRESHOLDS = (0.975, 0.98)
# "Comparable" and "train = test" are equivalence claims: the effect within +-MARGIN_PP, stated before looking.
# 0.2 pp is 20 of the 10,000 test images and about twice the seed-to-seed std of one model's test accuracy
# (0.03-0.18 pp in the committed runs): a gap smaller than two seeds of the same script differ by is comparable.
MARGIN_PP = 0.2
REPORT_PAIRS = ((4, 9), (1, 7), (3, 5), (3, 8))
TOP_K = 5  # a report pair "is among the top" when its rank among the unordered pairs is <= TOP_K
MIN_SINGLE_SPEEDUP = 1.5  # with one timing per device, timings that wander +-50% need this ratio to count
EQUIVALENT, NOT_EQUIVALENT = "equivalent", "not shown equivalent"
ORDER = (HOLDS, EQUIVALENT, FAILS, NOT_EQUIVALENT, UNRESOLVED)  # verdict words, in the order a row names them


@dataclass
class Finding:
    """One row of the findings table, and the detail section (markdown) under it."""
    claim: str
    evidence: str   # the report's
    ours: str
    verdict: str
    detail: str = ""
    figures: list = field(default_factory=list)  # file names under findings/


@dataclass
class Comparison:
    """One effect of a claim: sum_i weights_i * mean(groups_i) over per-seed values (default: mean(a) - mean(b)).

    kind: what the claim says of the effect: "direction" (its sign is ``sign``: +1 positive, -1 negative),
    "comparable" (it is within +-margin: claim 4's words) or "none" (it is 0, i.e. within +-margin: "holds");
    report: the report's own effect, where it states one.
    ``effect`` (analysis.stats.Effect) is filled by ``family`` with the claim's family size; None below 2 seeds.
    """
    label: str
    groups: list
    weights: tuple = (1, -1)
    sign: int = +1
    report: float = None
    kind: str = "direction"
    margin: float = MARGIN_PP
    effect: object = None

    @property
    def diff(self):
        return float(sum(w * np.mean(g) for w, g in zip(self.weights, self.groups)))

    @property
    def a(self):
        return self.groups[0]

    @property
    def b(self):
        return self.groups[1]


@dataclass(frozen=True)
class Outcome:
    """What one comparison (or a claim's scope) shows: a verdict word, why, and for an open question the seeds
    per group that would settle it (None: no number would, at the observed effect)."""
    word: str
    why: str = ""
    seeds: int = None       # seeds per group now
    needed: int = None      # seeds per group for POWER power to settle it (UNRESOLVED, NOT_EQUIVALENT)
    width: float = None     # the interval's width (UNRESOLVED, NOT_EQUIVALENT)


# --- the reading: intervals, equivalence, seeds needed ---------------------------------------------------------

def family(comparisons, alpha=ALPHA):
    """Fill each Comparison's effect: its Welch interval with the family-wise alpha shared (Bonferroni) by the
    comparisons that have at least 2 seeds a group. Returns the list."""
    size = sum(all(len(g) >= 2 for g in c.groups) for c in comparisons)
    for c in comparisons:
        c.effect = contrast(c.groups, c.weights, alpha, max(size, 1))
    return comparisons


def interval_of(c):
    """The interval the verdict reads: the effect's, or for an equivalence claim the two one-sided tests'."""
    if c.kind != "direction":
        t = tost(c.effect, c.margin)
        return t.low, t.high
    return c.effect.low, c.effect.high


def outcome(c):
    """The verdict of one Comparison (None when untested); see STATISTICS."""
    e = c.effect
    if e is None:
        return None
    if c.kind != "direction":
        return equivalence_outcome(c)
    word, why = judge(e, c.sign, c.report)
    if word != UNRESOLVED:
        return Outcome(word, why, e.seeds)
    needed = [n for n in (seeds_to_exclude(e, t) for t in [0.0, c.report] if t is not None) if n]
    return Outcome(UNRESOLVED, "", e.seeds, min(needed) if needed else None, e.width)


def equivalence_outcome(c):
    """"comparable"/"none" claims, from the two one-sided tests' interval: inside +-margin, equivalent (holds);
    wholly beyond +margin or -margin, shown different by more than the margin; else open."""
    e, m = c.effect, c.margin
    low, high = interval_of(c)
    comparable = c.kind == "comparable"
    if tost(e, m).equivalent:
        return Outcome(EQUIVALENT if comparable else HOLDS, "", e.seeds)
    if low > m or high < -m:
        return (Outcome(NOT_EQUIVALENT, f"the interval lies beyond ±{m:g}", e.seeds) if comparable else
                Outcome(FAILS, f"beyond ±{m:g}", e.seeds))
    if abs(e.diff) < m:
        needed = seeds_for_equivalence(e, m)
    else:  # to show it beyond the margin, if the claim is "none"
        needed = None if comparable else seeds_to_exclude(e, math.copysign(m, e.diff), sides=1)
    return Outcome(NOT_EQUIVALENT if comparable else UNRESOLVED, "", e.seeds, needed, high - low)


def combine(outcomes):
    """One scope's verdict from several comparisons that must all hold: any failure fails it; all holding holds
    it; otherwise it is open, and settling it needs the most seeds any open comparison needs."""
    if any(o is None for o in outcomes):
        return None
    failed = [o for o in outcomes if o.word in (FAILS, NOT_EQUIVALENT)]
    if failed:
        return failed[0]
    open_ = [o for o in outcomes if o.word == UNRESOLVED]
    if not open_:
        return outcomes[0]
    needed = None if any(o.needed is None for o in open_) else max(o.needed for o in open_)
    return Outcome(UNRESOLVED, "", min(o.seeds for o in open_), needed, max(o.width for o in open_))


def needed_text(needed, what="settle it"):
    if needed is None:
        return f"no number of seeds would {what.split()[0]} it at the observed effect"
    return f"≈{needed} seeds per group would {what}"


def phrase(word, outcomes):
    """'holds', 'not resolved with 3 seeds (≈7 seeds per group would settle it)', ... for outcomes of one word."""
    if word == EQUIVALENT:
        return f"equivalent within ±{MARGIN_PP:g} pp"
    if word not in (UNRESOLVED, NOT_EQUIVALENT):
        return word
    seeds = min(o.seeds for o in outcomes)
    if word == NOT_EQUIVALENT and all(o.width is None for o in outcomes):  # shown beyond the margin
        return NOT_EQUIVALENT
    needed = None if any(o.needed is None for o in outcomes) else max(o.needed for o in outcomes)
    return f"{word} with {seeds} seeds ({needed_text(needed, 'settle it' if word == UNRESOLVED else 'show it')})"


def scope_verdict(outcomes):
    """{scope: Outcome or None (untested)} -> the verdict cell: one phrase when every scope agrees (and none has
    a remark), else 'holds for A; not resolved with 3 seeds (...) for B'."""
    tested = {scope: o for scope, o in outcomes.items() if o is not None}
    if not tested:
        return "not measured (fewer than 2 seeds per group)"
    words = sorted({o.word for o in tested.values()}, key=ORDER.index)
    if len(words) == 1 and len(tested) == len(outcomes) and not any(o.why for o in tested.values()):
        return phrase(words[0], list(tested.values()))
    separator = " / " if any(", " in scope for scope in outcomes) else ", "  # scopes like "MLP, NumPy"
    parts = []
    for word in words:
        scopes = [s for s, o in tested.items() if o.word == word]
        named = [f"{s} ({tested[s].why})" if tested[s].why else s for s in scopes]
        parts.append(f"{phrase(word, [tested[s] for s in scopes])} for {separator.join(named)}")
    untested = [s for s, o in outcomes.items() if o is None]
    if untested:
        parts.append(f"not measured for {separator.join(untested)}")
    return "; ".join(parts)


# --- small helpers --------------------------------------------------------------------------------------------

def accuracy_pp(records):
    """Per-seed final test accuracy in %."""
    return [100 * r["final"]["test_acc"] for r in records]


def missing(groups, names):
    return [n for n in names if not groups.get(n)]


def not_measured(claim, evidence, absent):
    return Finding(claim, evidence, "—", f"not measured (no runs of {', '.join(absent)})")


def pm(values, digits=2):
    if not len(values):
        return "—"
    mean, std = mean_std(values)
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def seeds(groups, names):
    counts = sorted({len(groups[n]) for n in names if groups.get(n)})
    return f"{counts[0]} seed{'s' * (counts[0] != 1)}" if len(counts) == 1 else f"{counts[0]}–{counts[-1]} seeds"


def brief(c, unit="pp", digits=2):
    """'+0.66 [+0.20, +1.12] pp (the report's +0.80)'; '+0.66 pp (untested)' below 2 seeds."""
    report = "" if c.report is None else f" (the report's {c.report:+.{digits}f})"
    unit = f" {unit}" if unit else ""
    if c.effect is None:
        return f"{c.diff:+.{digits}f}{unit} (untested){report}"
    low, high = interval_of(c)
    return f"{c.diff:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]{unit}{report}"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]) + "\n"


def reading(c):
    """The verdict column of a detail table: the word, why, and for an open question its seeds."""
    o = outcome(c)
    if o is None:
        return "untested (fewer than 2 seeds)"
    return phrase(o.word, [o]) + (f" ({o.why})" if o.why else "")


def percent(level):
    """0.975 -> '97.5%', 0.9875 -> '98.75%'."""
    return f"{100 * level:.2f}".rstrip("0").rstrip(".") + "%"


def comparisons_table(comparisons, a_name="A", b_name="B", digits=2, unit="pp"):
    """Effect, interval (and its level), width, Bonferroni-adjusted p, the report's effect and the reading."""
    rows = []
    for c in comparisons:
        two = len(c.groups) == 2 and tuple(c.weights) == (1, -1)
        sides = [pm(c.a, digits), pm(c.b, digits)] if two else ["—", "—"]
        e = c.effect
        if e is None:
            stats = [f"{c.diff:+.{digits}f}"] + ["—"] * 4
        else:
            low, high = interval_of(c)
            level, p = e.level, e.p_adjusted
            if c.kind != "direction":  # the interval and p-value of the two one-sided tests
                level, p = 1 - 2 * e.alpha / e.family, min(1.0, tost(e, c.margin).p * e.family)
            stats = [f"{e.diff:+.{digits}f}", f"[{low:+.{digits}f}, {high:+.{digits}f}] ({percent(level)})",
                     f"{high - low:.{digits}f}", f"{e.df:.1f}" if math.isfinite(e.df) else "—", f"{p:.2g}"]
        report = "—" if c.report is None else f"{c.report:+.{digits}f}"
        rows.append([c.label, *sides, *stats, report, reading(c)])
    return table(["comparison", a_name, b_name, f"effect ({unit})", "interval (level)", "width", "df",
                  "p (×m)", "the report's", "reading"], rows)


# --- 1. CNN vs MLP test accuracy --------------------------------------------------------------------------------

def cnn_vs_mlp(groups):
    """Per framework with both groups: CNN − MLP final test accuracy (pp), beside the report's; one family."""
    frameworks = [fw for fw in FRAMEWORKS if not missing(groups, [f"cnn_{fw}", f"nn_{fw}"])]
    return family([Comparison(FRAMEWORKS[fw], [accuracy_pp(groups[f"cnn_{fw}"]), accuracy_pp(groups[f"nn_{fw}"])],
                              report=test_acc_difference(f"cnn_{fw}", f"nn_{fw}"))
                   for fw in frameworks])


def claim_cnn_vs_mlp(groups):
    claim, evidence = "1. CNNs reach higher test accuracy than MLPs", "CNN 98.17–98.77% vs MLP 97.94–97.97%"
    tests = cnn_vs_mlp(groups)
    if not tests:
        return not_measured(claim, evidence, missing(groups, MODELS))
    ours = "CNN − MLP: " + "; ".join(f"{t.label} {brief(t)}" for t in tests) + f"; {seeds(groups, MODELS)}"
    detail = comparisons_table(tests, "CNN test acc (%)", "MLP test acc (%)")
    return Finding(claim, evidence, ours, scope_verdict({t.label: outcome(t) for t in tests}), detail)


# --- 2. convergence ---------------------------------------------------------------------------------------------

def first_reach(record, threshold):
    """(epoch, gradient steps, training seconds) when test_acc first reaches ``threshold`` (a fraction); None if never.

    steps = epoch * ceil(n_train / batch_size), n_train = config limit_train or 60000; seconds = the sum of the
    history's per-epoch training seconds up to and including that epoch.
    """
    config = record["config"]
    steps_per_epoch = math.ceil((config.get("limit_train") or TRAIN_SIZE) / config["batch_size"])
    seconds = 0.0
    for entry in record["history"]:
        seconds += entry["seconds"]
        if entry["test_acc"] >= threshold:
            return entry["epoch"], entry["epoch"] * steps_per_epoch, seconds
    return None


def run_length(record):
    """(epochs trained, training seconds in all): what a run that never reached a threshold spent trying."""
    return len(record["history"]), sum(entry["seconds"] for entry in record["history"])


@dataclass
class Convergence:
    """Per seed, epochs and seconds to a threshold; a seed that never reached it carries its censored value."""
    threshold: float
    epochs: list
    seconds: list
    steps: list          # of the seeds that reached it
    censored: list       # per seed: True where it never reached the threshold

    @property
    def reached(self):
        return self.censored.count(False)


def convergence(records, threshold, censor_at=None):
    """Convergence of ``records`` to ``threshold``. censor_at: (epochs, seconds) given to a seed that never
    reached it; None: the seed's own run length (epochs + 1, its training seconds), the least it could be."""
    epochs, seconds, steps, censored = [], [], [], []
    for record in records:
        hit = first_reach(record, threshold)
        if hit:
            epochs.append(hit[0])
            steps.append(hit[1])
            seconds.append(hit[2])
        else:
            length, spent = run_length(record)
            at = censor_at or (length + 1, spent)
            epochs.append(at[0])
            seconds.append(at[1])
        censored.append(hit is None)
    return Convergence(threshold, epochs, seconds, steps, censored)


def convergence_pair(cnn_records, mlp_records, threshold):
    """(CNN's, MLP's Convergence), censored against the claim (the CNN is faster): an MLP seed that never
    reached the threshold counts at the least it could be (its epochs + 1, its training seconds); a CNN seed, at
    one epoch more than the longest run of the comparison and its longest training time."""
    lengths = [run_length(r) for r in [*cnn_records, *mlp_records]]
    worst = (max(e for e, _ in lengths) + 1, max(s for _, s in lengths))
    return convergence(cnn_records, threshold, censor_at=worst), convergence(mlp_records, threshold)


def faster_tests(groups):
    """[(framework, Comparison of CNN − MLP epochs to a threshold, CNN's, MLP's Convergence)] per framework with
    both groups and per threshold; one family over all of them."""
    rows = []
    for fw in FRAMEWORKS:
        if missing(groups, [f"cnn_{fw}", f"nn_{fw}"]):
            continue
        for threshold in THRESHOLDS:
            cnn, mlp = convergence_pair(groups[f"cnn_{fw}"], groups[f"nn_{fw}"], threshold)
            rows.append((fw, Comparison(f"{FRAMEWORKS[fw]} at {threshold:.1%}", [cnn.epochs, mlp.epochs], sign=-1),
                         cnn, mlp))
    family([c for _, c, _, _ in rows])
    return rows


def per_seed(values, censored, digits=0):
    """'3, 4, 21*': per-seed values, a censored one starred."""
    return ", ".join(f"{v:.{digits}f}{'*' * c}" for v, c in zip(values, censored))


def convergence_rows(rows):
    """The per-model table: epochs and seconds to each threshold, per seed and mean ± std."""
    out = []
    for fw, _, cnn, mlp in rows:
        for arch, conv in (("cnn", cnn), ("nn", mlp)):
            out.append([TITLES[f"{arch}_{fw}"], f"{conv.threshold:.1%}", per_seed(conv.epochs, conv.censored),
                        pm(conv.epochs, 1), per_seed(conv.seconds, conv.censored, 1), pm(conv.seconds, 1),
                        pm(conv.steps, 0), f"{conv.reached}/{len(conv.censored)}"])
    return table(["model", "threshold", "epochs per seed", "epochs", "seconds per seed", "seconds",
                  "gradient steps (seeds that reached it)", "reached"], out)


def claim_convergence(groups):
    claim, evidence = "2. CNNs converge faster (fewer epochs)", "CNNs trained 5–10 epochs, MLPs 20"
    rows = faster_tests(groups)
    if not rows:
        return not_measured(claim, evidence, missing(groups, MODELS))
    by_framework = {}
    for fw, c, _, _ in rows:
        by_framework.setdefault(FRAMEWORKS[fw], []).append(c)
    ours = ("CNN − MLP epochs to " + " / ".join(f"{t:.1%}" for t in THRESHOLDS) + ": "
            + "; ".join(f"{fw} " + " / ".join(brief(c, "", 1) for c in tests) for fw, tests in by_framework.items())
            + f"; {seeds(groups, MODELS)}")
    seconds = ", ".join(f"{c.label} {np.mean(cnn.seconds) - np.mean(mlp.seconds):+.1f} s" for _, c, cnn, mlp in rows)
    censored = any(any(conv.censored) for _, _, cnn, mlp in rows for conv in (cnn, mlp))
    detail = (convergence_rows(rows)
              + ("\n\\* never reached the threshold: counted by the censoring rule (see Statistics), against the "
                 "claim.\n" if censored else "")
              + "\nCNN − MLP epochs to the threshold (the claim: negative):\n\n"
              + comparisons_table([c for _, c, _, _ in rows], "CNN epochs", "MLP epochs", digits=1, unit="epochs")
              + f"\nIn training seconds, mean CNN − mean MLP (for information; the claim is worded in epochs): "
                f"{seconds}.\n")
    verdict = scope_verdict({fw: combine([outcome(c) for c in tests]) for fw, tests in by_framework.items()})
    return Finding(claim, evidence, ours, verdict, detail, ["convergence.png"])




def plot_convergence(path, groups):
    """Test accuracy per epoch of the four models: the mean over seeds, and a min–max band."""
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    from common.plots import STYLE, save

    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for model in (m for m in MODELS if groups.get(m)):
            epochs = min(len(r["history"]) for r in groups[model])
            acc = 100 * np.array([[h["test_acc"] for h in r["history"][:epochs]] for r in groups[model]])
            x = np.arange(1, epochs + 1)
            line, = ax.plot(x, acc.mean(axis=0), "o-", markersize=3,
                            label=f"{TITLES[model]} ({len(acc)} seeds)")
            ax.fill_between(x, acc.min(axis=0), acc.max(axis=0), color=line.get_color(), alpha=0.2)
        for threshold in THRESHOLDS:
            ax.axhline(100 * threshold, color="gray", linestyle=":", linewidth=1)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set(xlabel="epoch", ylabel="test accuracy (%)",
               title="Test accuracy per epoch: mean over seeds, min–max band")
        ax.grid(True, alpha=0.3)
        ax.legend()
        save(fig, path)


# --- 3. permuted pixels -----------------------------------------------------------------------------------------

def unpermuted(groups, model):
    """The group the permuted runs of ``model`` are compared with: the same procedure on the original pixels. The
    permuted runs use the kit's earlier defaults (a new data order every epoch; reproduce.EARLIER), so their
    baseline is ``model+earlier`` where it was run, else the main runs."""
    return f"{model}+earlier" if groups.get(f"{model}+earlier") else model


def permutation_tests(groups):
    """Per framework with all four groups: the CNN's permuted − original test accuracy, and how much more it
    loses than the MLP ((CNN permuted − original) − (MLP permuted − original)); one family.

    Returns {framework: [2 Comparisons]}."""
    frameworks = [fw for fw in FRAMEWORKS
                  if not missing(groups, [name for a in ARCHITECTURES
                                          for name in (unpermuted(groups, f"{a}_{fw}"), f"{a}_{fw}+permuted")])]
    tests = []
    for fw in frameworks:
        cnn, cnn_permuted, mlp, mlp_permuted = (accuracy_pp(groups[name]) for a in ("cnn", "nn")
                                                for name in (unpermuted(groups, f"{a}_{fw}"), f"{a}_{fw}+permuted"))
        tests += [Comparison(f"CNN, {FRAMEWORKS[fw]}: permuted − original", [cnn_permuted, cnn], sign=-1),
                  Comparison(f"{FRAMEWORKS[fw]}: the CNN's change − the MLP's",
                             [cnn_permuted, cnn, mlp_permuted, mlp], weights=(1, -1, -1, 1), sign=-1)]
    family(tests)
    return {fw: tests[2 * i:2 * i + 2] for i, fw in enumerate(frameworks)}


def claim_permuted(groups):
    claim = "3. Convolutional layers capture spatial features"
    evidence = "asserted; the CNNs' higher accuracy"
    per_framework = permutation_tests(groups)
    if not per_framework:
        names = [f"{m}{s}" for m in MODELS for s in ("", "+permuted")]
        return not_measured(claim, evidence, missing(groups, names))
    # Holds for a framework when permuting the pixels costs the CNN accuracy, and more than it costs the MLP
    # (which cannot tell by construction).
    ours = "; ".join(f"{t.label} {brief(t)}" for tests in per_framework.values() for t in tests)
    ours += f"; {seeds(groups, [m + '+permuted' for m in MODELS])}"
    base = {model: unpermuted(groups, model) for model in MODELS}
    cells = []
    for fw in per_framework:
        for a in ARCHITECTURES:
            original, permuted = accuracy_pp(groups[base[f"{a}_{fw}"]]), accuracy_pp(groups[f"{a}_{fw}+permuted"])
            cells.append([TITLES[f"{a}_{fw}"], f"`{base[f'{a}_{fw}']}`", pm(original), pm(permuted),
                          f"{np.mean(permuted) - np.mean(original):+.2f}"])
    same = ("The permuted runs were trained with the kit's earlier procedure (a new data order every epoch; for "
            "the NumPy MLP also PyTorch's initialisation in float32), so each is compared with the same model "
            "trained the same way on the original pixels (the `+earlier` groups).\n\n"
            if any(b.endswith("+earlier") for b in base.values()) else "")
    detail = (same + table(["model", "original pixels: group", "test acc (%)", "permuted pixels", "change (pp)"],
                           cells) + "\n"
              + comparisons_table([t for tests in per_framework.values() for t in tests], "permuted", "original"))
    verdict = scope_verdict({FRAMEWORKS[fw]: combine([outcome(t) for t in tests])
                             for fw, tests in per_framework.items()})
    return Finding(claim, evidence, ours, verdict, detail)


# --- 4./5. the 2x2 crossover: framework x recipe ----------------------------------------------------------------

EFFECT_TESTS = ("the effect of one factor is averaged over the other: for each seed, the mean test accuracy of "
                "the two cells on the PyTorch side, against the same for the two cells on the NumPy side, and "
                "Welch's interval between those per-seed averages")


def by_seed(records):
    return {r["config"]["seed"]: 100 * r["final"]["test_acc"] for r in records}


def seed_average(cell_a, cell_b):
    """For each seed that both cells ran: the mean of their two test accuracies (%)."""
    a, b = by_seed(cell_a), by_seed(cell_b)
    return [(a[s] + b[s]) / 2 for s in sorted(a.keys() & b.keys())]


def main_effect(cells, factor, arch, **kwargs):
    """The Comparison of PyTorch − NumPy for ``factor`` ("framework" or "recipe") in ``cells``
    ({(framework, recipe): records}), averaged over the other factor as EFFECT_TESTS says."""
    def cell(level, other):
        return cells[(level, other) if factor == "framework" else (other, level)]

    other = "recipe" if factor == "framework" else "framework"
    return Comparison(f"{ARCHITECTURES[arch]}, {factor} averaged over {other}s",
                      [seed_average(cell("torch", "numpy"), cell("torch", "torch")),
                       seed_average(cell("numpy", "numpy"), cell("numpy", "torch"))], **kwargs)


def crossover_effects(groups, factor):
    """{arch: main effect of ``factor``} for each architecture with all four cells; one family.

    framework: an equivalence comparison (within ±MARGIN_PP); recipe: the PyTorch recipe is better (sign +1).
    Beside each, the report's own PyTorch − NumPy difference, where framework and recipe changed together."""
    archs = [a for a in ARCHITECTURES if not missing(groups, CROSSOVER[a].values())]
    kwargs = {"kind": "comparable"} if factor == "framework" else {"sign": +1}
    tests = family([main_effect({k: groups[v] for k, v in CROSSOVER[a].items()}, factor, a,
                                report=test_acc_difference(f"{a}_torch", f"{a}_numpy"), **kwargs)
                    for a in archs])
    return dict(zip(archs, tests))


def describe_recipe(config):
    """'sgd lr 0.01, momentum 0.9, 20 epochs, batch 32, pytorch init', from a record's config."""
    text = f"{config.get('optimizer', '?')} lr {config.get('lr', '?')}"
    text += f", momentum {config['momentum']}" if config.get("momentum") else ""
    text += f", {config.get('epochs', '?')} epochs, batch {config.get('batch_size', '?')}"
    return text + (f", {str(config['init']).split(':')[0]} init" if config.get("init") else "")


def crossover_table(groups):
    rows = []
    for arch, cells in CROSSOVER.items():
        if missing(groups, cells.values()):
            continue
        for (fw, recipe), name in cells.items():
            records = groups[name]
            rows.append([ARCHITECTURES[arch], FRAMEWORKS[fw], f"{FRAMEWORKS[recipe]}: "
                         f"{describe_recipe(records[0]['config'])}", f"`{name}`", pm(accuracy_pp(records)),
                         len(records)])
    return table(["architecture", "framework", "recipe", "group", "test acc (%)", "seeds"], rows)


def crossover_claim(groups, factor, claim, evidence, verdicts, cells_shown_in=None):
    """Claims 4 and 5; the cells' table and figure are shown once, in the first of the two claims.
    verdicts: {arch: Comparison} -> {scope: Outcome}."""
    effects = crossover_effects(groups, factor)
    names = [n for cells in CROSSOVER.values() for n in cells.values()]
    if not effects:
        return not_measured(claim, evidence, missing(groups, names))
    ours = f"PyTorch − NumPy {factor}: " + "; ".join(f"{ARCHITECTURES[a]} {brief(t)}" for a, t in effects.items())
    ours += f"; {seeds(groups, names)}"
    cells = (f"The four cells of each architecture: see claim {cells_shown_in}.\n" if cells_shown_in
             else crossover_table(groups))
    detail = (cells + f"\nThe {factor} effect (PyTorch − NumPy), test accuracy in %: {EFFECT_TESTS}. The report's "
              "number is its PyTorch − NumPy difference, where framework and recipe changed together.\n\n"
              + comparisons_table(list(effects.values()), "PyTorch side", "NumPy side"))
    return Finding(claim, evidence, ours, scope_verdict(verdicts(effects)), detail,
                   [] if cells_shown_in else ["crossover.png"])


def claim_framework(groups):
    """Claim 4 is an equivalence claim: the framework's effect within ±MARGIN_PP, per architecture."""
    return crossover_claim(groups, "framework", "4. Manual (NumPy) implementations reach comparable accuracy",
                           "NumPy 97.94% / 98.17% vs PyTorch 97.97% / 98.77% (each with its own recipe)",
                           lambda effects: {ARCHITECTURES[a]: outcome(t) for a, t in effects.items()})


def claim_recipe(groups):
    """Claim 5 holds for an architecture when the PyTorch recipe's effect holds (read against the report's
    difference) and the framework's effect (claim 4's) does not exclude 0: otherwise the framework matters too."""
    framework = crossover_effects(groups, "framework")

    def verdicts(effects):
        out = {}
        for arch, t in effects.items():
            o, f = outcome(t), framework[arch].effect
            if o is not None and o.word == HOLDS and f is not None and (f.low > 0 or f.high < 0):
                o = Outcome(FAILS, f"the framework matters as well: {f.diff:+.2f} [{f.low:+.2f}, {f.high:+.2f}] pp",
                            o.seeds)
            out[ARCHITECTURES[arch]] = o
        return out

    return crossover_claim(groups, "recipe", "5. PyTorch's advantage comes from its optimizers",
                           "CNN 98.77% with Adam vs 98.17% with SGD; MLP 97.97% with momentum vs 97.94% without",
                           verdicts, cells_shown_in=4)


def plot_crossover(path, groups):
    """Per architecture: the four cells' test accuracy, every seed as a dot, the mean with a min–max bar."""
    import matplotlib.pyplot as plt

    from common.plots import STYLE, save

    archs = [a for a in ARCHITECTURES if not missing(groups, CROSSOVER[a].values())]
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(archs), figsize=(4.5 * len(archs), 4), squeeze=False)
        for ax, arch in zip(axes[0], archs):
            for offset, (recipe, color) in zip((-0.12, 0.12), (("numpy", "tab:blue"), ("torch", "tab:orange"))):
                for x, fw in enumerate(FRAMEWORKS):
                    acc = np.array(accuracy_pp(groups[CROSSOVER[arch][(fw, recipe)]]))
                    ax.scatter(np.full(len(acc), x + offset), acc, s=12, color=color, alpha=0.5)
                    ax.errorbar(x + offset, acc.mean(), yerr=[[acc.mean() - acc.min()], [acc.max() - acc.mean()]],
                                fmt="o", color=color, capsize=4, label=f"{FRAMEWORKS[recipe]} recipe" if x else None)
            ax.set_xticks(range(len(FRAMEWORKS)), [f"{name} framework" for name in FRAMEWORKS.values()])
            ax.set_xlim(-0.5, len(FRAMEWORKS) - 0.5)
            ax.set(ylabel="test accuracy (%)", title=f"{ARCHITECTURES[arch]}: framework × recipe")
            ax.grid(True, axis="y", alpha=0.3)
        # one legend above the panels, where no seed's dot can fall under it
        fig.legend(*axes[0][0].get_legend_handles_labels(), loc="upper center", ncol=2, frameon=False)
        fig.tight_layout(rect=(0, 0, 1, 0.92))
        save(fig, path)



# --- 6. GPU -----------------------------------------------------------------------------------------------------

def claim_gpu(gpu=None):
    """gpu: None, or {"machine": "...", "<model>": {"cpu": [s/epoch, ...], "cuda": [s/epoch, ...]}, ...}
    (a single number per device is fine), measured in one run. With 2 or more timings a side the CUDA epoch
    is faster when the interval of cpu − cuda excludes 0 (one family over the models); with a single timing a
    side, when cpu/cuda >= MIN_SINGLE_SPEEDUP, else it is not resolved. Nothing is ever estimated."""
    claim, evidence = "6. Frameworks benefit from GPU acceleration", "stated; no timing given"
    timed = {m: {device: np.atleast_1d(t.get(device, [])).tolist() for device in ("cpu", "cuda")}
             for m, t in (gpu or {}).items() if isinstance(t, dict)}
    timed = {m: t for m, t in timed.items() if t["cpu"] and t["cuda"]}
    if not timed:
        return Finding(claim, evidence, "—", "not measured: no GPU here")
    tests = family([Comparison(TITLES.get(m, m), [t["cpu"], t["cuda"]]) for m, t in timed.items()])
    speedups = [float(np.mean(t.a) / np.mean(t.b)) for t in tests]
    outcomes = {}
    for model, t, speedup in zip(timed, tests, speedups):
        single = Outcome(HOLDS if speedup >= MIN_SINGLE_SPEEDUP else UNRESOLVED,
                         f"{speedup:.1f}× from one timing a device", 1, None, None)
        outcomes[model] = single if t.effect is None else outcome(t)
    machine = (gpu or {}).get("machine", "an unnamed CUDA device")
    ours = "; ".join(f"{t.label} {np.mean(t.a):.2f} s/epoch on cpu vs {np.mean(t.b):.2f} on cuda ({s:.1f}×)"
                     for t, s in zip(tests, speedups)) + f"; {machine}"
    detail = (f"Measured on {machine}, seconds per training epoch (cpu − cuda; the claim: positive):\n\n"
              + comparisons_table(tests, "cpu", "cuda", unit="s"))
    return Finding(claim, evidence, ours, scope_verdict(outcomes), detail)


# --- 7. overfitting ---------------------------------------------------------------------------------------------

def overfitting_gaps(records):
    """Per seed: (train − test accuracy in pp, test − train loss in nats), from the final numbers."""
    return ([100 * (r["final"]["train_acc"] - r["final"]["test_acc"]) for r in records],
            [r["final"]["test_loss"] - r["final"]["train_loss"] for r in records])


def overfitting_tests(groups):
    """Per model: the mean over seeds of each seed's train − test accuracy gap (pp; a paired difference, so a
    one-sample interval), beside the report's gap. Where the report's gap is 0 (train = test), an equivalence
    comparison (kind "none": within ±MARGIN_PP). One family."""
    models = [m for m in MODELS if groups.get(m)]
    return dict(zip(models, family([
        Comparison(TITLES[m], [overfitting_gaps(groups[m])[0]], weights=(1,), report=overfitting_gap(m),
                   kind="none" if overfitting_gap(m) == 0 else "direction") for m in models])))


def claim_overfitting(groups):
    claim = "7. Overfitting: MLPs clearly, CNN NumPy not, CNN PyTorch slightly"
    evidence = "MLP train 99.97–99.99% vs test ~97.9%; CNN NumPy train = test; CNN PyTorch slight"
    tests = overfitting_tests(groups)
    if not tests:
        return not_measured(claim, evidence, MODELS)
    ours = "train − test acc: " + "; ".join(f"{t.label} {brief(t)}" for t in tests.values())
    rows = [[TITLES[m], pm([100 * r["final"]["train_acc"] for r in groups[m]]), pm(accuracy_pp(groups[m])),
             ", ".join(f"{g:+.2f}" for g in overfitting_gaps(groups[m])[0]), pm(overfitting_gaps(groups[m])[1], 4)]
            for m in tests]
    detail = (table(["model", "train acc (%)", "test acc (%)", "train − test per seed (pp)", "test − train loss"],
                    rows)
              + "\nOur train accuracy is measured on the whole training set after the last epoch; the report's "
                "is from its log's final results.\n\n"
              + comparisons_table(list(tests.values()), unit="pp"))
    return Finding(claim, evidence, ours + f"; {seeds(groups, list(tests))}",
                   scope_verdict({t.label: outcome(t) for t in tests.values()}), detail)


# --- 8. confusions ----------------------------------------------------------------------------------------------

def summed_confusion(records):
    """(10, 10) int64 counts summed over the records (rows = actual)."""
    return np.sum([np.asarray(r["confusion_matrix"], dtype=np.int64) for r in records], axis=0)


def directed_pairs(counts):
    """[((actual, predicted), count)] over the off-diagonal cells, most frequent first (ties: smaller pair)."""
    counts = np.asarray(counts)
    pairs = [((a, p), int(counts[a, p])) for a in range(len(counts)) for p in range(len(counts)) if a != p]
    return sorted(pairs, key=lambda pair: (-pair[1], pair[0]))


def unordered_pairs(counts):
    """[((a, b), count(a→b) + count(b→a))] for a < b, most frequent first (ties: smaller pair)."""
    counts = np.asarray(counts)
    pairs = [((a, b), int(counts[a, b] + counts[b, a])) for a in range(len(counts)) for b in range(a + 1, len(counts))]
    return sorted(pairs, key=lambda pair: (-pair[1], pair[0]))


def rank(pairs, pair):
    """1 + how many of ``pairs`` are strictly more frequent than ``pair``: tied pairs share a rank."""
    count = dict(pairs)[pair]
    return 1 + sum(c > count for _, c in pairs)


def pair_name(pair, arrow="↔"):
    return f"{pair[0]}{arrow}{pair[1]}"


def claim_confusions(groups):
    claim, evidence = "8. Common confusions: 4↔9, 7↔1, 3↔5, 3↔8", "named in the report's Discussion"
    models = [m for m in MODELS if groups.get(m) and all(r.get("confusion_matrix") for r in groups[m])]
    if not models:
        return not_measured(claim, evidence, MODELS)
    sums = {TITLES[m]: summed_confusion(groups[m]) for m in models}
    sums[f"all {len(models)} models"] = everything = sum(sums.values())
    overall = unordered_pairs(everything)
    ranks = {pair_name(p): rank(overall, p) for p in REPORT_PAIRS}
    ours = (f"top {TOP_K} unordered pairs over {', '.join(models)} ({seeds(groups, models)} summed): "
            + ", ".join(f"{pair_name(p)} {c}" for p, c in overall[:TOP_K])
            + "; the report's pairs rank " + ", ".join(f"{name} #{r}" for name, r in ranks.items()))
    rows = [[name, ", ".join(f"{pair_name(p)} ({c})" for p, c in unordered_pairs(counts)[:TOP_K]),
             ", ".join(f"{pair_name(p, '→')} ({c})" for p, c in directed_pairs(counts)[:TOP_K]),
             ", ".join(f"{pair_name(p)} #{rank(unordered_pairs(counts), p)}" for p in REPORT_PAIRS)]
            for name, counts in sums.items()]
    detail = (f"Confusion counts summed over seeds (test set, actual → predicted); top {TOP_K} pairs, ties share "
              f"a rank:\n\n" + table(["models", f"top {TOP_K} unordered pairs", f"top {TOP_K} directed (actual → "
                                      "predicted)", "the report's pairs: rank"], rows))
    verdict = scope_verdict({name: Outcome(HOLDS if r <= TOP_K else FAILS) for name, r in ranks.items()})
    return Finding(claim, evidence, ours, verdict, detail)


# --- the page ---------------------------------------------------------------------------------------------------

FIGURES = {"convergence.png": plot_convergence, "crossover.png": plot_crossover}

STATISTICS = (
    f"Every number is over per-seed values (one per training run); test accuracies are in %, differences in "
    f"percentage points (pp).\n\n"
    f"**Intervals.** An effect is a difference of means with Welch's t interval (unequal variances, Satterthwaite "
    f"degrees of freedom; scipy), a difference of two such differences (claim 3, the same with four groups), or "
    f"the mean of per-seed paired differences (claim 7's train − test gap: a one-sample t interval). The "
    f"comparisons of one claim are one family, and the family-wise error is held at {ALPHA:.0%} by Bonferroni: "
    f"with m comparisons each interval has level 1 − {ALPHA}/m (95% for one, 97.5% for two, 98.75% for four), so "
    f"the intervals of a claim hold together with at least 95% confidence and each can be read against 0 and "
    f"against the report's number without a further correction. The p-value shown (of no effect) is multiplied "
    f"by m to match the interval. (Holm's step-down method, which results.md uses for its seed-noise table, has "
    f"no intervals that match it; hence Bonferroni here.)\n\n"
    f"**Verdicts of a direction claim**, read off the interval: *holds* when it excludes 0 on the claimed side "
    f"(noted when it also excludes the report's effect, which is then smaller or larger than ours); *does not "
    f"hold* when it lies on the other side of 0, or includes 0 but excludes the report's effect; *not resolved "
    f"with n seeds* when it includes 0 and the report's effect (or 0 alone, where the report gives no number). "
    f"A claim with several comparisons per framework or architecture (2, 3) holds there when all of them hold.\n\n"
    f"**Equivalence** (claim 4 \"comparable\", and claim 7's CNN NumPy, where the report says train = test): two "
    f"one-sided Welch tests (TOST), each at {ALPHA}/m, with the margin ±{MARGIN_PP:g} pp fixed before looking at "
    f"the numbers: {MARGIN_PP:g} pp is {MARGIN_PP * 100:.0f} of the 10,000 test images and about twice the "
    f"seed-to-seed standard deviation of one configuration's test accuracy (0.03–0.18 pp in the 3-seed runs "
    f"it was set from), a "
    f"difference two seeds of the same script commonly show. Their matching interval has level 1 − 2·{ALPHA}/m "
    f"(it is the one shown in those rows, with TOST's p-value): inside ±{MARGIN_PP:g} pp, *equivalent within "
    f"±{MARGIN_PP:g} pp* (claim 7: *holds*); wholly beyond +{MARGIN_PP:g} or −{MARGIN_PP:g} pp, shown different "
    f"by more than the margin (claim 4: *not shown equivalent*, claim 7: *does not hold*); otherwise *not shown "
    f"equivalent* / *not resolved*.\n\n"
    f"**Seeds that would settle an open comparison**: the fewest seeds per group giving {POWER:.0%} power, if the "
    f"true effect and each group's variance are the observed ones. Direction claims: the two-sided Welch test at "
    f"{ALPHA}/m excluding 0 or the report's effect, whichever needs fewer seeds, its power from the noncentral t "
    f"distribution with Welch's degrees of freedom at equal n. Equivalence: TOST at {ALPHA}/m, its power "
    f"approximated as P(T₁ > t) + P(T₂ < −t) − 1 with noncentral t's; where the observed difference is at or "
    f"beyond the margin, no number of seeds would show equivalence (claim 7: the one-sided test that the gap "
    f"exceeds the margin). These are planning numbers: with 3 seeds a side a variance is itself uncertain by a "
    f"factor of several.\n\n"
    f"**Convergence** (claim 2): epochs (and training seconds) to reach "
    f"{', '.join(f'{t:.1%}' for t in THRESHOLDS)} test accuracy, per seed. A seed that never reaches a threshold "
    f"is censored against the claim: an MLP seed counts at the least it could be (its epochs + 1, and all its "
    f"training seconds), a CNN seed at one epoch more than the longest run of the comparison (and the longest "
    f"training time); either way the CNN's advantage is understated, never overstated.\n\n"
    f"**Other rules.** Claim 3 holds for a framework when permuting the pixels costs the CNN accuracy and costs it "
    f"more than the MLP. Confusions (8): a pair is among the top when its rank among the 45 unordered pairs is "
    f"≤ {TOP_K}; counts are summed over seeds, no test. GPU (6): with one timing per device, a speed-up counts "
    f"from {MIN_SINGLE_SPEEDUP}×.")


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
