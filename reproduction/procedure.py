"""Does the kit land where the report did, and what in the training procedure moves it there: pure functions over
run records (metrics.json), and the two sections they write.

    python reproduce.py --seeds 10               # results.md ends with report_against_seeds(records)
    python reproduce.py --findings --seeds 5     # findings.md gains ablation_section(groups)

    from reproduction.procedure import report_against_seeds, ablation_section
    text = report_against_seeds({"nn_numpy": [record, ...], ...})      # markdown
    text = ablation_section(groups)                                     # markdown ("" without the groups)

The report is one run per model with no seed set, so the question for each of its numbers is whether it could be
one more seed of ours: the 95% prediction interval for one more seed, mean ± t(0.975, n−1)·s·√(1 + 1/n), and the
z-score (report − mean) / s. The ablation trains the same script with one part of the procedure changed at a time
(the data order, the initialisation, the arithmetic) and gives each change's effect with a 95% Welch interval.
"""

from common.models import MODELS, TITLES
from reproduction.experiments import ABLATION, CELLS
from reproduction.report import REPORT
from reproduction.stats import mean_std, prediction_interval, welch_interval
from reproduction.verdicts import table as markdown_table


def test_numbers(records, key):
    """Per-seed final test accuracy (%, key "test_acc") or test loss (nats, key "test_loss")."""
    scale = 100 if key == "test_acc" else 1
    return [scale * r["final"][key] for r in records]


def against(report, values, digits):
    """[ours mean ± std (n), 95% prediction interval, inside?, z] of the report's ``report`` among ``values``."""
    mean, std = mean_std(values)
    interval = prediction_interval(values)
    if interval is None:
        return [f"{mean:.{digits}f} (1 seed)", "—", "—", "—"]
    low, high = interval
    z = (report - mean) / std if std > 0 else float("nan")
    inside = "inside" if low <= report <= high else "**outside**"
    return [f"{mean:.{digits}f} ± {std:.{digits}f} ({len(values)})", f"[{low:.{digits}f}, {high:.{digits}f}]",
            inside, f"{z:+.1f}"]


def report_against_seeds(records):
    """The section of results.md: each model's report test accuracy and loss against the seeds' prediction
    interval for one more seed, and its z-score. ``records``: model -> its seeds' records."""
    rows = []
    for model in (m for m in MODELS if records.get(m)):
        for key, label, digits in (("test_acc", "test accuracy (%)", 2), ("test_loss", "test loss", 4)):
            rows.append([f"{model} ({TITLES[model]})", label, f"{REPORT[model][key]:.{digits}f}",
                         *against(REPORT[model][key], test_numbers(records[model], key), digits)])
    if not rows:
        return ""
    header = ["model", "number", "the report", "ours: mean ± std (seeds)", "95% prediction interval, one more seed",
              "the report", "z"]
    return ("\n## The report against our seeds\n\nCould the report's run be one more seed of ours? Each of its "
            "numbers against the 95% prediction interval for one more seed, mean ± t(0.975, n−1)·s·√(1 + 1/n), "
            "and its z-score (report − mean) / s. The report is a single run with no seed set, so a number "
            "outside the interval says that something other than the seed differed from ours: its procedure, or "
            "how it measured the number (its NumPy MLP's test loss is −log(p + 1e-7) averaged over batches; "
            "[original.md](original.md) measures its own weights as we measure ours); the per-epoch test "
            "losses of its training logs over the band of ours are in "
            "[original/loss_overlay.png](original/loss_overlay.png) (`python reproduce.py --original`).\n\n"
            + markdown_table(header, rows))


# --- the ablation: which part of the procedure moves the numbers ---------------------------------------------

def effect_cell(a, b, digits):
    """'+0.24 [+0.15, +0.33]' (mean(a) − mean(b), 95% Welch interval), with 'excludes 0' in bold."""
    effect = welch_interval(a, b)
    if effect is None:
        return "— (fewer than 2 seeds)"
    text = f"{effect.diff:+.{digits}f} [{effect.low:+.{digits}f}, {effect.high:+.{digits}f}]"
    return f"**{text}**" if effect.low > 0 or effect.high < 0 else text


def ablation_section(groups, seconds=None):
    """The findings' section "Why an earlier default beat the report": the cells (each group's test accuracy and
    loss, the report's test accuracy inside its prediction interval or not), then each change's effect on test
    accuracy and loss with its 95% Welch interval. ``seconds``: the training seconds of the ablation's runs."""
    present = [g for g in CELLS if groups.get(g)]
    rows = [r for r in ABLATION if groups.get(r[2]) and groups.get(r[3])]
    if not rows:
        return ""
    cells = []
    for group in present:
        model = group.split("+")[0]
        accuracy, loss = test_numbers(groups[group], "test_acc"), test_numbers(groups[group], "test_loss")
        interval = prediction_interval(accuracy)
        inside = "—" if interval is None else ("inside" if interval[0] <= REPORT[model]["test_acc"] <= interval[1]
                                               else "**outside**")
        mean_acc, std_acc = mean_std(accuracy)
        mean_loss, std_loss = mean_std(loss)
        cells.append([f"`{group}`", *CELLS[group], len(accuracy), f"{mean_acc:.2f} ± {std_acc:.2f}",
                      f"{mean_loss:.4f} ± {std_loss:.4f}", f"{REPORT[model]['test_acc']:.2f}: {inside}"])
    effects = [[model, label, f"`{a}` − `{b}`",
                effect_cell(test_numbers(groups[a], "test_acc"), test_numbers(groups[b], "test_acc"), 2),
                effect_cell(test_numbers(groups[a], "test_loss"), test_numbers(groups[b], "test_loss"), 4)]
               for model, label, a, b in rows]
    took = f" The ablation's runs trained for {seconds / 60:.1f} minutes in all." if seconds else ""
    return ("## Why an earlier default beat the report\n\n"
            "Until it followed the original's procedure, the kit drew a new data order every epoch, and its NumPy "
            "MLP started from PyTorch's initialisation in float32; the original kept one order for every epoch "
            "(its data loader shuffled once) and drew its MLP's weights from N(0, 0.1²) in float64. One "
            "departure remains, measured here too: the kit's NumPy CNN computes in float32 by default (twice as "
            "fast), while the original's most likely computed in float64 (its saved weights are float64 arrays; "
            "`--dtype float64` follows it). Each row "
            "below changes one of these and nothing else, on the same seeds where both groups have them. "
            "Effects are the change's group minus the other, with 95% Welch intervals (each on its own, not "
            "family-wise); **bold** intervals exclude 0." + took + "\n\n"
            + markdown_table(["group", "data order", "initialisation", "arithmetic", "seeds", "test acc (%)",
                              "test loss", "the report's test acc vs this group's 95% prediction interval"], cells)
            + "\n" + markdown_table(["model", "change", "groups", "Δ test acc (pp) [95%]", "Δ test loss [95%]"],
                                    effects))

