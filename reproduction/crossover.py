"""Claims 4 and 5, the recipe crossover: each architecture trained in both frameworks with both scripts' recipes
(optimizer, hyperparameters, initialisation), so that framework and recipe are separated (reproduction/experiments.py
names the four cells of each architecture).

    effects = crossover_effects(groups, "recipe")   # arch -> Comparison of PyTorch's recipe minus NumPy's
    finding = claim_framework(groups)               # claim 4: equivalence within ±MARGIN_PP
"""


import numpy as np

from reproduction.experiments import CROSSOVER
from reproduction.report import test_acc_difference
from reproduction.stats import FAILS, HOLDS
from reproduction.verdicts import (ARCHITECTURES, FRAMEWORKS, Comparison, Finding, Outcome, accuracy_pp, brief,
                                   comparisons_table, family, missing, not_measured, outcome, pm, scope_verdict, seeds,
                                   table)


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
