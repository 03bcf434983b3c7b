"""The report's Discussion (section 4), claim by claim: pure functions over run records, and the page they make.

    python reproduce.py --findings               # trains the extra configurations, then calls write_findings
    python -c "import glob, json; from common.findings import write_findings; write_findings('/tmp/f', {m: [
        json.load(open(p)) for p in sorted(glob.glob(f'figures/**/{m}/metrics.json', recursive=True))]
        for m in ('nn_numpy', 'nn_torch', 'cnn_numpy', 'cnn_torch')})"   # claims 1, 2, 7, 8 from the main runs

    from common.findings import write_findings
    text = write_findings("figures", groups)      # figures/findings.md and figures/findings/*.png
    text = write_findings("figures", groups, gpu={"machine": "NVIDIA H100",
                                                  "nn_torch": {"cpu": [1.3, 1.2], "cuda": [0.4, 0.4]}})

A record is one run's metrics.json (common/run.py): model, framework, config (epochs, lr, batch_size, seed,
limit_train, optimizer, momentum, init, ...), history (per epoch: epoch, train/test loss and accuracy as
fractions, seconds), final, confusion_matrix (10x10 counts, rows = actual). ``groups`` maps a configuration
name to the list of its records, one per seed:

    nn_numpy, nn_torch, cnn_numpy, cnn_torch   the report's four configurations (the main runs)
    nn_numpy+momentum    nn_numpy with nn_torch's recipe: SGD lr 0.01, momentum 0.9
    nn_torch+sgd         nn_torch with nn_numpy's recipe: plain SGD lr 0.1, momentum 0
    cnn_numpy+adam       cnn_numpy with cnn_torch's recipe: Adam lr 1e-3, 10 epochs, batch 32, PyTorch init
    cnn_torch+sgd        cnn_torch with cnn_numpy's recipe: plain SGD lr 0.01, 5 epochs, batch 16, Xavier init
    nn_numpy+permuted, nn_torch+permuted, cnn_numpy+permuted, cnn_torch+permuted
                         each of the four with --permute-pixels (one fixed permutation of the 784 pixels)

A claim whose groups are missing says "not measured (...)"; the others still render. Every verdict is
derived from the numbers below (Welch's t with Holm's correction from common/stats.py, and the thresholds
named here), never written per claim.
"""

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from common.data import TRAIN_SIZE
from common.io import write_text
from common.run import TITLES
from common.stats import ALPHA, RULE, holm, mean_std, welch

MODELS = ("nn_numpy", "nn_torch", "cnn_numpy", "cnn_torch")
FRAMEWORKS = {"numpy": "NumPy", "torch": "PyTorch"}
ARCHITECTURES = {"nn": "MLP", "cnn": "CNN"}
THRESHOLDS = (0.975, 0.98)
# The crossover cells: architecture -> (framework, recipe) -> group. The recipe is the script's whose
# optimizer, epochs, batch size and initialisation are used.
CROSSOVER = {"nn": {("numpy", "numpy"): "nn_numpy", ("numpy", "torch"): "nn_numpy+momentum",
                    ("torch", "numpy"): "nn_torch+sgd", ("torch", "torch"): "nn_torch"},
             "cnn": {("numpy", "numpy"): "cnn_numpy", ("numpy", "torch"): "cnn_numpy+adam",
                     ("torch", "numpy"): "cnn_torch+sgd", ("torch", "torch"): "cnn_torch"}}
# Overfitting classes, from the train - test accuracy gap (pp) when it is beyond seed noise.
SLIGHT_GAP_PP, CLEAR_GAP_PP = 0.1, 1.0
# The report's words as classes: MLPs train at 99.97-99.99% (clear), CNN NumPy train = test, CNN PyTorch slight.
REPORT_OVERFITTING = {"nn_numpy": "clear", "nn_torch": "clear", "cnn_numpy": "none", "cnn_torch": "slight"}
REPORT_PAIRS = ((4, 9), (1, 7), (3, 5), (3, 8))
TOP_K = 5  # a report pair "is among the top" when its rank among the unordered pairs is <= TOP_K
MIN_SINGLE_SPEEDUP = 1.5  # with one timing per device, timings that wander +-50% need this ratio to count


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
    """Welch's t of mean(a) - mean(b) over per-seed values, with its Holm-adjusted p within one claim."""
    label: str
    a: list
    b: list
    welch: object = None   # common.stats.Welch, or None below 2 values a side
    p_adj: float = None

    @property
    def diff(self):
        return float(np.mean(self.a) - np.mean(self.b))

    def beyond_noise(self, sign=0):
        """True when adjusted p < ALPHA (and, with sign=+1/-1, the difference has that sign); None if untested."""
        if self.welch is None:
            return None
        return bool(self.p_adj < ALPHA and (sign == 0 or np.sign(self.welch.diff) == sign))


# --- small helpers --------------------------------------------------------------------------------------------

def accuracy_pp(records):
    """Per-seed final test accuracy in %."""
    return [100 * r["final"]["test_acc"] for r in records]


def family(pairs):
    """[(label, a, b)] -> [Comparison]: Welch per pair, p-values Holm-adjusted over the whole list."""
    with warnings.catch_warnings():
        # scipy warns when one side is constant (every seed reached 98% at epoch 1); Welch's t is still defined.
        warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
        tests = [Comparison(label, list(a), list(b), welch(a, b)) for label, a, b in pairs]
    for test, p in zip(tests, holm([t.welch.p if t.welch else None for t in tests])):
        test.p_adj = p
    return tests


def scope_verdict(outcomes):
    """{condition: True/False/None (untested)} -> "holds" / "holds only for …" / "does not hold" / "not measured"."""
    held = [k for k, v in outcomes.items() if v]
    if all(v is None for v in outcomes.values()):
        return "not measured (fewer than 2 seeds per group)"
    if len(held) == len(outcomes):
        return "holds"
    return "holds only for " + ", ".join(held) if held else "does not hold"


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


def brief(test, unit="pp"):
    """'+0.62 pp (t +5.3, p 0.012)' with the Holm-adjusted p; 'untested' below 2 seeds."""
    if test.welch is None:
        return f"{test.diff:+.2f} {unit} (untested)"
    return f"{test.welch.diff:+.2f} {unit} (t {test.welch.t:+.1f}, p {test.p_adj:.2g})"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]) + "\n"


def comparisons_table(tests, a_name="A", b_name="B", digits=2):
    rows = []
    for t in tests:
        w = t.welch
        stats = (["—"] * 5 if w is None else
                 [f"{w.diff:+.{digits}f}", f"{w.se:.{digits}f}", f"{w.t:+.2f}",
                  f"{w.df:.1f}" if math.isfinite(w.df) else "—", f"{w.p:.3g}"])
        rows.append([t.label, pm(t.a, digits), pm(t.b, digits), *stats,
                     "—" if t.p_adj is None else f"{t.p_adj:.3g}"])
    return table(["comparison", a_name, b_name, "A − B", "std. error", "t", "df", "p", "p (Holm)"], rows)


# --- 1. CNN vs MLP test accuracy --------------------------------------------------------------------------------

def cnn_vs_mlp(groups):
    """Per framework with both groups: Welch's t of CNN − MLP final test accuracy (pp); Holm over the frameworks."""
    frameworks = [fw for fw in FRAMEWORKS if not missing(groups, [f"cnn_{fw}", f"nn_{fw}"])]
    return family([(FRAMEWORKS[fw], accuracy_pp(groups[f"cnn_{fw}"]), accuracy_pp(groups[f"nn_{fw}"]))
                   for fw in frameworks])


def claim_cnn_vs_mlp(groups):
    claim, evidence = "1. CNNs reach higher test accuracy than MLPs", "CNN 98.17–98.77% vs MLP 97.94–97.97%"
    tests = cnn_vs_mlp(groups)
    if not tests:
        return not_measured(claim, evidence, missing(groups, MODELS))
    ours = "CNN − MLP: " + "; ".join(f"{t.label} {brief(t)}" for t in tests) + f"; {seeds(groups, MODELS)}"
    detail = comparisons_table(tests, "CNN test acc (%)", "MLP test acc (%)")
    return Finding(claim, evidence, ours, scope_verdict({t.label: t.beyond_noise(+1) for t in tests}), detail)


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


@dataclass
class Convergence:
    threshold: float
    reached: int        # how many seeds reached it
    seeds: int
    epochs: list        # per reaching seed
    steps: list
    seconds: list


def convergence(records, threshold):
    hits = [hit for hit in (first_reach(r, threshold) for r in records) if hit]
    epochs, steps, seconds = (list(column) for column in zip(*hits)) if hits else ([], [], [])
    return Convergence(threshold, len(hits), len(records), epochs, steps, seconds)


def convergence_cell(c, what="epochs", digits=1):
    values = getattr(c, what)
    return f"never (0/{c.seeds})" if not values else f"{pm(values, digits)} ({c.reached}/{c.seeds})"


def faster_tests(groups):
    """Per framework and threshold: (Comparison of CNN − MLP epochs to reach it, CNN's, MLP's Convergence).

    Welch's t (Holm over these) only where both reached it in as many seeds; otherwise the counts decide
    (see ``faster``) and the Comparison carries no test.
    """
    pairs = []
    for fw in FRAMEWORKS:
        if missing(groups, [f"cnn_{fw}", f"nn_{fw}"]):
            continue
        for threshold in THRESHOLDS:
            cnn, mlp = (convergence(groups[f"{a}_{fw}"], threshold) for a in ("cnn", "nn"))
            pairs.append((f"{FRAMEWORKS[fw]} at {threshold:.1%}", cnn, mlp))
    tested = iter(family([(label, cnn.epochs, mlp.epochs)
                          for label, cnn, mlp in pairs if cnn.reached == mlp.reached]))
    return [(next(tested) if cnn.reached == mlp.reached else Comparison(label, cnn.epochs, mlp.epochs), cnn, mlp)
            for label, cnn, mlp in pairs]


def faster(test, cnn, mlp):
    """The CNN converges faster: reaches the threshold in more seeds, or as many and in fewer epochs (Welch)."""
    if cnn.reached != mlp.reached:
        return cnn.reached > mlp.reached
    if cnn.reached == 0:
        return False
    return test.beyond_noise(-1)


def claim_convergence(groups):
    claim, evidence = "2. CNNs converge faster (fewer epochs)", "CNNs trained 5–10 epochs, MLPs 20"
    results = faster_tests(groups)
    if not results:
        return not_measured(claim, evidence, missing(groups, MODELS))
    ours = f"epochs to {THRESHOLDS[-1]:.1%} test acc: " + "; ".join(
        f"{TITLES[m]} {convergence_cell(convergence(groups[m], THRESHOLDS[-1]))}"
        for m in MODELS if groups.get(m)) + f"; {seeds(groups, MODELS)}"
    rows = [[f"{TITLES[m]}", f"{threshold:.1%}", *(convergence_cell(convergence(groups[m], threshold), w, d)
                                                    for w, d in (("epochs", 1), ("steps", 0), ("seconds", 1)))]
            for threshold in THRESHOLDS for m in MODELS if groups.get(m)]
    detail = (table(["model", "threshold", "epochs (seeds that reached it)", "gradient steps", "training seconds"],
                    rows)
              + "\nCNN − MLP epochs to the threshold (Welch over the seeds that reached it; a model that reached it "
                "in fewer seeds counts as slower):\n\n"
              + comparisons_table([t for t, _, _ in results], "CNN epochs", "MLP epochs", digits=1))
    verdict = scope_verdict({t.label: faster(t, cnn, mlp) for t, cnn, mlp in results})
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

def permutation_tests(groups):
    """Per framework with all four groups: permuted − original test accuracy of each architecture, and the
    CNN's advantage over the MLP (CNN − MLP), original and permuted. One Holm family.

    Returns {framework: [4 Comparisons]}."""
    frameworks = [fw for fw in FRAMEWORKS
                  if not missing(groups, [f"{a}_{fw}{s}" for a in ARCHITECTURES for s in ("", "+permuted")])]
    pairs = []
    for fw in frameworks:
        for arch in ARCHITECTURES:
            pairs.append((f"{ARCHITECTURES[arch]}, {FRAMEWORKS[fw]}: permuted − original",
                          accuracy_pp(groups[f"{arch}_{fw}+permuted"]), accuracy_pp(groups[f"{arch}_{fw}"])))
        for suffix, what in (("", "original"), ("+permuted", "permuted")):
            pairs.append((f"CNN − MLP, {FRAMEWORKS[fw]}, {what} pixels",
                          accuracy_pp(groups[f"cnn_{fw}{suffix}"]), accuracy_pp(groups[f"nn_{fw}{suffix}"])))
    tests = family(pairs)
    return {fw: tests[4 * i:4 * i + 4] for i, fw in enumerate(frameworks)}


def claim_permuted(groups):
    claim = "3. Convolutional layers capture spatial features"
    evidence = "asserted; the CNNs' higher accuracy"
    per_framework = permutation_tests(groups)
    if not per_framework:
        names = [f"{m}{s}" for m in MODELS for s in ("", "+permuted")]
        return not_measured(claim, evidence, missing(groups, names))
    # Holds for a framework when permuting the pixels costs the CNN accuracy beyond seed noise, and more than
    # it costs the MLP (which cannot tell by construction).
    outcomes = {}
    for fw, (mlp_drop, cnn_drop, _, _) in per_framework.items():
        lost = cnn_drop.beyond_noise(-1)
        outcomes[FRAMEWORKS[fw]] = None if lost is None else lost and cnn_drop.diff < mlp_drop.diff
    ours = "; ".join(f"{t.label} {brief(t)}" for tests in per_framework.values() for t in tests[:2])
    ours += f"; {seeds(groups, [m + '+permuted' for m in MODELS])}"
    detail = comparisons_table([t for tests in per_framework.values() for t in tests],
                               "A test acc (%)", "B test acc (%)")
    return Finding(claim, evidence, ours, scope_verdict(outcomes), detail)


# --- 4./5. the 2x2 crossover: framework x recipe ----------------------------------------------------------------

EFFECT_TESTS = ("the main effect (averaged over the other factor) is Welch's t between per-seed averages: for "
                "each seed, the mean test accuracy of the two cells on the PyTorch side, against the same for the "
                "two cells on the NumPy side; the effect at one level of the other factor is Welch's t between "
                "those two cells' per-seed accuracies; Holm's correction over the six tests of the claim")


def by_seed(records):
    return {r["config"]["seed"]: 100 * r["final"]["test_acc"] for r in records}


def seed_average(cell_a, cell_b):
    """For each seed that both cells ran: the mean of their two test accuracies (%)."""
    a, b = by_seed(cell_a), by_seed(cell_b)
    return [(a[s] + b[s]) / 2 for s in sorted(a.keys() & b.keys())]


def effect_pairs(cells, factor, arch):
    """[(label, a, b)] for the torch − numpy effect of ``factor`` ("framework" or "recipe") in ``cells``
    ({(framework, recipe): records}): the main effect, then the effect at each level of the other factor,
    tested as EFFECT_TESTS says."""
    def cell(level, other):
        return cells[(level, other) if factor == "framework" else (other, level)]

    other_factor = "recipe" if factor == "framework" else "framework"
    name = ARCHITECTURES[arch]
    pairs = [(f"{name}, averaged over {other_factor}s",
              seed_average(cell("torch", "numpy"), cell("torch", "torch")),
              seed_average(cell("numpy", "numpy"), cell("numpy", "torch")))]
    return pairs + [(f"{name}, {FRAMEWORKS[other]} {other_factor}", accuracy_pp(cell("torch", other)),
                     accuracy_pp(cell("numpy", other))) for other in FRAMEWORKS]


def crossover_effects(groups, factor):
    """{arch: [main effect, at numpy, at torch]} for each architecture with all four cells; one Holm family."""
    archs = [a for a in ARCHITECTURES if not missing(groups, CROSSOVER[a].values())]
    tests = family([pair for a in archs
                    for pair in effect_pairs({k: groups[v] for k, v in CROSSOVER[a].items()}, factor, a)])
    return {a: tests[3 * i:3 * i + 3] for i, a in enumerate(archs)}


def describe_recipe(config):
    """'SGD lr 0.01, momentum 0.9, 20 epochs, batch 32, PyTorch default init', from a record's config."""
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


def crossover_claim(groups, factor, claim, evidence, outcome, cells_shown_in=None):
    """Claims 4 and 5; the cells' table and figure are shown once, in the first of the two claims."""
    effects = crossover_effects(groups, factor)
    names = [n for cells in CROSSOVER.values() for n in cells.values()]
    if not effects:
        return not_measured(claim, evidence, missing(groups, names))
    ours = f"PyTorch − NumPy {factor}: " + "; ".join(f"{t.label} {brief(t)}" for tests in effects.values()
                                                     for t in tests[:1])
    ours += f"; {seeds(groups, names)}"
    cells = (f"The four cells of each architecture: see claim {cells_shown_in}.\n" if cells_shown_in
             else crossover_table(groups))
    detail = (cells + f"\nThe {factor} effect (PyTorch − NumPy), test accuracy in %: "
              + EFFECT_TESTS + ".\n\n"
              + comparisons_table([t for tests in effects.values() for t in tests], "PyTorch side", "NumPy side"))
    verdict = scope_verdict({ARCHITECTURES[a]: outcome(a, tests) for a, tests in effects.items()})
    return Finding(claim, evidence, ours, verdict, detail, [] if cells_shown_in else ["crossover.png"])


def claim_framework(groups):
    """Claim 4 holds for an architecture when no framework effect (main or per recipe) is beyond seed noise."""
    def comparable(arch, tests):
        outcomes = [t.beyond_noise() for t in tests]
        return None if all(o is None for o in outcomes) else not any(outcomes)

    return crossover_claim(groups, "framework", "4. Manual (NumPy) implementations reach comparable accuracy",
                           "NumPy 97.94% / 98.17% vs PyTorch 97.97% / 98.77% (each with its own recipe)",
                           comparable)


def claim_recipe(groups):
    """Claim 5 holds for an architecture when the PyTorch recipe's main effect is positive beyond seed noise
    and the framework's main effect (claim 4's family) is not beyond it."""
    framework = crossover_effects(groups, "framework")

    def from_recipe(arch, tests):
        recipe_helps, framework_matters = tests[0].beyond_noise(+1), framework[arch][0].beyond_noise()
        return None if recipe_helps is None else recipe_helps and not framework_matters

    return crossover_claim(groups, "recipe", "5. PyTorch's advantage comes from its optimizers",
                           "CNN 98.77% with Adam vs 98.17% with SGD; MLP 97.97% with momentum vs 97.94% without",
                           from_recipe, cells_shown_in=4)


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
            ax.legend()
        fig.tight_layout()
        save(fig, path)


# --- 6. GPU -----------------------------------------------------------------------------------------------------

def claim_gpu(gpu=None):
    """gpu: None, or {"machine": "...", "<model>": {"cpu": [s/epoch, ...], "cuda": [s/epoch, ...]}, ...}
    (a single number per device is fine),
    measured in one run. The CUDA epoch counts as faster when Welch's t (cpu − cuda, Holm over the models)
    says so, or, with a single timing a side, when cpu/cuda >= MIN_SINGLE_SPEEDUP. Nothing is ever estimated."""
    claim, evidence = "6. Frameworks benefit from GPU acceleration", "stated; no timing given"
    timed = {m: {device: np.atleast_1d(t.get(device, [])).tolist() for device in ("cpu", "cuda")}
             for m, t in (gpu or {}).items() if isinstance(t, dict)}
    timed = {m: t for m, t in timed.items() if t["cpu"] and t["cuda"]}
    if not timed:
        return Finding(claim, evidence, "—", "not measured: no GPU here")
    tests = family([(TITLES.get(m, m), t["cpu"], t["cuda"]) for m, t in timed.items()])
    speedups = [float(np.mean(t.a) / np.mean(t.b)) for t in tests]
    outcomes = {model: speedup >= MIN_SINGLE_SPEEDUP if t.beyond_noise(+1) is None else t.beyond_noise(+1)
                for model, t, speedup in zip(timed, tests, speedups)}
    machine = (gpu or {}).get("machine", "an unnamed CUDA device")
    ours = "; ".join(f"{t.label} {np.mean(t.a):.2f} s/epoch on cpu vs {np.mean(t.b):.2f} on cuda ({s:.1f}×)"
                     for t, s in zip(tests, speedups)) + f"; {machine}"
    detail = f"Measured on {machine}, seconds per training epoch:\n\n" + comparisons_table(tests, "cpu", "cuda")
    return Finding(claim, evidence, ours, scope_verdict(outcomes), detail)


# --- 7. overfitting ---------------------------------------------------------------------------------------------

def overfitting_gaps(records):
    """Per seed: (train − test accuracy in pp, test − train loss in nats), from the final numbers."""
    return ([100 * (r["final"]["train_acc"] - r["final"]["test_acc"]) for r in records],
            [r["final"]["test_loss"] - r["final"]["train_loss"] for r in records])


def overfitting_class(test):
    """"none" / "slight" / "clear" from a Comparison of train − test accuracy (pp); None when untested.

    none: the gap is not beyond seed noise, or below SLIGHT_GAP_PP; slight: below CLEAR_GAP_PP; else clear.
    """
    beyond = test.beyond_noise(+1)
    if beyond is None:
        return None
    if not beyond or test.diff < SLIGHT_GAP_PP:
        return "none"
    return "slight" if test.diff < CLEAR_GAP_PP else "clear"


def claim_overfitting(groups):
    claim = "7. Overfitting: MLPs clearly, CNN NumPy not, CNN PyTorch slightly"
    evidence = "MLP train 99.97–99.99% vs test ~97.9%; CNN NumPy train = test; CNN PyTorch slight"
    models = [m for m in MODELS if groups.get(m)]
    if not models:
        return not_measured(claim, evidence, MODELS)
    tests = family([(TITLES[m], [100 * r["final"]["train_acc"] for r in groups[m]], accuracy_pp(groups[m]))
                    for m in models])
    classes = [overfitting_class(t) for t in tests]
    gaps = [overfitting_gaps(groups[m]) for m in models]
    ours = "train − test acc: " + "; ".join(f"{t.label} {pm(acc)} pp ({c or 'untested'})"
                                            for t, (acc, _), c in zip(tests, gaps, classes))
    rows = [[t.label, pm(acc), pm(loss, 4), c or "untested", REPORT_OVERFITTING[m],
             "—" if t.welch is None else f"{t.welch.t:+.1f}", "—" if t.p_adj is None else f"{t.p_adj:.3g}"]
            for m, t, (acc, loss), c in zip(models, tests, gaps, classes)]
    detail = table(["model", "train − test acc (pp)", "test − train loss", "ours", "the report's", "t", "p (Holm)"],
                   rows)
    outcomes = {m: None if c is None else c == REPORT_OVERFITTING[m] for m, c in zip(models, classes)}
    return Finding(claim, evidence, ours + f"; {seeds(groups, models)}", scope_verdict(outcomes), detail)


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
    verdict = scope_verdict({name: r <= TOP_K for name, r in ranks.items()})
    return Finding(claim, evidence, ours, verdict, detail)


# --- the page ---------------------------------------------------------------------------------------------------

FIGURES = {"convergence.png": plot_convergence, "crossover.png": plot_crossover}


def check_claims(groups, gpu=None):
    """The eight Findings, in the order of the report's Discussion."""
    return [claim_cnn_vs_mlp(groups), claim_convergence(groups), claim_permuted(groups), claim_framework(groups),
            claim_recipe(groups), claim_gpu(gpu), claim_overfitting(groups), claim_confusions(groups)]


def findings_markdown(findings):
    """The text of figures/findings.md: one summary table, a detail section per claim, the statistics rule."""
    summary = table(["claim", "the report's evidence", "ours (numbers, mean ± std, n seeds)", "verdict"],
                    [[f.claim, f.evidence, f.ours, f.verdict] for f in findings])
    sections = []
    for f in findings:
        pictures = "".join(f"\n![{name}](findings/{name})\n" for name in f.figures)
        sections.append(f"## {f.claim}\n\nThe report: {f.evidence}. **Verdict: {f.verdict}.**\n\n"
                        f"{f.detail}{pictures}")
    rule = (f"{RULE}. Test accuracies are in %, differences in percentage points (pp). Convergence thresholds: "
            f"{', '.join(f'{t:.1%}' for t in THRESHOLDS)} test accuracy. Overfitting: a train − test accuracy gap "
            f"beyond seed noise is slight from {SLIGHT_GAP_PP} pp and clear from {CLEAR_GAP_PP} pp. Confusions: a "
            f"pair is among the top when its rank among the 45 unordered pairs is ≤ {TOP_K}. GPU: with one timing "
            f"per device, a speed-up counts from {MIN_SINGLE_SPEEDUP}×.")
    return ("# The report's findings, checked\n\nEach claim of the report's Discussion (section 4), tested on "
            "our runs with seed noise; every verdict is computed from the numbers (see Statistics).\n\n"
            + summary + "\n" + "\n".join(sections) + "\n## Statistics\n\n" + rule + "\n")


def write_findings(out_dir, groups, gpu=None):
    """Write OUT_DIR/findings.md and its figures under OUT_DIR/findings/; returns the markdown text."""
    out_dir = Path(out_dir)
    findings = check_claims(groups, gpu)
    for name in {name for f in findings for name in f.figures}:
        FIGURES[name](out_dir / "findings" / name, groups)
    text = findings_markdown(findings)
    write_text(out_dir / "findings.md", text)
    return text
