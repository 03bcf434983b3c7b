"""The report's Discussion claims 1, 2, 3 and 6, 7, 8, each a pure function over run records -> a Finding
(claims 4 and 5, the recipe crossover, are in reproduction/crossover.py).

    finding = claim_cnn_vs_mlp(groups)      # groups: group name -> its seeds' metrics.json records
    finding.verdict                         # "holds for PyTorch; does not hold for NumPy", read off the intervals

A claim whose groups are missing says "not measured (...)"; the others still render.
"""

import math
from dataclasses import dataclass

import numpy as np

from common.data import TRAIN_SIZE
from common.models import MODELS, TITLES
from reproduction.report import overfitting_gap, test_acc_difference
from reproduction.stats import FAILS, HOLDS, UNRESOLVED
from reproduction.verdicts import (ARCHITECTURES, FRAMEWORKS, Comparison, Finding, Outcome, accuracy_pp, brief,
                                   combine, comparisons_table, family, missing, not_measured, outcome, pm,
                                   scope_verdict, seeds, table)

THRESHOLDS = (0.975, 0.98)
REPORT_PAIRS = ((4, 9), (1, 7), (3, 5), (3, 8))
TOP_K = 5  # a report pair "is among the top" when its rank among the unordered pairs is <= TOP_K
MIN_SINGLE_SPEEDUP = 1.5  # with one timing per device, timings that wander +-50% need this ratio to count


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
