"""How a claim's numbers become its verdict and its rows: the comparisons of one claim as one family, each read
from its interval (reproduction/stats.py), and the markdown the claims are written in.

    tests = family([Comparison("NumPy", [cnn, mlp], report=0.23), ...])    # Bonferroni: 1 - ALPHA/m each
    word = scope_verdict({"NumPy": outcome(t) for t in tests})            # "holds for NumPy; ..."

The rule in words is reproduction/statistics.md (findings.md's Statistics section).
"""

import math
from dataclasses import dataclass, field

import numpy as np

from reproduction.stats import (ALPHA, FAILS, HOLDS, UNRESOLVED, contrast, judge, mean_std, seeds_for_equivalence,
                                seeds_to_exclude, tost)

FRAMEWORKS = {"numpy": "NumPy", "torch": "PyTorch"}
ARCHITECTURES = {"nn": "MLP", "cnn": "CNN"}
# "Comparable" and "train = test" are equivalence claims: the effect within +-MARGIN_PP, stated before looking.
# 0.2 pp is 20 of the 10,000 test images and about twice the seed-to-seed std of one model's test accuracy
# (0.03-0.18 pp in the committed runs): a gap smaller than two seeds of the same script differ by is comparable.
MARGIN_PP = 0.2
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
