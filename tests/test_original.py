"""common/original_pickle.py and reproduction/original.py: the original's pickles read safely, its names mapped to our layers by
type, its training logs parsed, its six files fetched and checked, and its weights giving the report's numbers."""

import gzip
import hashlib
import json
import os
import pickle

import numpy as np
import pytest

import cnn_numpy
from common import harness_numpy
import nn_numpy
from reproduction import original
from common.data import load_mnist
from common.errors import DataError, UserError
from common.original_pickle import FILES, load_checkpoint, load_pickle, to_state_dict
from reproduction.original import parse_training_metrics
from conftest import ROOT, Server, run_script

SHARED = ROOT.parent / "shared" / "original"
SHAPES = {"nn": {"layer1_W": (784, 128), "layer1_b": (1, 128), "layer2_W": (128, 64), "layer2_b": (1, 64),
                 "layer3_W": (64, 10), "layer3_b": (1, 10)},
          "cnn": {"conv1_W": (16, 1, 3, 3), "conv1_b": (16,), "conv2_W": (32, 16, 3, 3), "conv2_b": (32,),
                  "linear_W": (1568, 10), "linear_b": (1, 10)}}


@pytest.fixture
def shared():
    if not SHARED.is_dir():
        pytest.skip(f"the original's files are needed: {SHARED} (../shared/original from the repository root) "
                    f"is absent")
    return SHARED


def fake_arrays(kind, epochs=3):
    """Arrays under the original's names and shapes, float64 like its pickles, each a different value."""
    rng = np.random.default_rng(1)
    arrays = {name: rng.standard_normal(shape) for name, shape in SHAPES[kind].items()}
    arrays["train_losses"] = [np.float64(1 / e) for e in range(1, epochs + 1)]
    arrays["test_losses"] = [np.float64(2 / e) for e in range(1, epochs + 1)]
    return arrays


def write_pickle(path, obj):
    path.write_bytes(pickle.dumps(obj, protocol=4))
    return path


class CreatesFile:
    """Unpickled by a plain pickle.load, this would create the file at ``path``."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


# --- the restricted unpickler ---------------------------------------------------------------------------------

def test_arrays_and_loss_lists_come_back_exactly(tmp_path):
    arrays = fake_arrays("nn")
    loaded = load_pickle(write_pickle(tmp_path / "model.pkl", arrays))
    assert set(loaded) == set(arrays)
    for name, value in arrays.items():
        np.testing.assert_array_equal(loaded[name], np.asarray(value, dtype=np.float64))
        assert loaded[name].dtype == np.float64


def test_a_pickle_whose_payload_would_create_a_file_is_refused_and_creates_none(tmp_path):
    target = tmp_path / "pwned"
    pickle.loads(pickle.dumps(CreatesFile(target)))  # the payload works when plainly unpickled ...
    assert target.exists()
    target.unlink()
    path = write_pickle(tmp_path / "evil.pkl", {"layer1_W": CreatesFile(target)})
    with pytest.raises(UserError, match=r"refusing to load .*evil.pkl: it contains (posix|os|nt)\.system, "
                                        r"not only arrays"):
        load_pickle(path)  # ... and not here
    assert not target.exists()


@pytest.mark.parametrize("obj, pattern", [
    ({"layer1_W": np.array([{"a": 1}, None], dtype=object)}, r"refusing to load .*: it contains an array of "
                                                             r"Python objects"),
    ([np.zeros(3)], r"holds a list, not a dict of named arrays"),
    ({"layer1_W": "text"}, r"layer1_W is a str, not an array of numbers"),
    ({"layer1_W": np.array(["a", "b"])}, r"layer1_W is an array of <U1, not an array of numbers"),
    ({1: np.zeros(3)}, r"has an entry named 1, not by a string"),
], ids=["object-dtype", "list", "string", "string-array", "int-key"])
def test_anything_but_a_dict_of_number_arrays_is_refused(tmp_path, obj, pattern):
    with pytest.raises(UserError, match=pattern):
        load_pickle(write_pickle(tmp_path / "x.pkl", obj))


def test_a_truncated_or_foreign_file_is_one_clear_error(tmp_path):
    data = pickle.dumps(fake_arrays("nn"), protocol=4)
    (tmp_path / "cut.pkl").write_bytes(data[:len(data) // 2])
    (tmp_path / "text.pkl").write_text("not a pickle\n")
    for name in ("cut.pkl", "text.pkl"):
        with pytest.raises(UserError, match=r"is not a readable checkpoint in the original's format") as e:
            load_pickle(tmp_path / name)
        assert "\n" not in str(e.value)


# --- names -> layers ------------------------------------------------------------------------------------------

def test_mlp_names_map_to_the_three_linears_and_biases_lose_their_leading_1():
    arrays = fake_arrays("nn")
    model = nn_numpy.mlp(np.random.default_rng(0), np.float64)
    state = to_state_dict(arrays, model, "x.pkl")
    assert sorted(state) == ["1.W", "1.b", "3.W", "3.b", "5.W", "5.b"]
    np.testing.assert_array_equal(state["3.W"], arrays["layer2_W"])
    np.testing.assert_array_equal(state["5.b"], arrays["layer3_b"][0])
    model.load_state_dict(state)
    np.testing.assert_array_equal(model.layers[1].b, arrays["layer1_b"][0])


def test_cnn_names_map_by_layer_type_whatever_the_order_of_relu_and_pooling():
    arrays = fake_arrays("cnn")
    model = cnn_numpy.cnn(np.random.default_rng(0), np.float64)
    swapped = nn_numpy.Sequential(*[model.layers[i] for i in (0, 2, 1, 3, 5, 4, 6, 7)])  # pool before ReLU
    for net in (model, swapped):
        state = to_state_dict(arrays, net, "x.pkl")
        net.load_state_dict(state)
        convs = [layer for layer in net.layers if isinstance(layer, cnn_numpy.Conv2d)]
        np.testing.assert_array_equal(convs[1].W, arrays["conv2_W"])
        np.testing.assert_array_equal(net.layers[-1].b, arrays["linear_b"][0])


@pytest.mark.parametrize("kind, model, owner, this", [
    ("cnn", lambda: nn_numpy.mlp(np.random.default_rng(0)), "cnn_numpy", "nn_numpy"),
    ("nn", lambda: cnn_numpy.cnn(np.random.default_rng(0)), "nn_numpy", "cnn_numpy"),
], ids=["cnn-into-mlp", "mlp-into-cnn"])
def test_the_other_models_checkpoint_is_named_as_such_with_the_command_that_reads_it(kind, model, owner, this):
    with pytest.raises(UserError, match=rf"^x.pkl is an original-format .pkl checkpoint of {owner} .*, not of "
                                        rf"{this} — use: python {owner}.py --eval-only --checkpoint x.pkl$"):
        to_state_dict(fake_arrays(kind), model(), "x.pkl")


def test_wrong_shapes_name_the_originals_and_the_kits_parameter():
    arrays = fake_arrays("nn")
    arrays["layer2_W"] = arrays["layer2_W"][:, :32]
    with pytest.raises(UserError, match=r"layer2_W \(3.W\) has shape \(128, 32\), this model needs \(128, 64\)"):
        to_state_dict(arrays, nn_numpy.mlp(np.random.default_rng(0)), "x.pkl")


def test_missing_and_unknown_entries_are_refused():
    """A missing entry is named as the original names it (issue 22: it said '5.b' and "the other model?")."""
    arrays = fake_arrays("nn")
    del arrays["layer3_b"]
    with pytest.raises(UserError, match=r"^x.pkl lacks layer3_b \(5.b\): this model's checkpoint in the original's "
                                        r"format holds layer1_W, layer1_b, layer2_W, layer2_b, layer3_W, layer3_b; "
                                        r"the file is incomplete$"):
        to_state_dict(arrays, nn_numpy.mlp(np.random.default_rng(0)), "x.pkl")
    cnn = fake_arrays("cnn")
    del cnn["linear_b"], cnn["conv2_W"]
    with pytest.raises(UserError, match=r"lacks conv2_W \(3.W\), linear_b \(7.b\)|lacks linear_b .*, conv2_W"):
        to_state_dict(cnn, cnn_numpy.cnn(np.random.default_rng(0)), "x.pkl")
    with pytest.raises(UserError, match=r"unexpected entry 'optimizer_state'"):
        to_state_dict({**fake_arrays("nn"), "optimizer_state": np.zeros(2)}, nn_numpy.mlp(np.random.default_rng(0)),
                      "x.pkl")


def test_the_pickled_losses_become_the_loss_history(tmp_path):
    path = write_pickle(tmp_path / "m.pkl", fake_arrays("nn", epochs=4))
    state, record, iteration_losses = load_checkpoint(path, nn_numpy.mlp(np.random.default_rng(0)), {"lr": 0.1})
    assert [h["epoch"] for h in record["history"]] == [1, 2, 3, 4]
    assert record["history"][1] == {"epoch": 2, "train_loss_running": 0.5, "test_loss": 1.0}
    assert record["config"]["checkpoint"] == str(path)
    assert iteration_losses == []


def test_the_record_holds_what_the_file_holds_and_marks_the_training_settings_unknown(tmp_path):
    """Issue 22: the graded .pkl's record said epochs 20, lr 0.1, seed 0 — the script's defaults, not the file's."""
    path = write_pickle(tmp_path / "m.pkl", fake_arrays("nn", epochs=4))
    script_config = {"epochs": 20, "lr": 0.1, "seed": 0, "init": "pytorch", "optimizer": "sgd", "momentum": 0.0,
                     "batch_size": 32, "limit_train": None, "dtype": "float32",
                     "architecture": "784-128-ReLU-64-ReLU-10"}
    _, record, _ = load_checkpoint(path, nn_numpy.mlp(np.random.default_rng(0)), script_config)
    config = record["config"]
    for key in ("epochs", "lr", "seed", "init", "optimizer", "momentum", "batch_size"):
        assert config[key] is None, key
    assert "unknown" in config and "limit_train" not in config and "dtype" not in config
    assert config["checkpoint"] == str(path)
    assert config["checkpoint_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert config["architecture"] == "784-128-ReLU-64-ReLU-10"
    assert config["arrays"]["layer1_W"] == [784, 128] and config["arrays"]["train_losses"] == [4]


@pytest.mark.parametrize("name", ["layer2_b", "layer1_W"])
def test_non_finite_weights_are_refused_naming_the_array(tmp_path, name):
    arrays = fake_arrays("nn")
    arrays[name] = arrays[name].copy()
    arrays[name].flat[3] = np.inf if name == "layer1_W" else np.nan
    kit = {"layer2_b": "3.b", "layer1_W": "1.W"}[name]
    with pytest.raises(UserError, match=rf"^x.pkl: {name} \({kit}\) holds 1 non-finite value\(s\)"):
        to_state_dict(arrays, nn_numpy.mlp(np.random.default_rng(0)), "x.pkl")


def test_the_loss_graph_labels_the_originals_train_loss_as_the_epochs_running_mean(tmp_path, monkeypatch):
    from common import plots

    path = write_pickle(tmp_path / "m.pkl", fake_arrays("nn", epochs=4))
    _, record, _ = load_checkpoint(path, nn_numpy.mlp(np.random.default_rng(0)), {})
    labels = []
    monkeypatch.setattr(plots, "save", lambda fig, path: labels.extend(
        t.get_text() for t in fig.axes[0].get_legend().get_texts()))
    plots.plot_loss(tmp_path / "loss.png", "original", record["history"], [])
    assert labels == ["train (mean over the epoch's batches)", "test"]


# --- training_metrics.txt ----------------------------------------------------------------------------------------

LOG = """============================================================
3-Layer CNN (PyTorch) - Training Metrics
============================================================

Model Architecture:
  Conv Layer 1: 1 -> 16 channels, 3x3 kernel, padding=1

Training Configuration:
  Epochs: 3
  Learning Rate: 0.001
  Batch Size: 32
  Optimizer: Adam

Final Results:
  Train Accuracy: 0.9952 (99.52%)
  Test Accuracy: 0.9877 (98.77%)
  Final Train Loss: 0.0127
  Final Test Loss: 0.0463

Loss History (per epoch):
------------------------------------------------------------
Epoch      Train Loss      Test Loss      
------------------------------------------------------------
1          0.1724          0.0643         
2          0.0614          0.0481         
3          0.0127          0.0463         
"""


def test_a_training_log_is_parsed_into_its_numbers(tmp_path):
    (tmp_path / "log.txt").write_text(LOG)
    log = parse_training_metrics(tmp_path / "log.txt")
    assert log.title == "3-Layer CNN (PyTorch) - Training Metrics"
    assert log.config == {"Epochs": "3", "Learning Rate": "0.001", "Batch Size": "32", "Optimizer": "Adam"}
    assert (log.train_acc, log.test_acc, log.train_loss, log.test_loss) == (0.9952, 0.9877, 0.0127, 0.0463)
    assert log.epochs == [1, 2, 3] and log.train_losses == [0.1724, 0.0614, 0.0127]
    assert log.test_losses == [0.0643, 0.0481, 0.0463]


@pytest.mark.parametrize("edit, pattern", [
    (lambda t: t.replace("  Test Accuracy: 0.9877 (98.77%)\n", ""), r"no 'Test Accuracy:' line"),
    (lambda t: t.replace("0.0127\n", "oops\n"), r"Final Train Loss is 'oops', not a number"),
    (lambda t: t.replace("2          0.0614", "5          0.0614"), r"epochs are \[1, 5, 3\], not 1 to 3"),
    (lambda t: t.replace("Epochs: 3", "Epochs: 4"), r"Epochs says 4 but the loss table has 3 rows"),
    (lambda t: t.split("Loss History")[0], r"no per-epoch loss table"),
    (lambda t: "", r"no 'Train Accuracy:' line; it is not a training_metrics.txt"),
], ids=["missing-final", "bad-number", "epoch-numbers", "epoch-count", "no-table", "empty"])
def test_a_malformed_training_log_is_one_clear_error(tmp_path, edit, pattern):
    (tmp_path / "log.txt").write_text(edit(LOG))
    with pytest.raises(UserError, match=pattern) as e:
        parse_training_metrics(tmp_path / "log.txt")
    assert "\n" not in str(e.value)


def test_a_binary_or_missing_log_is_one_clear_error(tmp_path):
    (tmp_path / "log.txt").write_bytes(gzip.compress(b"x" * 100))
    with pytest.raises(UserError, match="is not a text file"):
        parse_training_metrics(tmp_path / "log.txt")
    with pytest.raises(UserError, match="no file at"):
        parse_training_metrics(tmp_path / "gone.txt")


def test_the_four_real_logs_parse(shared):
    logs = {name: parse_training_metrics(shared / name) for name in FILES if name.endswith(".txt")}
    assert logs["nn_pure_python-training_metrics.txt"].test_acc == 0.9794
    assert logs["cnn_pure_python-training_metrics.txt"].epochs == [1, 2, 3, 4, 5]
    assert logs["nn_framework-training_metrics.txt"].config["Optimizer"] == "SGD (momentum=0.9)"
    assert logs["cnn_framework-training_metrics.txt"].train_acc == 0.9952


# --- the original's weights give the report's numbers -------------------------------------------------------------

@pytest.mark.parametrize("script, file, correct", [(nn_numpy, "nn_pure_python-model.pkl", 9794),
                                                   (cnn_numpy, "cnn_pure_python-model.pkl", 9817)],
                         ids=["mlp-97.94", "cnn-98.17"])
def test_the_original_weights_give_exactly_the_reports_test_accuracy(shared, mnist_dir, script, file, correct):
    images, labels = load_mnist("test", mnist_dir)
    model = nn_numpy.mlp(np.random.default_rng(0)) if script is nn_numpy else cnn_numpy.cnn(np.random.default_rng(0))
    state, _, _ = load_checkpoint(shared / file, model, {})
    model.load_state_dict(state)
    x = images.reshape(len(images), 1, 28, 28) if script is cnn_numpy else images  # float32, the kit's default
    assert np.count_nonzero(harness_numpy.predict(model, x).argmax(axis=1) == labels) == correct


def test_the_reports_mlp_test_loss_is_minus_log_p_plus_1e7_over_batches_of_32(shared, mnist_dir):
    """Why the report's MLP test loss (0.0899) is not the exact cross-entropy of its weights (0.0912)."""
    images, labels = load_mnist("test", mnist_dir)
    arrays = load_pickle(shared / "nn_pure_python-model.pkl")
    model = nn_numpy.mlp(np.random.default_rng(0), np.float64)
    model.load_state_dict(to_state_dict(arrays, model, "nn"))
    logits = harness_numpy.predict(model, images.astype(np.float64))
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p = (p / p.sum(axis=1, keepdims=True))[np.arange(len(labels)), labels]
    batch_means = [-np.log(p[i:i + 32] + 1e-7).mean() for i in range(0, len(p), 32)]
    assert np.mean(batch_means) == pytest.approx(arrays["test_losses"][-1], abs=1e-8)
    assert -np.log(p).mean() == pytest.approx(0.0912, abs=1e-4)


# --- the six files: fetched, checked, nothing half-written ------------------------------------------------------

@pytest.fixture
def one_file(monkeypatch, tmp_path):
    """original.fetch for a single file "x-model.pkl" (served as model.pkl), and a local server for it."""
    body = pickle.dumps(fake_arrays("nn", 1), protocol=4)
    monkeypatch.setattr(original, "FILES", {"x-model.pkl": ("x/model.pkl", hashlib.sha256(body).hexdigest())})
    server = Server({"model.pkl": body})
    monkeypatch.setenv("ORIGINAL_MIRROR", server.url)
    monkeypatch.delenv("MNIST_TIMEOUT", raising=False)
    yield server, body, tmp_path / "original"
    server.close()


def test_a_missing_file_is_downloaded_and_checked(one_file):
    server, body, folder = one_file
    paths = original.fetch(folder)
    assert paths["x-model.pkl"].read_bytes() == body and server.requests == ["model.pkl"]
    original.fetch(folder)
    assert server.requests == ["model.pkl"]  # present and matching: not fetched again


@pytest.mark.parametrize("behaviour, pattern", [
    ("sha256", r"checksum mismatch \(sha256 [0-9a-f]{64}, expected"),
    ("404", r"could not download http://127.0.0.1:\d+/mnist/x/model.pkl: HTTP 404 .*set ORIGINAL_MIRROR .*put the "
            r"six files"),
    ("drop", r"could not download|broke off"),
])
def test_a_failed_download_leaves_nothing(one_file, behaviour, pattern):
    server, body, folder = one_file
    if behaviour == "sha256":
        server.files["model.pkl"] = body[:100] + bytes([body[100] ^ 1]) + body[101:]
    else:
        server.behaviour["model.pkl"] = behaviour
    with pytest.raises(DataError, match=pattern):
        original.fetch(folder)
    assert list(folder.iterdir()) == []


def test_a_local_copy_that_is_not_the_original_is_refused(one_file):
    _, body, folder = one_file
    folder.mkdir()
    (folder / "x-model.pkl").write_bytes(body + b"\0")
    with pytest.raises(DataError, match=r"x-model.pkl: checksum mismatch .*delete it and run again"):
        original.fetch(folder)


def test_offline_says_where_to_put_the_six_files(tmp_path):
    result = run_script(ROOT / "reproduce.py", "--original", tmp_path / "orig", cwd=tmp_path,
                        env={"ORIGINAL_MIRROR": "http://127.0.0.1:9/", "MNIST_TIMEOUT": "5"})
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "offline, put the six files (cnn_pure_python-model.pkl, " in lines[0] and str(tmp_path / "orig") in lines[0]
    assert not any((tmp_path / "orig").iterdir())


def test_reproduce_original_end_to_end_from_a_folder_mirror(shared, mnist_dir, tmp_path):
    """Download all six from a folder laid out as the repository's checkpoints/, grade, write every output."""
    mirror = tmp_path / "checkpoints"
    for name, (repo_path, _) in FILES.items():
        (mirror / repo_path).parent.mkdir(parents=True, exist_ok=True)
        (mirror / repo_path).write_bytes((shared / name).read_bytes())
    out = tmp_path / "figures"
    (out / "nn_numpy").mkdir(parents=True)  # one kit run on disk; the others are reported as absent
    (out / "nn_numpy" / "metrics.json").write_text(json.dumps({
        "final": {"train_acc": 1.0, "test_acc": 0.9816, "train_loss": 0.0006, "test_loss": 0.0778},
        "history": [{"epoch": 1, "train_loss": 0.1, "train_loss_running": 0.3, "test_loss": 0.12}]}))
    result = run_script(ROOT / "reproduce.py", "--original", tmp_path / "orig", "--out-dir", out,
                        env={"ORIGINAL_MIRROR": str(mirror), "MNIST_DIR": str(mnist_dir)})
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "orig").iterdir()) == sorted(FILES)
    text = (out / "original.md").read_text()
    assert "MLP, NumPy 97.94% (exactly the report's); CNN, NumPy 98.17% (exactly the report's)" in text
    assert "| MLP, NumPy | this kit, 1 seed(s) | 100.00 | 98.16 | 0.0006 | 0.0778 |" in text
    report_row = ("| CNN, PyTorch | the report (its `cnn_framework/training_metrics.txt`) | 99.52 | 98.77 | 0.0127 | "
                  "0.0463 |")
    assert report_row in text
    # the command that rewrites the page names no folder of this machine (the six files are sha256-checked)
    assert f"Written by `python reproduce.py --original --out-dir {out}` from the six files" in text
    assert str(tmp_path / "orig") not in text
    for model in ("nn_numpy", "cnn_numpy"):
        record = json.loads((out / "original" / model / "metrics.json").read_text(), parse_constant=refuse)
        assert record["config"]["checkpoint_format"] == "the original report's pickle"
        assert record["config"]["epochs"] is None and record["config"]["evaluated_with"]["limit_train"] is None
        assert record["config"]["checkpoint_sha256"] == FILES[f"{original.RUNS[model]}-model.pkl"][1]
        assert len(record["history"]) == {"nn_numpy": 20, "cnn_numpy": 5}[model]
        assert {p.name for p in (out / "original" / model).iterdir()} >= {"loss.png", "confusion_matrix.png",
                                                                          "top3.png", "mistakes.png"}
    assert (out / "original" / "loss_overlay.png").stat().st_size > 10_000


def refuse(token):
    raise ValueError(f"not strict JSON: {token}")


def test_the_command_on_the_page_names_no_machine_folder():
    """figures/original.md once said `--original /work/shared/original`: a folder of one machine."""
    assert original.command_line("figures") == "python reproduce.py --original"
    text = (ROOT / "figures" / "original.md").read_text()
    assert "Written by `python reproduce.py --original` from the six files" in text


def test_grading_the_original_never_imports_torch():
    code = "import sys, reproduction.original, common.original_pickle; print('torch' in sys.modules)"
    out = run_script("-c", code)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr
