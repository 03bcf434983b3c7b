"""reproduction/findings.py (claims.py, crossover.py, verdicts.py) on small synthetic histories and confusion matrices: each computation by hand, then the
whole page end to end (no training)."""

import numpy as np
import pytest

from scipy import stats as scipy_stats

from common.models import MODELS
from reproduction import claims, crossover, findings, stats
from reproduction.claims import (claim_cnn_vs_mlp, claim_confusions, claim_convergence, claim_gpu, claim_overfitting,
                                 claim_permuted, convergence, convergence_pair, directed_pairs, first_reach,
                                 overfitting_gaps, rank, summed_confusion, unordered_pairs)
from reproduction.crossover import claim_framework, claim_recipe, seed_average
from reproduction.experiments import CROSSOVER
from reproduction.findings import write_findings
from reproduction.verdicts import MARGIN_PP, Comparison, Outcome, combine, family, outcome, scope_verdict

NOISE = (-0.1, 0.0, 0.1)  # per-seed offsets (pp): std 0.1 for every group


def record(seed, test_acc, train_acc=None, curve=None, batch_size=32, limit_train=None, confusion=None,
           test_loss=0.08, train_loss=0.01, seconds=2.0):
    """A metrics.json-shaped record; test_acc/train_acc in %, curve = per-epoch test accuracy in %."""
    curve = [test_acc] if curve is None else curve
    train_acc = test_acc if train_acc is None else train_acc
    history = [{"epoch": e, "test_acc": acc / 100, "train_acc": acc / 100, "train_loss": 0.1, "test_loss": 0.1,
                "seconds": seconds} for e, acc in enumerate(curve, 1)]
    return {"model": "m", "framework": "numpy",
            "config": {"seed": seed, "batch_size": batch_size, "limit_train": limit_train, "epochs": len(curve),
                       "lr": 0.1, "optimizer": "SGD", "momentum": 0.0, "init": "pytorch"},
            "history": history,
            "final": {"test_acc": test_acc / 100, "train_acc": train_acc / 100, "test_loss": test_loss,
                      "train_loss": train_loss},
            "confusion_matrix": confusion if confusion is not None else np.eye(10, dtype=int).tolist()}


def group(mean, noise=NOISE, **kwargs):
    """One seed per offset in ``noise`` around ``mean`` (%)."""
    return [record(seed, mean + d, **kwargs) for seed, d in enumerate(noise)]


def scipy_interval(a, b, family):
    return scipy_stats.ttest_ind(a, b, equal_var=False).confidence_interval(1 - 0.05 / family)


# --- the reading: one comparison, and a claim's scopes ----------------------------------------------------------

def test_a_family_shares_alpha_by_bonferroni_and_skips_untested_comparisons():
    tests = family([Comparison("a", [[1.0, 2.0, 3.0], [0.0, 1.0, 1.5]]), Comparison("b", [[1.0, 2.0], [0.5, 0.7]]),
                    Comparison("c", [[1.0], [0.0, 1.0]])])
    assert [t.effect.family for t in tests[:2]] == [2, 2] and tests[2].effect is None
    low, high = scipy_interval([1.0, 2.0, 3.0], [0.0, 1.0, 1.5], family=2)
    assert (tests[0].effect.low, tests[0].effect.high) == (pytest.approx(low), pytest.approx(high))
    assert outcome(tests[2]) is None


def test_an_open_comparison_names_the_seeds_that_would_settle_it():
    c = family([Comparison("NumPy", [[98.19, 98.40, 98.28], [98.12, 98.22, 98.02]], report=0.23)])[0]
    o = outcome(c)
    assert o.word == "not resolved" and o.seeds == 3 and o.width == pytest.approx(c.effect.width)
    # the fewer of: seeds to exclude 0, seeds to exclude the report's +0.23 (observed +0.177: 0 is farther)
    assert o.needed == stats.seeds_to_exclude(c.effect, 0.0) < stats.seeds_to_exclude(c.effect, 0.23)


def test_combine_needs_every_comparison_to_hold():
    held, opened = Outcome("holds", "", 3), Outcome("not resolved", "", 3, 7, 1.0)
    assert combine([held, held]) == held
    assert combine([held, opened, Outcome("not resolved", "", 3, 12, 2.0)]).needed == 12
    assert combine([opened, Outcome("does not hold", "the opposite sign", 3)]).word == "does not hold"
    assert combine([held, None]) is None


def test_scope_verdict_wording():
    held, failed = Outcome("holds", "", 3), Outcome("does not hold", "the opposite sign", 3)
    opened = Outcome("not resolved", "", 3, 7, 0.5)
    assert scope_verdict({"a": held, "b": held}) == "holds"
    assert scope_verdict({"a": opened, "b": Outcome("not resolved", "", 3, 9, 0.5)}) == \
        "not resolved with 3 seeds (≈9 seeds per group would settle it)"
    assert scope_verdict({"a": held, "b": failed, "c": opened}) == \
        "holds for a; does not hold for b (the opposite sign); not resolved with 3 seeds " \
        "(≈7 seeds per group would settle it) for c"
    assert scope_verdict({"MLP, NumPy": held, "CNN, NumPy": None}) == \
        "holds for MLP, NumPy; not measured for CNN, NumPy"
    assert scope_verdict({"a": None}) == "not measured (fewer than 2 seeds per group)"
    assert scope_verdict({"a": Outcome("not resolved", "", 3, None, 0.5)}) == \
        "not resolved with 3 seeds (no number of seeds would settle it at the observed effect)"


# --- 1 ------------------------------------------------------------------------------------------------------------

def test_cnn_vs_mlp_reads_each_interval_against_zero_and_the_reports_effect():
    groups = {"nn_numpy": group(98.0), "cnn_numpy": group(99.0), "nn_torch": group(98.0), "cnn_torch": group(98.05)}
    finding = claim_cnn_vs_mlp(groups)
    # NumPy: +1.00, interval by scipy at 1 - 0.05/2 excludes 0 and the report's +0.23 (above it);
    # PyTorch: +0.05, includes 0 but not the report's +0.80
    low, high = scipy_interval(accuracy(groups["cnn_numpy"]), accuracy(groups["nn_numpy"]), family=2)
    assert f"NumPy +1.00 [{low:+.2f}, {high:+.2f}] pp (the report's +0.23)" in finding.ours
    assert finding.verdict == ("holds for NumPy (larger than the report's +0.23); does not hold for PyTorch "
                               "(the interval excludes the report's +0.80)")
    assert "3 seeds" in finding.ours and "(97.5%)" in finding.detail


def test_cnn_vs_mlp_not_resolved_names_the_seeds_and_the_opposite_sign_does_not_hold():
    groups = {"nn_numpy": group(98.0), "cnn_numpy": group(98.2), "nn_torch": group(99.0), "cnn_torch": group(98.0)}
    numpy_test = claims.cnn_vs_mlp(groups)[0]
    # +0.20 observed: excluding 0 takes fewer seeds than excluding the report's +0.23, which lies nearer
    needed = stats.seeds_to_exclude(numpy_test.effect, 0.0)
    assert needed < stats.seeds_to_exclude(numpy_test.effect, 0.23)
    assert claim_cnn_vs_mlp(groups).verdict == (f"does not hold for PyTorch (the opposite sign); not resolved with "
                                                f"3 seeds (≈{needed} seeds per group would settle it) for NumPy")


def accuracy(records):
    return [100 * r["final"]["test_acc"] for r in records]


# --- 2 ------------------------------------------------------------------------------------------------------------

def test_first_reach_counts_epochs_steps_and_seconds():
    r = record(0, 98.1, curve=[96.0, 97.6, 98.1], batch_size=32, limit_train=2000, seconds=1.5)
    assert first_reach(r, 0.975) == (2, 2 * 63, 3.0)  # ceil(2000 / 32) = 63 steps per epoch
    assert first_reach(r, 0.98) == (3, 3 * 63, 4.5)
    assert first_reach(r, 0.99) is None
    assert first_reach(record(0, 98.0, curve=[98.0], batch_size=16), 0.98) == (1, 3750, 2.0)  # 60000 / 16


def test_convergence_per_seed_with_a_censored_seed_at_its_run_length():
    records = [record(0, 98, curve=[97, 98]), record(1, 98, curve=[98, 98]), record(2, 97, curve=[96, 97])]
    c = convergence(records, 0.98)
    assert (c.epochs, c.seconds, c.censored, c.reached) == ([2, 1, 3], [4.0, 2.0, 4.0], [False, False, True], 2)
    assert c.steps == [2 * 1875, 1875]


def test_censoring_counts_against_the_claim_on_both_sides():
    """An MLP seed that never gets there: its epochs + 1 and its seconds (the least it could be); a CNN seed: one
    epoch more than the longest run of the comparison, and the longest training time."""
    cnn = [record(0, 98.1, curve=[97.6, 98.1], seconds=5.0), record(1, 97.9, curve=[97.8, 97.9], seconds=5.0)]
    mlp = [record(0, 98.1, curve=[97.0, 97.5, 97.8, 98.1], seconds=1.0),
           record(1, 97.9, curve=[97.0, 97.5, 97.8, 97.9], seconds=1.0)]
    fast, slow = convergence_pair(cnn, mlp, 0.98)
    assert (fast.epochs, fast.seconds, fast.censored) == ([2, 5], [10.0, 10.0], [False, True])
    assert (slow.epochs, slow.seconds, slow.censored) == ([4, 5], [4.0, 4.0], [False, True])


def test_convergence_claim_one_verdict_per_framework_over_both_thresholds():
    # 97.5% at epoch 3 every seed; 98% at epochs 6, 6, 7
    slow = [record(s, 98.3, curve=[97.0, 97.4, 97.8, 97.9, 97.9, 98.1 - 0.2 * (s == 2), 98.2, 98.3]) for s in range(3)]
    # 97.5% at epoch 1 every seed; 98% at epochs 2, 2, 3
    fast = [record(s, 98.5, curve=[97.6, 98.1 - 0.2 * (s == 2), 98.5]) for s in range(3)]
    finding = claim_convergence({"nn_numpy": slow, "cnn_numpy": fast, "nn_torch": slow, "cnn_torch": slow})
    # NumPy: -2 epochs exactly, and -4.0 with an interval below 0; PyTorch: the same runs on both sides
    assert finding.verdict == "holds for NumPy; does not hold for PyTorch (exactly 0, with no seed-to-seed variation)"
    assert "NumPy -2.0 [-2.0, -2.0] / -4.0 [-6.0, -2.0]" in finding.ours
    assert finding.figures == ["convergence.png"] and "| CNN, NumPy | 98.0% | 2, 2, 3 | 2.3 ± 0.6 |" in finding.detail
    assert "never reached" not in finding.detail
    assert claim_convergence({"nn_numpy": fast, "cnn_numpy": slow}).verdict == \
        "does not hold for NumPy (the opposite sign)"


def test_a_censored_mlp_seed_is_starred_and_counted():
    never = [record(s, 97.9, curve=[97.0, 97.6, 97.9]) for s in range(3)]
    fast = [record(s, 98.5, curve=[97.6, 98.1, 98.5]) for s in range(3)]
    finding = claim_convergence({"nn_numpy": never, "cnn_numpy": fast})
    assert "| MLP, NumPy | 98.0% | 4*, 4*, 4* |" in finding.detail and "\\* never reached" in finding.detail
    assert finding.verdict == "holds"   # 2 epochs against at least 4, exactly, every seed


# --- 3 ------------------------------------------------------------------------------------------------------------

def permuted_groups(cnn_permuted=97.5):
    groups = {"nn_numpy": group(98.0), "cnn_numpy": group(99.0), "nn_torch": group(98.0), "cnn_torch": group(99.0)}
    groups.update({"nn_numpy+permuted": group(98.0), "nn_torch+permuted": group(98.02),
                   "cnn_numpy+permuted": group(cnn_permuted), "cnn_torch+permuted": group(99.0)})
    return groups


def test_permuted_pixels_hold_where_the_cnn_loses_and_loses_more_than_the_mlp():
    finding = claim_permuted(permuted_groups())
    # PyTorch: the CNN's permuted runs equal its original ones exactly (a nil effect, noise alike)
    assert finding.verdict == "holds for NumPy; not resolved with 3 seeds (no number of seeds would settle it at " \
                              "the observed effect) for PyTorch"
    tests = claims.permutation_tests(permuted_groups())["numpy"]
    assert [t.effect.family for t in tests] == [4, 4]
    assert tests[0].diff == pytest.approx(-1.5) and tests[1].diff == pytest.approx(-1.5)   # the MLP: no change
    # the difference of differences: four groups of variance 0.01 / 3 each
    assert tests[1].effect.se == pytest.approx(np.sqrt(4 * 0.01 / 3))
    assert "| MLP, NumPy | `nn_numpy` | 98.00 ± 0.10 | 98.00 ± 0.10 | +0.00 |" in finding.detail


def test_permuted_runs_are_compared_with_the_same_procedure_on_the_original_pixels():
    """The permuted runs use the kit's earlier procedure; where its +earlier runs exist they are the baseline."""
    groups = {**permuted_groups(), "cnn_numpy+earlier": group(97.5), "nn_numpy+earlier": group(98.0)}
    tests = claims.permutation_tests(groups)["numpy"]
    assert tests[0].diff == pytest.approx(0.0)   # against cnn_numpy+earlier (97.5), not cnn_numpy (99.0)
    detail = claim_permuted(groups).detail
    assert "| CNN, NumPy | `cnn_numpy+earlier` | 97.50 ± 0.10 | 97.50 ± 0.10 | +0.00 |" in detail
    assert "trained with the kit's earlier procedure" in detail
    assert "earlier procedure" not in claim_permuted(permuted_groups()).detail


def test_permuted_pixels_missing_groups_are_named():
    groups = permuted_groups()
    del groups["cnn_torch+permuted"], groups["nn_numpy+permuted"]
    assert claim_permuted(groups).verdict == "not measured (no runs of nn_numpy+permuted, cnn_torch+permuted)"


# --- 4 and 5 ------------------------------------------------------------------------------------------------------

QUIET = (-0.05, 0.0, 0.05)   # per-seed offsets with std 0.05: enough to show equivalence within 0.2 with 3 seeds


def crossover_groups(cnn_numpy_recipe=98.2, cnn_torch_recipe=98.8, mlp=98.2, framework_shift=0.0, noise=QUIET):
    """Cells whose accuracy depends only on the recipe, plus ``framework_shift`` for PyTorch."""
    recipe = {"nn": {"numpy": mlp, "torch": mlp}, "cnn": {"numpy": cnn_numpy_recipe, "torch": cnn_torch_recipe}}
    return {name: group(recipe[arch][r] + (framework_shift if fw == "torch" else 0), noise)
            for arch, cells in CROSSOVER.items() for (fw, r), name in cells.items()}


def test_seed_average_pairs_cells_by_seed():
    a = [record(0, 98.0), record(1, 98.4), record(5, 99.0)]
    b = [record(1, 97.6), record(0, 97.0)]
    assert seed_average(a, b) == pytest.approx([97.5, 98.0])


def test_crossover_main_effect_is_welch_on_per_seed_averages():
    groups = crossover_groups()
    effects = crossover.crossover_effects(groups, "recipe")
    main = effects["cnn"]
    torch_side = seed_average(groups["cnn_numpy+adam"], groups["cnn_torch"])
    numpy_side = seed_average(groups["cnn_numpy"], groups["cnn_torch+sgd"])
    assert main.a == pytest.approx(torch_side) and main.b == pytest.approx(numpy_side)
    assert main.effect == stats.welch_interval(torch_side, numpy_side, family=2)
    assert main.diff == pytest.approx(0.6) and main.report == 0.6 and effects["nn"].report == 0.03
    assert main.label == "CNN, recipe averaged over frameworks" and effects["nn"].diff == pytest.approx(0.0)


def test_framework_claim_is_an_equivalence_test_with_the_stated_margin():
    finding = claim_framework(crossover_groups())
    assert finding.verdict == f"equivalent within ±{MARGIN_PP:g} pp"
    tost = stats.tost(crossover.crossover_effects(crossover_groups(), "framework")["nn"].effect, MARGIN_PP)
    assert f"MLP +0.00 [{tost.low:+.2f}, {tost.high:+.2f}] pp (the report's +0.03)" in finding.ours
    noisy = claim_framework(crossover_groups(noise=NOISE))  # std 0.1: 3 seeds cannot show it
    assert noisy.verdict.startswith("not shown equivalent with 3 seeds (≈")
    shifted = claim_framework(crossover_groups(framework_shift=0.6))
    assert shifted.verdict == f"not shown equivalent for MLP (the interval lies beyond ±{MARGIN_PP:g}), " \
                              f"CNN (the interval lies beyond ±{MARGIN_PP:g})"


def test_recipe_claim_reads_the_reports_effect_and_fails_where_the_framework_matters():
    recipe_only = claim_recipe(crossover_groups())
    # CNN +0.60 beside the report's +0.60; MLP 0.00 beside +0.03: neither excluded
    assert recipe_only.verdict.startswith("holds for CNN; not resolved with 3 seeds (≈")
    assert recipe_only.verdict.endswith("for MLP")
    framework_too = claim_recipe(crossover_groups(framework_shift=0.6))
    assert "does not hold for CNN (the framework matters as well: +0.60" in framework_too.verdict
    assert claim_recipe(crossover_groups(cnn_torch_recipe=98.2)).verdict.startswith(
        "does not hold for CNN (the interval excludes the report's +0.60)")


def test_crossover_detail_describes_each_cell_from_its_config():
    finding = claim_framework(crossover_groups())
    assert "`cnn_numpy+adam`" in finding.detail and "SGD lr 0.1, 1 epochs, batch 32, pytorch init" in finding.detail
    assert finding.figures == ["crossover.png"] and claim_recipe(crossover_groups()).figures == []


# --- 6 ------------------------------------------------------------------------------------------------------------

def test_gpu_is_not_measured_without_timings_and_never_estimated():
    assert claim_gpu().verdict == "not measured: no GPU here"
    assert claim_gpu({"machine": "x", "nn_torch": {"cpu": [1.0], "cuda": []}}).verdict == "not measured: no GPU here"


def test_gpu_verdict_from_timings():
    gpu = {"machine": "NVIDIA H100", "nn_torch": {"cpu": 1.3, "cuda": 1.1}, "cnn_torch": {"cpu": [9.0], "cuda": [1.5]}}
    finding = claim_gpu(gpu)
    # 1.18x from one timing is within timing noise, 6x is not
    assert finding.verdict == ("holds for cnn_torch (6.0× from one timing a device); not resolved with 1 seeds "
                               "(no number of seeds would settle it at the observed effect) for nn_torch "
                               "(1.2× from one timing a device)")
    assert "NVIDIA H100" in finding.ours and "(6.0×)" in finding.ours
    repeated = {"cnn_torch": {"cpu": [9.0, 9.2, 8.8], "cuda": [1.5, 1.6, 1.4]}}
    assert claim_gpu(repeated).verdict == "holds"


# --- 7 ------------------------------------------------------------------------------------------------------------

def overfitting_groups(cnn_numpy_gaps=(0.01, -0.01, 0.0)):
    return {"nn_numpy": group(98.0, train_acc=100.0), "nn_torch": group(98.0, train_acc=100.0),
            "cnn_numpy": [record(s, 98.2, train_acc=98.2 + g) for s, g in enumerate(cnn_numpy_gaps)],
            "cnn_torch": [record(s, 98.8 + d, train_acc=99.6 + d / 2) for s, d in enumerate(NOISE)]}


def test_overfitting_gaps_are_paired_per_seed():
    records = [record(0, 98.0, train_acc=100.0, test_loss=0.08, train_loss=0.001)]
    acc, loss = overfitting_gaps(records)
    assert acc == pytest.approx([2.0]) and loss == pytest.approx([0.079])
    tests = claims.overfitting_tests(overfitting_groups())
    gaps = overfitting_gaps(overfitting_groups()["cnn_torch"])[0]
    low, high = scipy_stats.ttest_1samp(gaps, 0.0).confidence_interval(1 - 0.05 / 4)
    assert (tests["cnn_torch"].effect.low, tests["cnn_torch"].effect.high) == (pytest.approx(low), pytest.approx(high))
    assert tests["cnn_torch"].report == 0.75 and tests["nn_numpy"].report == 2.05
    assert tests["cnn_numpy"].kind == "none" and tests["nn_torch"].kind == "direction"


def test_overfitting_claim_against_the_reports_gaps():
    assert claim_overfitting(overfitting_groups()).verdict == "holds"
    # a CNN NumPy gap of 0.5 pp, shown beyond the margin: the report's "train = test" does not hold
    wide = claim_overfitting(overfitting_groups(cnn_numpy_gaps=(0.5, 0.49, 0.51)))
    assert wide.verdict == f"holds for MLP, NumPy / MLP, PyTorch / CNN, PyTorch; does not hold for CNN, NumPy " \
                           f"(beyond ±{MARGIN_PP:g})"
    unclear = claim_overfitting(overfitting_groups(cnn_numpy_gaps=(0.1, -0.1, 0.05)))
    assert "not resolved with 3 seeds (≈" in unclear.verdict and unclear.verdict.endswith("for CNN, NumPy")

# --- 8 ------------------------------------------------------------------------------------------------------------

def confusion(cells):
    counts = np.diag(np.full(10, 1000))
    for (a, p), c in cells.items():
        counts[a, p] = c
    return counts.tolist()


def test_pairs_ranked_directed_and_unordered_with_shared_ranks():
    counts = confusion({(4, 9): 5, (9, 4): 4, (7, 1): 8, (3, 5): 2, (5, 3): 1, (2, 8): 3})
    directed = directed_pairs(counts)
    assert directed[:4] == [((7, 1), 8), ((4, 9), 5), ((9, 4), 4), ((2, 8), 3)]
    unordered = unordered_pairs(counts)
    assert unordered[:4] == [((4, 9), 9), ((1, 7), 8), ((2, 8), 3), ((3, 5), 3)]  # ties: smaller pair first
    assert rank(unordered, (3, 5)) == rank(unordered, (2, 8)) == 3
    assert rank(unordered, (0, 1)) == 5  # every zero pair ties after the four above
    assert len(unordered) == 45 and len(directed) == 90


def test_confusions_summed_over_seeds_and_checked_against_the_reports_pairs():
    seed = confusion({(4, 9): 5, (9, 4): 4, (7, 1): 8, (3, 5): 2, (6, 0): 7, (8, 2): 6, (2, 7): 3})
    groups = {"nn_numpy": [record(0, 98, confusion=seed), record(1, 98, confusion=seed)]}
    assert summed_confusion(groups["nn_numpy"])[4, 9] == 10
    finding = claim_confusions(groups)
    # unordered over 2 seeds: 4↔9 18, 1↔7 16, 0↔6 14, 2↔8 12, 2↔7 6, 3↔5 4 → 3↔5 ranks 6th, 3↔8 (0) is last
    assert "4↔9 #1" in finding.ours and "1↔7 #2" in finding.ours and "3↔5 #6" in finding.ours
    assert finding.verdict == "holds for 4↔9, 1↔7; does not hold for 3↔5, 3↔8"


# --- verdict wording and the page -------------------------------------------------------------------------------

def all_groups():
    groups = {**crossover_groups(), **permuted_groups()}
    for model, mean in (("nn_numpy", 98.1), ("nn_torch", 98.2), ("cnn_numpy", 98.2), ("cnn_torch", 98.8)):
        groups[model] = [record(s, mean + d, train_acc=100.0 if model.startswith("nn") else mean + 0.3,
                                curve=[96.5, 97.6, 98.0 + d, mean + d],
                                confusion=confusion({(4, 9): 9, (9, 4): 7, (7, 1): 6, (3, 5): 5, (3, 8): 4}))
                         for s, d in enumerate(NOISE)]
    return groups


def test_write_findings_renders_every_claim_with_its_figures(tmp_path):
    text = write_findings(tmp_path, all_groups())
    assert (tmp_path / "findings.md").read_text() == text
    table = [line for line in text.splitlines() if line.startswith("| ")]
    rows = table[1:9]
    assert [row.split(" | ")[0].lstrip("| ").split(".")[0] for row in rows] == [str(i) for i in range(1, 9)]
    assert all(len(row.split(" | ")) == 4 for row in rows)
    assert "TBD" not in text and findings.STATISTICS in text and text.index("## Statistics") > text.index("## 8.")
    verdicts = [row.split(" | ")[3].rstrip(" |") for row in rows]
    assert verdicts[5] == "not measured: no GPU here"
    assert all(v.startswith(("holds", "does not hold", "not resolved", "equivalent", "not shown"))
               for i, v in enumerate(verdicts) if i != 5)
    for claim in range(1, 9):
        assert f"\n## {claim}. " in text
    for name in ("convergence.png", "crossover.png"):
        assert (tmp_path / "findings" / name).read_bytes().startswith(b"\x89PNG")
        assert f"(findings/{name})" in text


def test_write_findings_with_only_the_main_runs_says_what_is_not_measured(tmp_path):
    groups = {m: g for m, g in all_groups().items() if m in MODELS}
    text = write_findings(tmp_path, groups)
    rows = [line for line in text.splitlines() if line.startswith("| ")][1:9]
    verdicts = {row.split(" | ")[0].lstrip("| ")[0]: row.split(" | ")[3] for row in rows}
    assert verdicts["3"].startswith("not measured (no runs of nn_numpy+permuted")
    assert verdicts["4"].startswith("not measured (no runs of nn_numpy+momentum")
    assert verdicts["5"].startswith("not measured (no runs of")
    assert not verdicts["1"].startswith("not measured") and not verdicts["8"].startswith("not measured")
    assert not (tmp_path / "findings" / "crossover.png").exists()


def test_one_seed_per_group_renders_as_untested(tmp_path):
    groups = {m: g[:1] for m, g in all_groups().items()}
    text = write_findings(tmp_path, groups)
    rows = [line for line in text.splitlines() if line.startswith("| ")][1:9]
    verdicts = [row.split(" | ")[3].rstrip(" |") for row in rows]
    assert verdicts[0] == verdicts[3] == "not measured (fewer than 2 seeds per group)"
    assert "(untested)" in rows[0] and verdicts[7] == "holds"  # counting confusions needs no seed noise


def test_findings_never_import_a_framework():
    import subprocess
    import sys

    from conftest import ROOT
    code = "import sys, reproduction.findings; print(sorted({'torch', 'tensorflow'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
