"""reproduce.py: the quick run end to end, the results table round trip, a failing model reported."""

import argparse
import json
import re
import shutil

import pytest

from common import models
from reproduction import experiments, main as reproduction_main, report, results
from reproduction import runs as reproduction_runs
from common.provenance import machine_id
from conftest import ROOT, run_script


def fake_record(model, test_acc, seconds=10.0, seed=0):
    final = {"train_loss": 0.01, "train_acc": 0.999, "test_loss": 0.07, "test_acc": test_acc}
    return {"model": model, "config": {"epochs": 5, "seed": seed}, "final": final, "seconds_total": seconds,
            "history": [{"epoch": 1, "test_loss": 0.1}, {"epoch": 2, "test_loss": 0.07}]}


def test_results_table_round_trips():
    records = {"nn_numpy": [fake_record("nn_numpy", 0.9810), fake_record("nn_numpy", 0.9820)],
               "cnn_torch": [fake_record("cnn_torch", 0.9880), fake_record("cnn_torch", 0.9890)]}
    rows = results.summary_rows(records)
    text = "# Results\n\nsome words\n\n" + results.results_table(rows) + "\nmore words | not a table\n"
    assert rows[0]["Report Train Acc (%)"] == "99.99" and rows[0]["Report Test Loss"] == "0.0899"
    assert results.parse_results_table(text) == rows
    assert rows[0]["Test Acc (%)"] == "98.15 ± 0.07"
    assert rows[0]["Δ Test Acc (pp)"] == "+0.21"   # 98.15 - 97.94
    assert rows[1]["Report Test Acc (%)"] == "98.77"


def test_seed_noise_verdicts_use_welch_p_values_with_holms_correction():
    records = {"cnn_numpy": [fake_record("cnn_numpy", a) for a in (0.985, 0.986, 0.987)],
               "nn_numpy": [fake_record("nn_numpy", a) for a in (0.979, 0.980, 0.981)],
               "nn_torch": [fake_record("nn_torch", a) for a in (0.975, 0.985, 0.980)]}
    text = results.noise_section(records)
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in text.splitlines()
            if line.startswith("| ") and "comparison" not in line}
    # 3 comparisons have both sides; the CNN-NumPy vs MLP-NumPy one: t = 7.35 on 4 df, p = 0.0018, x3 (Holm)
    cnn_vs_mlp = rows["CNN vs MLP, NumPy"]
    assert cnn_vs_mlp[1] == "+0.60" and cnn_vs_mlp[3] == "+7.3" and cnn_vs_mlp[4] == "4.0"
    assert float(cnn_vs_mlp[6]) == pytest.approx(3 * float(cnn_vs_mlp[5]), abs=1.5e-3)
    assert cnn_vs_mlp[7].startswith("beyond seed noise")
    assert rows["PyTorch vs NumPy, MLP"][1] == "+0.00" and "not distinguishable" in rows["PyTorch vs NumPy, MLP"][7]
    assert "Holm" in text and "Satterthwaite" in text


def test_results_merge_the_records_left_by_earlier_runs(tmp_path):
    """`--models X` redoes X's row and keeps the others' from disk, saying where each row comes from."""
    for model, seed, acc in [("nn_numpy", 0, 0.98), ("cnn_torch", 0, 0.988), ("cnn_torch", 1, 0.989)]:
        folder = reproduction_runs.run_dir(tmp_path, model, seed)
        folder.mkdir(parents=True)
        record = fake_record(model, acc)
        record["config"]["seed"], record["finished_at"] = seed, "2026-11-01T10:00:00+00:00"
        (folder / "metrics.json").write_text(json.dumps(record))
    records, sources = results.load_records(tmp_path, [("nn_numpy", 0)], ["nn_numpy"])
    assert list(records) == ["nn_numpy", "cnn_torch"] and len(records["cnn_torch"]) == 2
    rows = results.summary_rows(records, sources)
    assert rows[0]["run"] == "this run, seed 0"
    assert rows[1]["run"] == "earlier run (2026-11-01 10:00 UTC), seeds 0, 1"


def test_report_numbers_are_those_of_the_original_logs():
    """REPORT holds the "Final Results" of the report's four training logs (skipped where they are absent)."""
    from common.original_pickle import RUNS
    from reproduction.original import parse_training_metrics

    folder = reproduction_runs.ROOT.parent / "shared" / "original"
    if not folder.is_dir():
        pytest.skip(f"the original's logs are not at {folder}")
    for model, run in RUNS.items():
        log = parse_training_metrics(folder / f"{run}-training_metrics.txt")
        found = {"train_acc": round(100 * log.train_acc, 2), "test_acc": round(100 * log.test_acc, 2),
                 "train_loss": log.train_loss, "test_loss": log.test_loss}
        assert found == report.REPORT[model], model


def test_no_noise_section_with_one_seed():
    assert results.noise_section({"nn_numpy": [fake_record("nn_numpy", 0.98)]}) == ""


@pytest.fixture(scope="module")
def quick(tmp_path_factory, mnist_dir):
    out = tmp_path_factory.mktemp("quick")
    result = run_script("reproduce.py", "--quick", "--out-dir", out, timeout=900)
    return out, result


def test_quick_run_writes_every_file_consistently(quick):
    out, result = quick
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    rows = results.parse_results_table((out / "results.md").read_text())
    assert [r["Model"].split()[0] for r in rows] == list(models.MODELS)
    for row in rows:
        model = row["Model"].split()[0]
        folder = out / model
        record = json.loads((folder / "metrics.json").read_text())
        assert row["Test Acc (%)"] == f"{100 * record['final']['test_acc']:.2f}"
        assert row["Train Loss"] == f"{record['final']['train_loss']:.4f}"
        assert row["epochs"] == str(record["config"]["epochs"]) and record["config"]["limit_train"] == 2000
        for name in ("loss.png", "confusion_matrix.png", "top3.png", "mistakes.png", "train.log"):
            assert (folder / name).stat().st_size > 0, (model, name)
        assert "exit code 0" in (folder / "train.log").read_text()
    assert (out / "comparison.png").stat().st_size > 10000
    assert (out / "checkpoints" / "cnn_numpy.npz").exists()
    assert "[cnn_torch seed 0] epoch  1/1" in result.stdout and "total" in result.stdout
    # the wall time against the training loops' (issue: evaluation, start-up and figures <= 30%)
    loops = sum(h["seconds"] for m in models.MODELS
                for h in json.loads((out / m / "metrics.json").read_text())["history"])
    took = re.search(r"this run took [\d.]+ min \((\d+) s\), of which (\d+) s in the scripts' training loops "
                     r"\(([\d.]+)x;", (out / "results.md").read_text())
    assert took and int(took[2]) == round(loops)
    assert float(took[3]) == pytest.approx(int(took[1]) / loops, abs=0.5 / loops + 0.01)


def test_quick_run_then_eval_only_redraws_from_checkpoints(quick):
    out, _ = quick
    (out / "comparison.png").unlink()
    result = run_script("reproduce.py", "--quick", "--eval-only", "--models", "nn_numpy,cnn_numpy",
                        "--out-dir", out)
    assert result.returncode == 0, result.stderr
    assert (out / "comparison.png").exists()
    rows = {r["Model"].split()[0]: r["run"] for r in results.parse_results_table((out / "results.md").read_text())}
    assert list(rows) == list(models.MODELS)   # the two redone rows, and the two kept from the earlier run
    assert rows["nn_numpy"] == rows["cnn_numpy"] == "re-evaluated now, seed 0"
    assert (out / "nn_numpy" / "eval.log").is_file() and "exit code 0" in (out / "nn_numpy" / "train.log").read_text()
    assert rows["nn_torch"].startswith("earlier run (") and rows["cnn_torch"].startswith("earlier run (")


def test_a_failing_model_is_reported_and_the_others_still_finish(quick, tmp_path):
    out, _ = quick
    # nn_torch has no checkpoint in this fresh checkpoint folder, so its --eval-only run fails.
    (tmp_path / "checkpoints").mkdir()
    for name in ("nn_numpy.npz", "cnn_numpy.npz"):
        (tmp_path / "checkpoints" / name).write_bytes((out / "checkpoints" / name).read_bytes())
    result = run_script("reproduce.py", "--quick", "--eval-only", "--models", "nn_numpy,nn_torch,cnn_numpy",
                        "--out-dir", tmp_path / "figs", "--checkpoint-dir", tmp_path / "checkpoints")
    assert result.returncode == 1
    # issue 22: the line said "pass --checkpoint", a flag of the scripts, not of reproduce.py
    assert re.search(r"reproduce.py: nn_torch seed 0: no checkpoint at .*nn_torch.pt and no recorded run at .*; "
                     r"train it first \(reproduce.py without --eval-only\) or pass --checkpoint-dir; going on",
                     result.stderr), result.stderr
    assert "--checkpoint " not in result.stderr and "--checkpoint;" not in result.stderr
    text = (tmp_path / "figs" / "results.md").read_text()
    assert [r["Model"].split()[0] for r in results.parse_results_table(text)] == ["nn_numpy", "cnn_numpy"]
    assert "## Failed runs" in text and "no checkpoint at" in text and "--checkpoint-dir" in text


def test_quick_help_says_what_the_quick_run_runs():
    """Issue 22: --help said "1 epoch on 2,000 training images" while the MLPs ran 3 epochs at batch 8."""
    text = " ".join(run_script("reproduce.py", "--help").stdout.split()).replace("- ", "-")
    assert "nn_numpy and nn_torch 3 epochs, batch 8; cnn_numpy 1 epoch, batch 8, lr 0.05; cnn_torch 1 epoch, " \
           "batch 8" in text
    assert "on the first 2,000 training images" in text and "into runs/quick/" in text
    # derived from QUICK_FLAGS: each model's epochs and batch size are said beside its name
    for model, flags in experiments.QUICK_FLAGS.items():
        settings = dict(zip(flags[::2], flags[1::2]))
        phrase = next(p for p in experiments.quick_description().split(": ", 1)[1].split("; ") if model in p)
        assert f"{settings['--epochs']} epoch" in phrase and f"batch {settings['--batch-size']}" in phrase


def snapshot(folder, name):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob(name))}


def noise_section(text):
    return text.split("\n## Beyond seed noise?", 1)[1].split("\n## Failed runs", 1)[0]


def test_eval_only_in_a_fresh_clone_keeps_every_seeds_row_its_statistics_and_the_training_logs(tmp_path, mnist_dir):
    """Issue 22: `reproduce.py --eval-only` right after a clone turned results.md's 3-seed rows into seed-0
    numbers, dropped its "Beyond seed noise?" section and replaced the 20-epoch train.log files by eval logs."""
    figures = tmp_path / "figures"
    shutil.copytree(ROOT / "figures", figures)
    before_text = (figures / "results.md").read_text()
    before_rows = {r["Model"]: r for r in results.parse_results_table(before_text)}
    logs = snapshot(figures, "train.log")
    assert len(logs) >= 4 and "## Beyond seed noise?" in before_text
    result = run_script(ROOT / "reproduce.py", "--eval-only", "--out-dir", figures, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    text = (figures / "results.md").read_text()
    rows = {r["Model"]: r for r in results.parse_results_table(text)}
    assert list(rows) == list(before_rows)
    for model, row in rows.items():
        seeds = before_rows[model]["run"].split(", ", 1)[1] if ", seed" in before_rows[model]["run"] else None
        assert row["run"].startswith("re-evaluated now (seed 0) + earlier run (") and row["run"].endswith(seeds)
        for column in results.COLUMNS:
            if column not in ("run", "seconds"):
                assert row[column] == before_rows[model][column], (model, column)
    assert noise_section(text) == noise_section(before_text)
    assert snapshot(figures, "train.log") == logs
    # which command trained the runs, and their peak memory, survive beside this evaluation's
    trained = results.earlier_results(ROOT / "figures")
    assert trained["trained"].startswith("`python reproduce.py --seeds")
    assert text.startswith("# Results\n\nRe-evaluated by `python reproduce.py --eval-only")
    command = trained["trained"].split(";")[0]  # "`python reproduce.py --seeds 10` on x86_64 with ..."
    assert f"; the runs were trained by {command}" in text and "trained by: " not in text
    assert trained["peaks"] and trained["peaks"] in text and "Peak memory per evaluation" in text
    for model in models.MODELS:
        name = models.checkpoint_name(model)
        assert f"[{model} seed 0] evaluating {ROOT / 'reference' / name} (no checkpoints/{name}: the committed " \
               f"reference checkpoint)" in result.stdout
        assert f"[{model} seed 1] no checkpoint at checkpoints/seed1/{name}; keeping the recorded run" in result.stdout
        assert "exit code 0" in (figures / model / "eval.log").read_text()
    assert (figures / "comparison.png").stat().st_size > 10_000


def test_the_comparison_is_drawn_from_every_seeds_record(tmp_path, monkeypatch):
    from common import plots

    records = {m: [fake_record(m, 0.98 + i / 1000, seed=i) for i in range(3)] for m in models.MODELS}
    labels = []
    monkeypatch.setattr(plots, "save", lambda fig, path: labels.extend(
        t.get_text() for t in fig.axes[1].get_legend().get_texts()))
    results.plot_comparison(tmp_path / "c.png", records)
    assert "ours (mean ± std, 3 seed(s))" in labels


def test_unknown_model_is_a_usage_error():
    result = run_script("reproduce.py", "--models", "nn_numpy,resnet")
    assert result.returncode == 2 and "unknown model(s) resnet" in result.stderr


def test_a_failed_run_never_replaces_the_log_of_a_finished_one(tmp_path):
    log = tmp_path / "figs" / "nn_numpy" / "train.log"
    log.parent.mkdir(parents=True)
    log.write_text("epoch 20/20 ... a good run\n")
    env = {"MNIST_DIR": None, "MNIST_MIRROR": "http://127.0.0.1:9/mnist/", "MNIST_TIMEOUT": "5"}
    result = run_script("reproduce.py", "--models", "nn_numpy", "--out-dir", tmp_path / "figs",
                        "--checkpoint-dir", tmp_path / "ck", "--data-dir", tmp_path / "nodata", env=env)
    assert result.returncode == 1
    assert log.read_text() == "epoch 20/20 ... a good run\n"
    assert "could not download" in (log.parent / "train.failed.log").read_text()
    assert "nothing was written" in result.stdout and "results in" not in result.stdout


def test_findings_train_the_extra_configurations_and_write_the_page(quick):
    """`--findings` runs each crossover/permutation configuration with its own flags, beside the main runs."""
    out, _ = quick
    result = run_script("reproduce.py", "--quick", "--findings", "--seeds", "1", "--models", "nn_numpy,nn_torch",
                        "--out-dir", out, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    expected = {"nn_numpy+momentum": ("sgd", 0.01, 0.9, None), "nn_torch+sgd": ("sgd", 0.1, 0.0, None),
                "nn_numpy+permuted": ("sgd", 0.1, 0.0, 0), "nn_torch+permuted": ("sgd", 0.01, 0.9, 0)}
    for group, (optimizer, lr, momentum, permutation) in expected.items():
        folder = reproduction_runs.findings_run_dir(out, group, 0) / group.split("+")[0]
        config = json.loads((folder / "metrics.json").read_text())["config"]
        assert (config["optimizer"], config["lr"], config["momentum"], config["permute_pixels"]) == \
            (optimizer, lr, momentum, permutation), group
        assert not list(folder.glob("*.png"))
    assert not (reproduction_runs.findings_run_dir(out, "cnn_numpy+adam", 0)).exists()
    text = (out / "findings.md").read_text()
    assert text.count("\n## ") >= 9 and "TBD" not in text
    assert "| 6. Frameworks benefit from GPU acceleration |" in text


# --- reusing the runs on disk (reproduction/reuse.py decides; reproduction/runs.py's RunsOnDisk checks) ----

FIRST = {"epoch": 1, "test_loss": 0.1617, "test_acc": 0.9509, "train_loss_running": 0.3725, "order_digest": "16fc"}


def runs_on_disk(tmp_path, fresh_first_epoch, config=None):
    """A RunsOnDisk over tmp_path whose script config, code digest and first-epoch runs are stand-ins."""
    args = argparse.Namespace(out_dir=tmp_path, quick=False, data_dir=None)
    runs = reproduction_runs.RunsOnDisk(args)
    runs.wanted = lambda model, group, seed: {"epochs": 5, "lr": 0.1, "seed": seed, **(config or {})}
    runs.digest = lambda model: "sha256:now"
    runs.checked = []
    runs.first_epoch = lambda model, seed, group: lambda: runs.checked.append((model, seed, group)) or \
        {"history": [{**FIRST, **fresh_first_epoch}]}
    return runs


def write_run(path, **changes):
    record = {"config": {"epochs": 5, "lr": 0.1, "seed": 1, "architecture": "x"}, "history": [FIRST, {"epoch": 2}],
              "final": {"test_acc": 0.98}, **changes}
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(record))
    return record


def test_a_run_recorded_before_code_digests_is_reused_once_its_first_epoch_matches(tmp_path, capsys):
    runs = runs_on_disk(tmp_path, {"train_loss": 0.12, "seconds": 9.0})   # fields a 1-epoch run adds or differs in
    path = reproduction_runs.run_dir(tmp_path, "nn_numpy", 1) / "metrics.json"
    write_run(path)
    record, why = runs.check("nn_numpy", 1)
    assert record is not None and why == "its first epoch matched bit for bit"
    assert runs.checked == [("nn_numpy", 1, None)] and json.loads(path.read_text())["code_verified"] == \
        [f"sha256:now@{machine_id()}"]                           # this code, on this machine
    printed = capsys.readouterr().out
    assert "[nn_numpy seed 1] verified by its first epoch on this machine: reused (recorded before code " \
        "digests" in printed
    record, why = runs.check("nn_numpy", 1)                      # the next call trusts it without a check
    assert why == "same configuration and seed; its first epoch matched this code on this machine before" \
        and len(runs.checked) == 1
    assert "nn_numpy 1 in " in runs.summary()


def test_a_run_whose_first_epoch_differs_or_whose_configuration_changed_is_trained_again(tmp_path):
    path = reproduction_runs.findings_run_dir(tmp_path, "nn_numpy+momentum", 0) / "nn_numpy" / "metrics.json"
    write_run(path, code="sha256:before", config={"epochs": 5, "lr": 0.1, "seed": 0})
    record, why = runs_on_disk(tmp_path, {"test_loss": 0.1618}).check("nn_numpy", 0, "nn_numpy+momentum")
    assert record is None and why == "the code changed since, and its first epoch differs under this code (test_loss)"
    assert "code_verified" not in json.loads(path.read_text())
    record, why = runs_on_disk(tmp_path, {}, {"lr": 0.01}).check("nn_numpy", 0, "nn_numpy+momentum")
    assert record is None and why == "its configuration differs: lr 0.1 -> 0.01"
    assert runs_on_disk(tmp_path, {}).check("nn_numpy", 3) == (None, "no run on disk")


def test_run_flags_and_the_findings_plan(tmp_path):
    args = argparse.Namespace(quick=True, out_dir=tmp_path, seeds=2)
    assert reproduction_runs.run_flags("cnn_numpy", args) == experiments.QUICK_FLAGS["cnn_numpy"]
    assert reproduction_runs.run_flags("nn_numpy", args, "nn_numpy+momentum") == \
        ["--lr", "0.01", "--momentum", "0.9", "--init", "pytorch", *experiments.QUICK_BASE]
    assert reproduction_runs.run_flags("nn_numpy", args, "nn_numpy+earlier") == \
        ["--shuffle", "epoch", "--init", "pytorch", "--dtype", "float32", *experiments.QUICK_BASE]
    write_run(reproduction_runs.findings_run_dir(tmp_path, "cnn_torch+sgd", 4) / "cnn_torch" / "metrics.json")
    plan = reproduction_main.findings_plan(args, ["nn_numpy"])
    groups = [g for g, (model, _) in experiments.FINDINGS_RUNS.items() if model == "nn_numpy"]  # the table's order
    assert set(groups) == {"nn_numpy+momentum", "nn_numpy+epoch", "nn_numpy+pytorch-init",
                           "nn_numpy+epoch+pytorch-init", "nn_numpy+earlier", "nn_numpy+permuted"}
    assert plan == [*((g, 0, True) for g in groups), *((g, 1, True) for g in groups),
                    ("cnn_torch+sgd", 4, False)]   # on disk: checked, not trained


def test_training_seconds_count_only_the_runs_trained_now():
    records = {"nn_numpy": [fake_record("nn_numpy", 0.98, seed=0), fake_record("nn_numpy", 0.98, seed=1)]}
    for r in records["nn_numpy"]:
        r["history"] = [{"epoch": 1, "seconds": 2.0}, {"epoch": 2, "seconds": 3.0}]
    assert results.training_seconds(records, [("nn_numpy", 1)]) == 5.0


def test_without_reuse_every_run_is_trained_again(quick, tmp_path, monkeypatch, capsys):
    """Issue 27: `make reproduce` on a fresh clone trained nothing, every run "reused"; training is the default."""
    out = tmp_path / "quick"
    shutil.copytree(quick[0], out)
    calls = []
    monkeypatch.setattr(reproduction_main, "train_one", lambda model, seed, args, group=None: calls.append((model, seed))
                        or (0, "", None))
    assert reproduction_main.main(["--quick", "--models", "nn_numpy", "--out-dir", str(out)]) == 0
    assert calls == [("nn_numpy", 0)]
    assert "[nn_numpy seed 0] training: reproduce.py trains every run (--reuse reuses runs on disk)" in \
        capsys.readouterr().out


def test_a_second_quick_run_trains_nothing_and_rewrites_the_same_numbers(quick):
    """Runs last: it rewrites results.md without training."""
    out, _ = quick
    before = results.parse_results_table((out / "results.md").read_text())
    result = run_script("reproduce.py", "--quick", "--reuse", "--out-dir", out, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    for model in models.MODELS:
        assert f"[{model} seed 0] reused: same configuration, seed, code and machine" in result.stdout
    assert "epoch  1/1" not in result.stdout and "0 run(s) finished, 4 reused from disk" in result.stdout
    text = (out / "results.md").read_text()
    after = results.parse_results_table(text)
    # which run trained them stays named
    assert text.startswith("# Results\n\nRewritten, every run reused from disk, by `python reproduce.py --quick")
    assert f"; the runs were trained by `python reproduce.py --quick --out-dir {out}` on " in text
    numbers = ["Train Acc (%)", "Test Acc (%)", "Train Loss", "Test Loss"]
    assert [[row[c] for c in numbers] for row in after] == [[row[c] for c in numbers] for row in before]


def test_a_run_with_fewer_seeds_keeps_the_other_seeds_that_still_stand(tmp_path, mnist_dir):
    """`make reproduce` (one seed) on a clone of the 10-seed reproduction trained nothing and rewrote results.md
    from seed 0 alone: the other seeds on disk, from the same configuration and code, stay in the table."""
    figures = tmp_path / "figures"
    shutil.copytree(ROOT / "figures", figures, ignore=shutil.ignore_patterns("findings", "original*", "*.png"))
    from common.provenance import code_digest, machine_id
    for model in models.MODELS:  # as if trained by this code here, whatever code the committed runs came from
        for path in [figures / model / "metrics.json", *figures.glob(f"seeds/seed*/{model}/metrics.json")]:
            record = json.loads(path.read_text())
            path.write_text(json.dumps({**record, "code": code_digest(ROOT / f"{model}.py"), "machine": machine_id()}))
    before = {r["Model"]: r for r in results.parse_results_table((figures / "results.md").read_text())}
    result = run_script(ROOT / "reproduce.py", "--reuse", "--out-dir", figures, "--checkpoint-dir", tmp_path / "ck",
                        cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert "0 run(s) finished" in result.stdout and "training:" not in result.stdout
    after = {r["Model"]: r for r in results.parse_results_table((figures / "results.md").read_text())}
    for model, row in after.items():
        assert row["Test Acc (%)"] == before[model]["Test Acc (%)"]
        assert row["run"].endswith(before[model]["run"].split(", seeds ", 1)[1])
