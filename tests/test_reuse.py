"""common/provenance.py and reproduction/reuse.py: the code digest on a small synthetic kit, the decision on synthetic records, the first-epoch
check with a fake runner (no training here)."""

import pytest

from common import provenance
from reproduction import reuse
from common.provenance import code_digest, kit_modules
from reproduction.reuse import REUSE, TRAIN, VERIFY, config_changes, decide, mark_verified, verify

SCRIPT = '''\
"""A script."""
import numpy as np

from pkg import helper
import pkg.sub


def main():
    """Lazy imports count too."""
    from pkg.lazy import late
    return helper.f() + late() + np.zeros(1)
'''


@pytest.fixture
def kit(tmp_path):
    """root/script.py importing pkg (with pkg/helper.py, pkg/sub.py, pkg/lazy.py), and pkg/unused.py."""
    files = {"script.py": SCRIPT, "pkg/__init__.py": "", "pkg/helper.py": "def f():\n    return 1\n",
             "pkg/sub.py": "from . import helper\n", "pkg/lazy.py": "import torch\n\ndef late():\n    return 2\n",
             "pkg/unused.py": "X = 1\n"}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def digest(kit):
    return code_digest(kit / "script.py", kit)


def edit(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_kit_modules_follow_imports_transitively_lazy_ones_included(kit):
    files, others = kit_modules(kit / "script.py", kit)
    assert [f.relative_to(kit).as_posix() for f in files] == ["pkg/__init__.py", "pkg/helper.py", "pkg/lazy.py",
                                                              "pkg/sub.py", "script.py"]
    assert {"numpy", "torch"} <= others and "pkg" not in others


def test_a_docstring_or_comment_change_keeps_the_digest(kit):
    before = digest(kit)
    edit(kit / "script.py", '"""A script."""', '"""A script, described at length."""\n# a comment')
    edit(kit / "script.py", '"""Lazy imports count too."""', '"""Reworded."""')
    edit(kit / "pkg/helper.py", "return 1", "return 1  # one")
    assert digest(kit) == before and before.startswith("sha256:")


def test_a_code_change_anywhere_it_imports_alters_the_digest(kit):
    before = digest(kit)
    edit(kit / "pkg/helper.py", "return 1", "return 1.0")
    changed = digest(kit)
    assert changed != before
    edit(kit / "pkg/lazy.py", "return 2", "return 3")          # reached only through a lazy import
    assert digest(kit) not in (before, changed)


def test_a_module_it_does_not_import_does_not_count(kit):
    before = digest(kit)
    edit(kit / "pkg/unused.py", "X = 1", "X = 2")
    assert digest(kit) == before


def test_the_versions_of_numpy_and_an_imported_torch_count(kit, monkeypatch):
    real = provenance.version
    before = digest(kit)
    monkeypatch.setattr(provenance, "version", lambda package: "9.9" if package == "torch" else real(package))
    assert digest(kit) != before
    edit(kit / "pkg/lazy.py", "import torch\n", "")              # torch no longer imported: its version stops counting
    without = digest(kit)
    monkeypatch.setattr(provenance, "version", lambda package: real(package))
    assert digest(kit) == without
    monkeypatch.setattr(provenance, "version", lambda package: "9.9" if package == "numpy" else real(package))
    assert digest(kit) != without                                # numpy's always does


def test_the_real_scripts_digests_cover_the_modules_they_share():
    files, others = kit_modules(provenance.ROOT / "cnn_numpy.py")
    names = {f.relative_to(provenance.ROOT).as_posix() for f in files}
    assert {"cnn_numpy.py", "nn_numpy.py", "common/run.py", "common/provenance.py"} <= names
    assert "torch" not in others and "torch" in kit_modules(provenance.ROOT / "nn_torch.py")[1]
    assert code_digest(provenance.ROOT / "nn_numpy.py") != code_digest(provenance.ROOT / "cnn_numpy.py")


# --- the decision ------------------------------------------------------------------------------------------------

WANTED = {"epochs": 20, "lr": 0.1, "batch_size": 32, "seed": 1, "limit_train": None, "dtype": "float32",
          "optimizer": "sgd", "momentum": 0.0, "init": "pytorch", "permute_pixels": None, "eval_train": "last"}
FIRST = {"epoch": 1, "test_loss": 0.16172497959221976, "test_acc": 0.9509, "train_loss_running": 0.372533258870244,
         "train_acc_running": 0.888, "seconds": 0.59, "order_digest": "16fc7c906fe49e83"}


def record(**changes):
    """A finished run of WANTED's configuration, recorded by code 'sha256:a'."""
    out = {"config": {**WANTED, "architecture": "784-128-ReLU-64-ReLU-10"}, "history": [FIRST, {"epoch": 2}],
           "final": {"test_acc": 0.98}, "code": "sha256:a"}
    out.update(changes)
    return out


def test_the_same_configuration_seed_and_code_is_reused():
    assert decide(record(), WANTED, "sha256:a") == reuse.Decision(REUSE, "same configuration, seed and code")
    # descriptive strings may be reworded; keys the script has no flag for (torch: dtype) are not compared
    reworded = record(config={**WANTED, "architecture": "another wording", "split_batches": "two halves"})
    assert decide(reworded, {k: v for k, v in WANTED.items() if k != "dtype"}, "sha256:a").action == REUSE


def test_a_changed_configuration_or_seed_is_always_trained():
    assert decide(record(), {**WANTED, "lr": 0.01}, "sha256:a") == \
        reuse.Decision(TRAIN, "its configuration differs: lr 0.1 -> 0.01")
    assert decide(record(), {**WANTED, "seed": 2}, "sha256:b").action == TRAIN   # never reaches the code check
    assert decide(record(), {**WANTED, "eval_train": "every"}, "sha256:a").action == TRAIN


def test_layers_absent_from_a_record_means_fast():
    assert config_changes(WANTED, {**WANTED, "layers": "fast"}) == []
    assert config_changes(WANTED, {**WANTED, "layers": "textbook"}) == ["layers 'fast' -> 'textbook'"]


def test_missing_or_unfinished_runs_are_trained():
    assert decide(None, WANTED, "sha256:a") == reuse.Decision(TRAIN, "no run on disk")
    assert decide(record(interrupted=True), WANTED, "sha256:a").action == TRAIN
    assert decide({}, WANTED, "sha256:a").action == TRAIN


def test_other_or_unknown_code_is_checked_by_its_first_epoch_unless_verified_before():
    assert decide(record(), WANTED, "sha256:b") == reuse.Decision(VERIFY, "the code changed since")
    old = record()
    del old["code"]
    assert decide(old, WANTED, "sha256:b") == reuse.Decision(VERIFY, "recorded before code digests")
    # an --eval-only record of a checkpoint saved before digests carries "code": null
    assert decide({**old, "code": None}, WANTED, "sha256:b") == reuse.Decision(VERIFY, "recorded before code digests")
    marked = mark_verified(old, "sha256:b")
    assert marked["code_verified"] == ["sha256:b"] and "code_verified" not in old
    assert decide(marked, WANTED, "sha256:b").action == REUSE
    assert mark_verified(marked, "sha256:b")["code_verified"] == ["sha256:b"]   # listed once


def fresh(**changes):
    """The record of a 1-epoch run: its only epoch also evaluated the whole training set (--eval-train last)."""
    return {"history": [{**FIRST, "seconds": 0.7, "train_loss": 0.12, "train_acc": 0.96, **changes}]}


def test_a_first_epoch_identical_bit_for_bit_is_reused():
    calls = []
    decision = verify(record(), lambda: calls.append(1) or fresh(), "sha256:b")
    assert decision == reuse.Decision(REUSE, "its first epoch matched bit for bit") and calls == [1]


@pytest.mark.parametrize("field, value", [("test_loss", 0.16172497959221979), ("test_acc", 0.951),
                                          ("train_loss_running", 0.3725332588702441),
                                          ("order_digest", "0000000000000000")])
def test_any_difference_in_the_first_epoch_retrains(field, value):
    decision = verify(record(), lambda: fresh(**{field: value}), "sha256:b")
    assert decision == reuse.Decision(TRAIN, f"its first epoch differs under this code ({field})")


def test_a_first_epoch_check_that_fails_to_run_retrains():
    assert verify(record(), lambda: None, "sha256:b").action == TRAIN
    no_digest = record(history=[{k: v for k, v in FIRST.items() if k != "order_digest"}])
    assert verify(no_digest, fresh, "sha256:b").action == TRAIN   # nothing to compare the shuffle with


def test_eval_only_over_the_same_run_keeps_its_code_verified(tmp_path, mnist_dir):
    """Re-evaluating the committed seed-0 checkpoint rewrote its metrics.json without code_verified, so the next
    reproduce.py checked that run's first epoch again; the record of the same training run now keeps it."""
    import json
    import shutil

    from conftest import ROOT, run_script

    folder = tmp_path / "figures" / "nn_numpy"
    folder.mkdir(parents=True)
    committed = json.loads((ROOT / "figures" / "nn_numpy" / "metrics.json").read_text())
    assert committed.get("code_verified")
    shutil.copy(ROOT / "figures" / "nn_numpy" / "metrics.json", folder / "metrics.json")
    result = run_script("nn_numpy.py", "--eval-only", "--checkpoint", ROOT / "reference" / "nn_numpy.npz",
                        "--out-dir", tmp_path / "figures", "--no-figures", env={"MNIST_DIR": str(mnist_dir)})
    assert result.returncode == 0, result.stderr
    again = json.loads((folder / "metrics.json").read_text())
    assert again["config"]["eval_only"] is True
    assert again["code_verified"] == committed["code_verified"]
    assert again["history"] == committed["history"]


def test_with_a_machine_a_run_is_trusted_unchecked_only_where_it_was_trained_or_checked():
    """Issue 27: make reproduce on a fresh clone reused runs that "matched this code before" -- on another CPU."""
    here = provenance.machine_id()
    assert here == provenance.machine_id() and len(here) == 12
    trained_here = record(machine=here)
    assert decide(trained_here, WANTED, "sha256:a", here).action == REUSE
    elsewhere = decide(record(machine="0123456789ab"), WANTED, "sha256:a", here)
    assert elsewhere.action == VERIFY and "another machine" in elsewhere.why
    assert decide(record(), WANTED, "sha256:a", here).action == VERIFY   # no machine recorded
    # a digest verified elsewhere does not count here; one verified here does
    assert decide(mark_verified(record(), "sha256:b"), WANTED, "sha256:b", here).action == VERIFY
    assert decide(mark_verified(record(), f"sha256:b@{here}"), WANTED, "sha256:b", here).action == REUSE


def test_shuffle_absent_from_a_record_means_every_epoch():
    assert config_changes(WANTED, {**WANTED, "shuffle": "epoch"}) == []
    assert config_changes(WANTED, {**WANTED, "shuffle": "once"}) == ["shuffle 'epoch' -> 'once'"]
