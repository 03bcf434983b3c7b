"""common/findings.py on small synthetic histories and confusion matrices: each computation by hand, then the
whole page end to end (no training)."""

import numpy as np
import pytest

from common import findings
from common.findings import (CROSSOVER, MODELS, Comparison, claim_cnn_vs_mlp, claim_confusions, claim_convergence,
                             claim_framework, claim_gpu, claim_overfitting, claim_permuted, claim_recipe,
                             convergence, directed_pairs, first_reach, overfitting_class, overfitting_gaps, rank,
                             scope_verdict, seed_average, summed_confusion, unordered_pairs, write_findings)
from common.stats import RULE, welch

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


def group(mean, **kwargs):
    """Three seeds around ``mean`` (%), spread by NOISE."""
    return [record(seed, mean + d, **kwargs) for seed, d in enumerate(NOISE)]


# --- 1 ------------------------------------------------------------------------------------------------------------

def test_cnn_vs_mlp_holds_only_where_the_difference_is_beyond_noise():
    groups = {"nn_numpy": group(98.0), "cnn_numpy": group(99.0), "nn_torch": group(98.0), "cnn_torch": group(98.05)}
    finding = claim_cnn_vs_mlp(groups)
    assert finding.verdict == "holds only for NumPy"
    # by hand: diff 1.00 pp, se = sqrt(0.01/3 + 0.01/3) = 0.0816, t = 12.2
    assert "NumPy +1.00 pp (t +12.2" in finding.ours
    assert "3 seeds" in finding.ours


def test_cnn_vs_mlp_does_not_hold_when_the_mlp_is_better():
    groups = {"nn_numpy": group(99.0), "cnn_numpy": group(98.0), "nn_torch": group(99.0), "cnn_torch": group(98.0)}
    assert claim_cnn_vs_mlp(groups).verdict == "does not hold"


# --- 2 ------------------------------------------------------------------------------------------------------------

def test_first_reach_counts_epochs_steps_and_seconds():
    r = record(0, 98.1, curve=[96.0, 97.6, 98.1], batch_size=32, limit_train=2000, seconds=1.5)
    assert first_reach(r, 0.975) == (2, 2 * 63, 3.0)  # ceil(2000 / 32) = 63 steps per epoch
    assert first_reach(r, 0.98) == (3, 3 * 63, 4.5)
    assert first_reach(r, 0.99) is None
    assert first_reach(record(0, 98.0, curve=[98.0], batch_size=16), 0.98) == (1, 3750, 2.0)  # 60000 / 16


def test_convergence_averages_only_over_the_seeds_that_reached_the_threshold():
    records = [record(0, 98, curve=[97, 98]), record(1, 98, curve=[98, 98]), record(2, 97, curve=[96, 97])]
    c = convergence(records, 0.98)
    assert (c.reached, c.seeds, c.epochs) == (2, 3, [2, 1])
    assert convergence(records, 0.99).reached == 0 and findings.convergence_cell(convergence(records, 0.99)) \
        == "never (0/3)"
    assert findings.convergence_cell(c) == "1.5 ± 0.7 (2/3)"


def test_convergence_claim_cnn_faster_in_epochs_or_by_reaching_more_often():
    slow = [record(s, 98.2, curve=[97.0, 97.4, 97.8, 98.1, 98.2 + d]) for s, d in enumerate(NOISE)]
    fast = [record(s, 98.5, curve=[97.6, 98.1 + d / 10, 98.5]) for s, d in enumerate(NOISE)]
    never = [record(s, 97.9, curve=[97.0, 97.6, 97.9]) for s in range(3)]
    verdict = claim_convergence({"nn_numpy": slow, "cnn_numpy": fast, "nn_torch": never, "cnn_torch": fast})
    assert verdict.verdict == "holds"  # NumPy: 1 vs 4 and 2 vs 4 epochs every seed; PyTorch: MLP never at 98%
    assert "never (0/3)" in verdict.ours and verdict.figures == ["convergence.png"]
    assert claim_convergence({"nn_numpy": fast, "cnn_numpy": slow}).verdict == "does not hold"


# --- 3 ------------------------------------------------------------------------------------------------------------

def permuted_groups(cnn_permuted=97.5):
    groups = {"nn_numpy": group(98.0), "cnn_numpy": group(99.0), "nn_torch": group(98.0), "cnn_torch": group(99.0)}
    groups.update({"nn_numpy+permuted": group(98.0), "nn_torch+permuted": group(98.02),
                   "cnn_numpy+permuted": group(cnn_permuted), "cnn_torch+permuted": group(99.0)})
    return groups


def test_permuted_pixels_holds_where_the_cnn_loses_accuracy_and_the_mlp_does_not():
    finding = claim_permuted(permuted_groups())
    assert finding.verdict == "holds only for NumPy"
    assert "CNN, NumPy: permuted − original -1.50 pp" in finding.ours
    assert "| CNN − MLP, NumPy, permuted pixels | 97.50 ± 0.10 | 98.00 ± 0.10 | -0.50 |" in finding.detail


def test_permuted_pixels_missing_groups_are_named():
    groups = permuted_groups()
    del groups["cnn_torch+permuted"], groups["nn_numpy+permuted"]
    assert claim_permuted(groups).verdict == "not measured (no runs of nn_numpy+permuted, cnn_torch+permuted)"


# --- 4 and 5 ------------------------------------------------------------------------------------------------------

def crossover_groups(cnn_numpy_recipe=98.2, cnn_torch_recipe=98.8, mlp=98.2, framework_shift=0.0):
    """Cells whose accuracy depends only on the recipe, plus ``framework_shift`` for PyTorch."""
    recipe = {"nn": {"numpy": mlp, "torch": mlp}, "cnn": {"numpy": cnn_numpy_recipe, "torch": cnn_torch_recipe}}
    return {name: group(recipe[arch][r] + (framework_shift if fw == "torch" else 0))
            for arch, cells in CROSSOVER.items() for (fw, r), name in cells.items()}


def test_seed_average_pairs_cells_by_seed():
    a = [record(0, 98.0), record(1, 98.4), record(5, 99.0)]
    b = [record(1, 97.6), record(0, 97.0)]
    assert seed_average(a, b) == pytest.approx([97.5, 98.0])


def test_crossover_main_effect_is_welch_on_per_seed_averages():
    groups = crossover_groups()
    effects = findings.crossover_effects(groups, "recipe")
    main = effects["cnn"][0]
    torch_side = seed_average(groups["cnn_numpy+adam"], groups["cnn_torch"])
    numpy_side = seed_average(groups["cnn_numpy"], groups["cnn_torch+sgd"])
    assert main.a == pytest.approx(torch_side) and main.b == pytest.approx(numpy_side)
    assert main.welch == welch(torch_side, numpy_side)
    assert main.diff == pytest.approx(0.6)
    assert [t.label for t in effects["cnn"]] == ["CNN, averaged over frameworks", "CNN, NumPy framework",
                                                 "CNN, PyTorch framework"]
    assert effects["nn"][0].diff == pytest.approx(0.0)


def test_framework_and_recipe_verdicts_follow_the_numbers():
    recipe_only = crossover_groups()
    assert claim_framework(recipe_only).verdict == "holds"
    assert claim_recipe(recipe_only).verdict == "holds only for CNN"  # the MLP recipes are equivalent here
    framework_too = crossover_groups(framework_shift=0.6)
    assert claim_framework(framework_too).verdict == "does not hold"
    assert claim_recipe(framework_too).verdict == "does not hold"  # the framework matters as well
    neither = crossover_groups(cnn_torch_recipe=98.2)
    assert claim_recipe(neither).verdict == "does not hold"


def test_crossover_detail_describes_each_cell_from_its_config():
    finding = claim_framework(crossover_groups())
    assert "`cnn_numpy+adam`" in finding.detail and "SGD lr 0.1, 1 epochs, batch 32, pytorch init" in finding.detail
    assert finding.figures == ["crossover.png"] and claim_recipe(crossover_groups()).figures == []


# --- 6 ------------------------------------------------------------------------------------------------------------

def test_gpu_is_not_measured_without_timings_and_never_estimated():
    assert claim_gpu().verdict == "not measured: no GPU here"
    assert claim_gpu({"machine": "x", "nn_torch": {"cpu": [1.0], "cuda": []}}).verdict == "not measured: no GPU here"


def test_gpu_verdict_from_timings():
    gpu = {"machine": "NVIDIA H100", "nn_torch": {"cpu": 1.3, "cuda": 1.1},
           "cnn_torch": {"cpu": [9.0], "cuda": [1.5]}}
    finding = claim_gpu(gpu)
    assert finding.verdict == "holds only for cnn_torch"  # 1.18x is within timing noise, 6x is not
    assert "NVIDIA H100" in finding.ours and "(6.0×)" in finding.ours
    repeated = {"cnn_torch": {"cpu": [9.0, 9.2, 8.8], "cuda": [1.5, 1.6, 1.4]}}
    assert claim_gpu(repeated).verdict == "holds"


# --- 7 ------------------------------------------------------------------------------------------------------------

def test_overfitting_gaps_and_classes():
    records = [record(0, 98.0, train_acc=100.0, test_loss=0.08, train_loss=0.001)]
    acc, loss = overfitting_gaps(records)
    assert acc == pytest.approx([2.0]) and loss == pytest.approx([0.079])
    clear = Comparison("x", [100.0, 99.9, 100.0], [98.0, 98.1, 97.9], welch([100.0, 99.9, 100.0], [98.0, 98.1, 97.9]))
    clear.p_adj = clear.welch.p
    assert overfitting_class(clear) == "clear"
    same = Comparison("x", [98.0, 98.3], [98.1, 98.2], welch([98.0, 98.3], [98.1, 98.2]), p_adj=1.0)
    assert overfitting_class(same) == "none"
    assert overfitting_class(Comparison("x", [99.0], [98.0])) is None


def test_overfitting_claim_compares_our_classes_with_the_reports():
    groups = {"nn_numpy": group(98.0, train_acc=100.0), "nn_torch": group(98.0, train_acc=100.0),
              "cnn_numpy": [record(s, 98.2 + d, train_acc=98.22 - d) for s, d in enumerate(NOISE)],
              "cnn_torch": [record(s, 98.8 + d, train_acc=99.6 + d / 2)
                                                       for s, d in enumerate(NOISE)]}
    finding = claim_overfitting(groups)
    assert finding.verdict == "holds"
    groups["cnn_numpy"] = group(98.2, train_acc=99.9)
    assert claim_overfitting(groups).verdict == "holds only for nn_numpy, nn_torch, cnn_torch"


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
    # unordered over 2 seeds: 4↔9 18, 1↔7 16, 0↔6 14, 2↔8 12, 2↔7 6, 3↔5 4 → 3↔5 ranks 6th, 3↔8 (0) last
    assert "4↔9 #1" in finding.ours and "1↔7 #2" in finding.ours and "3↔5 #6" in finding.ours
    assert finding.verdict == "holds only for 4↔9, 1↔7"


# --- verdict wording and the page -------------------------------------------------------------------------------

def test_scope_verdict_wording():
    assert scope_verdict({"a": True, "b": True}) == "holds"
    assert scope_verdict({"a": True, "b": False, "c": True}) == "holds only for a, c"
    assert scope_verdict({"a": False, "b": None}) == "does not hold"
    assert scope_verdict({"a": None}) == "not measured (fewer than 2 seeds per group)"


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
    assert "TBD" not in text and RULE in text
    verdicts = [row.split(" | ")[3].rstrip(" |") for row in rows]
    assert verdicts[5] == "not measured: no GPU here"
    assert all(v.startswith(("holds", "does not hold")) for i, v in enumerate(verdicts) if i != 5)
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
    code = "import sys, common.findings; print(sorted({'torch', 'tensorflow'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
