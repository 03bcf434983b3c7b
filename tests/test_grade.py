"""grade.py and grading/: a generated class folder with every container, naming and layout students use, and
each bad case, graded in one command; the pieces (reading, identifying, the worker pool, the gradebook) alone."""

import csv
import os
import pickle
import time

import numpy as np
import pytest

from common import original_pickle, safe_pickle
from common.errors import UserError
from conftest import ROOT, run_script
from grading import csvfile, gradebook
from grading.grader import Data, grade_file
from grading.identify import cnn_layouts, identify
from grading.loaders import FileVerdict, read_model_file
from grading.workers import WorkerPool

SHARED = ROOT.parent / "shared" / "original"
MLP_SHAPES = [(784, 128), (128,), (128, 64), (64,), (64, 10), (10,)]


class CreatesFile:
    """Unpickled by a plain pickle.load, this would create the file at ``path``."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def mlp_params(seed=0, dtype=np.float64):
    """Random MLP parameters in the kit's layout: W (in, out), b (n,)."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(dtype) * 0.05 for shape in MLP_SHAPES]


def named(params, names, transpose=False, bias_row=False):
    out = {}
    for name, value in zip(names, params):
        if value.ndim == 2 and transpose:
            value = value.T.copy()
        if value.ndim == 1 and bias_row:
            value = value[None]
        out[name] = value
    return out


ORIGINAL_NAMES = ["layer1_W", "layer1_b", "layer2_W", "layer2_b", "layer3_W", "layer3_b"]
TORCH_NAMES = ["1.weight", "1.bias", "3.weight", "3.bias", "5.weight", "5.bias"]


def original_arrays(kind):
    if not SHARED.is_dir():
        pytest.skip(f"the original's files are needed: {SHARED} is absent")
    return original_pickle.load_pickle(SHARED / f"{kind}_pure_python-model.pkl")


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def torch_bytes(obj):
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def torch_state(params, dtype="float32"):
    import torch

    return {name: torch.from_numpy(np.ascontiguousarray(value.T if value.ndim == 2 else value).astype(dtype))
            for name, value in zip(TORCH_NAMES, params)}


# --- reading: every pickle protocol, every container, nothing run ----------------------------------------------

@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_every_pickle_protocol_of_plain_arrays_is_read_and_extras_become_notes(tmp_path, protocol):
    params = mlp_params()
    obj = {**named(params, ORIGINAL_NAMES, bias_row=True), "epochs": 20, "train_accs": [0.9, 0.95],
           "train_losses": [0.3, 0.1], "test_losses": [0.2, 0.1]}
    path = write(tmp_path / "m.pkl", pickle.dumps(obj, protocol=protocol))
    contents = read_model_file(path)
    assert [name for name, _ in contents.entries] == ORIGINAL_NAMES
    np.testing.assert_array_equal(contents.entries[0][1], params[0])
    assert contents.notes["epochs"] == "20" and contents.notes["train_accs"] == "2 numbers"
    assert contents.notes["train_losses"] == "2 numbers"
    # the --eval-only path (common/original_pickle.py) admits it too, keeping the extras as notes
    notes = {}
    arrays = original_pickle.load_pickle(path, notes)
    assert set(arrays) == {*ORIGINAL_NAMES, "train_losses", "test_losses"}
    assert notes == {"epochs": 20, "train_accs": [0.9, 0.95]}


def test_the_eval_only_loader_names_a_torch_file_given_as_pkl_in_one_line(tmp_path):
    path = write(tmp_path / "model.pkl", torch_bytes(torch_state(mlp_params())))
    with pytest.raises(UserError, match=r"is a PyTorch file \(torch.save\), not a pickle of arrays") as e:
        original_pickle.load_pickle(path)
    assert "\n" not in str(e.value)


def test_a_pickle_that_would_run_code_is_refused_and_nothing_runs(tmp_path):
    target = tmp_path / "pwned"
    path = write(tmp_path / "evil.pkl", pickle.dumps({"W1": CreatesFile(target)}))
    with pytest.raises(FileVerdict, match=r"it contains (posix|os|nt)\.system, not only arrays.*nothing in it was "
                                          r"run") as e:
        read_model_file(path)
    assert e.value.status == "refused" and not target.exists()


@pytest.mark.parametrize("make, status, pattern", [
    (lambda: pickle.dumps(mlp_params())[:5000], "unreadable", r"truncated or damaged"),
    (lambda: b"hello, grader\n" * 10, "unreadable", r"truncated or damaged"),
    (lambda: pickle.dumps({"x": np.array([{"a": 1}], dtype=object)}), "refused", r"array of Python objects"),
], ids=["truncated", "text", "object-array"])
def test_bad_pickles_get_one_line_verdicts(tmp_path, make, status, pattern):
    with pytest.raises(FileVerdict, match=pattern) as e:
        read_model_file(write(tmp_path / "m.pkl", make()))
    assert e.value.status == status and "\n" not in str(e.value)


def nested_pickle(kind, depth):
    """A protocol-2 pickle, written opcode by opcode (the pickler itself would recurse): ``depth`` dicts each
    inside the one before ({"a": {"a": ...}}), lists ([[[...]]]), or a dict keyed by a tuple that deep."""
    if kind == "dicts":
        return b"\x80\x02" + (b"}" + b"X\x01\x00\x00\x00a") * (depth - 1) + b"}" + b"s" * (depth - 1) + b"."
    if kind == "lists":
        return b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b"."
    return b"\x80\x02}" + b")" + b"\x85" * (depth - 1) + b"K\x01s."  # {((((),),),): 1}: hashing it recurses in C


def nested_torch_file(depth):
    """A torch.save zip whose data.pkl is the tuple-keyed dict of :func:`nested_pickle`."""
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("archive/data.pkl", nested_pickle("tuple key", depth))
        archive.writestr("archive/byteorder", b"little")
        archive.writestr("archive/version", b"3\n")
    return out.getvalue()


@pytest.mark.parametrize("kind", ["dicts", "lists"])
def test_a_pickle_nested_100000_deep_is_refused_in_one_line(tmp_path, kind):
    data = nested_pickle(kind, 100_000)
    obj, depth = pickle.loads(data), 0
    while obj:  # the pickle is what it says: 100,000 containers, each inside the one before
        obj, depth = next(iter(obj.values())) if kind == "dicts" else obj[0], depth + 1
    assert depth == 100_000 - 1
    with pytest.raises(FileVerdict, match=rf"nested deeper than {safe_pickle.MAX_NESTING} levels") as e:
        read_model_file(write(tmp_path / "deep.pkl", data))
    assert e.value.status == "refused" and "\n" not in str(e.value)


def test_the_note_check_and_note_values_stop_at_the_nesting_limit():
    deep = {}
    for _ in range(100_000):
        deep = {"a": deep}
    assert not safe_pickle.is_note(deep)  # not a RecursionError: no note is that deep
    shallow = {"a": {"b": {"c": 1}}}
    assert safe_pickle.is_note(shallow) and safe_pickle.note_value(shallow) == shallow
    looped = []
    looped.append(looped)
    for value in (deep, looped):
        with pytest.raises(safe_pickle.TooDeep):
            safe_pickle.check_nesting(value)
    value = safe_pickle.note_value(deep)
    for _ in range(safe_pickle.MAX_NESTING):
        value = value["a"]
    assert value == "..."


def test_a_whole_pickled_module_is_refused_with_how_to_save_a_state_dict(tmp_path):
    import nn_torch

    path = write(tmp_path / "model.pt", torch_bytes(nn_torch.mlp()))
    with pytest.raises(FileVerdict, match=r"a whole pickled model \(torch.nn.modules.container.Sequential\).*"
                                          r"torch.save\(model.state_dict\(\), 'model.pt'\)"):
        read_model_file(path)


def test_containers_nested_lists_npy_of_a_dict_and_training_checkpoints_are_found(tmp_path):
    import torch

    import nn_torch

    params = mlp_params()
    model = nn_torch.mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.zeros(2, 784)).sum().backward()
    optimizer.step()  # the optimizer's state now holds a momentum buffer of every weight's shape
    cases = {
        "nested.pkl": pickle.dumps({"params": named(params, ["W1", "b1", "W2", "b2", "W3", "b3"]),
                                    "config": {"lr": 0.1}}),
        "list.pkl": pickle.dumps([p.T if p.ndim == 2 else p for p in params]),
        "checkpoint.pth": torch_bytes({"model_state_dict": torch_state(params), "epoch": 5,
                                       "optimizer_state_dict": optimizer.state_dict()}),
    }
    for name, data in cases.items():
        found = identify(read_model_file(write(tmp_path / name, data)).entries)
        for got, want in zip(found.layouts[0].params, params):
            np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=name)
    np.save(tmp_path / "dict.npy", named(params, ORIGINAL_NAMES))  # np.save of a dict: an array of objects
    contents = read_model_file(tmp_path / "dict.npy")
    assert "pickled objects" in contents.format
    np.testing.assert_array_equal(identify(contents.entries).layouts[0].params[2], params[2])


# --- identifying ----------------------------------------------------------------------------------------------------

def test_weights_in_either_orientation_and_biases_as_rows_come_back_in_the_kits_layout():
    params = mlp_params()
    for entries in (named(params, TORCH_NAMES, transpose=True), named(params, ORIGINAL_NAMES, bias_row=True)):
        found = identify(list(entries.items()))
        assert found.architecture == "mlp" and not found.guesses
        for got, want in zip(found.layouts[0].params, params):
            np.testing.assert_array_equal(got, want)
    assert identify(list(named(params, TORCH_NAMES, transpose=True).items())).notes == [
        "stored as fc1 weight (out, in), fc2 weight (out, in), fc3 weight (out, in)"]


def test_an_optimizer_buffer_of_a_weights_shape_is_not_taken_for_it():
    params = mlp_params()
    entries = [("momentum_W1", params[0] * 0 + 1), *named(params, ["W1", "b1", "W2", "b2", "W3", "b3"]).items()]
    found = identify(entries)
    np.testing.assert_array_equal(found.layouts[0].params[0], params[0])
    assert found.guesses and "took W1" in found.guesses[0]


def test_the_cnns_channels_last_reading_inverts_a_channels_last_flatten():
    rng = np.random.default_rng(0)
    params = [rng.standard_normal(s) for s in [(16, 1, 3, 3), (16,), (32, 16, 3, 3), (32,), (1568, 10), (10,)]]
    hwc = params[4].reshape(32, 7, 7, 10).transpose(1, 2, 0, 3).reshape(1568, 10)  # rows (h, w, c)
    hwio = [params[0].transpose(2, 3, 1, 0), params[1], params[2].transpose(2, 3, 1, 0), params[3], hwc, params[5]]
    layouts = identify([(f"a{i}", v) for i, v in enumerate(hwio)]).layouts
    assert [lay.label for lay in layouts][2] == "flatten channels-last"
    for got, want in zip(layouts[2].params, params):
        np.testing.assert_array_equal(got, want)
    assert len(cnn_layouts(params)) == 4


@pytest.mark.parametrize("entries, status, pattern", [
    ([("W1", np.zeros((784, 256))), ("W2", np.zeros((256, 10)))], "refused",
     r"wrong architecture: its weight shapes are \(784, 256\), \(256, 10\); closest is the MLP"),
    ([("train_losses", np.zeros(20))], "no model", r"holds no network's weights \(train_losses \(20,\)\)"),
    ([], "no model", r"holds no network's weights \(no arrays\)"),
])
def test_arrays_of_neither_network_are_named(entries, status, pattern):
    with pytest.raises(FileVerdict, match=pattern) as e:
        identify(entries)
    assert e.value.status == status


def test_non_finite_weights_are_refused_naming_the_array():
    entries = named(mlp_params(), ORIGINAL_NAMES)
    entries["layer2_W"][3, 4] = np.nan
    with pytest.raises(FileVerdict, match=r"layer2_W \(the fc2 weight\) holds 1 non-finite value"):
        identify(list(entries.items()))


def test_a_file_is_graded_on_the_data_it_is_given_and_a_cnn_layout_is_chosen_on_training_images(tmp_path):
    """Without MNIST: a CNN stored channels-last is read right where its training images are told apart."""
    rng = np.random.default_rng(0)
    images = rng.random((60, 28, 28)).astype(np.float32)
    params = [rng.standard_normal(s) * 0.3 for s in [(16, 1, 3, 3), (16,), (32, 16, 3, 3), (32,), (1568, 10), (10,)]]
    from grading.evaluate import numpy_network

    labels = numpy_network("cnn", params, np.float64)(images).argmax(axis=1)  # labels the network gets right
    data = Data(images, labels, images, labels)
    hwc = params[4].reshape(32, 7, 7, 10).transpose(1, 2, 0, 3).reshape(1568, 10)
    path = write(tmp_path / "cnn.pkl", pickle.dumps({"k1": params[0], "c1": params[1], "k2": params[2],
                                                     "c2": params[3], "fc": hwc, "fcb": params[5]}))
    result = grade_file({"path": str(path), "purpose": "grade"}, data)
    assert result["status"] == "flagged" and result["model"] == "cnn_numpy" and result["test_acc"] == 100.0
    assert "layout chosen on 60 training images: flatten channels-last (100.0%" in "; ".join(result["notes"])
    # grade.py draws no per-file plots: no file's note says there is nothing to plot (only --eval-only does)
    assert not any("plot" in note for note in result["notes"])


# --- the worker pool: one bad file costs one row ---------------------------------------------------------------

def pool_work(task):
    if task == "slow":
        time.sleep(30)
    if task == "huge":
        np.ones(2**31)  # 16 GiB, far over the cap
    if task == "crash":
        os._exit(3)
    return {"status": "graded", "notes": [task]}


def test_a_slow_a_huge_and_a_crashing_task_cost_their_own_rows_only():
    started = time.monotonic()
    pool = WorkerPool(pool_work, processes=2, timeout_s=2, memory_mb=256)
    results = dict(pool.map(["a", "slow", "huge", "b", "crash", "c"]))
    assert time.monotonic() - started < 20
    assert [results[t]["status"] for t in "abc"] == ["graded"] * 3
    assert results["slow"]["status"] == "unreadable" and "took over 2 s (--timeout)" in results["slow"]["notes"][0]
    assert results["huge"]["status"] == "refused" and "--memory-mb" in results["huge"]["notes"][0]
    assert results["crash"]["status"] == "unreadable" and "died (exit code 3" in results["crash"]["notes"][0]


# --- the gradebook ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_a_csv_text_cell_a_spreadsheet_would_take_for_a_formula_is_quoted(start):
    text = f"{start}HYPERLINK(\"http://evil.example/\",\"x\")"
    assert csvfile.cell_text(text) == "'" + text
    (line,) = csv.DictReader(csvfile.csv_text(("submission", "score"), [{"submission": text, "score": 1.5}])
                             .splitlines(keepends=True))
    assert line == {"submission": "'" + text, "score": "1.5"}


def test_csv_numbers_empty_cells_and_plain_text_are_written_as_they_are():
    for value, text in [(-0.5, "-0.5"), (97.94, "97.94"), ("-0.5000", "-0.5000"), ("97.94", "97.94"), ("+1", "+1"),
                        ("-1e-05", "-1e-05"), (-3, "-3"), (np.float64(-2.25), "-2.25"), (None, ""), ("", ""),
                        ("ann", "ann"), ("model.pkl", "model.pkl"), ("a=b", "a=b")]:
        assert csvfile.cell_text(value) == text, value
    for text in ("-rf", "-1+cmd|' /C calc'!A0", "-inf", "+", "-"):
        assert csvfile.cell_text(text) == "'" + text
    assert csvfile.csv_text(("a", "b"), [{"a": None}]) == "a,b\n,\n"


def row(submission, file, sha, signature, acc=98.0, model="nn_numpy", status="graded"):
    return {"submission": submission, "file": file, "sha256": sha, "architecture": "mlp", "model": model,
            "signature": None if signature is None else np.asarray(signature, dtype=np.float64),
            "test_acc": acc, "test_loss": 0.1, "status": status, "notes": []}


def test_copies_are_flagged_naming_the_other_and_within_one_submission_they_are_not():
    rows = [row("ann", "a.pkl", "1", [1.0, 2.0]), row("ben", "b.npz", "2", [1.0 + 1e-7, 2.0]),
            row("ann", "c.pkl", "1", [1.0, 2.0]), row("cat", "d.pkl", "3", [5.0, 6.0]),
            row("dan", "e.pkl", "4", [7.0, 8.0])]
    refs = [{"name": "the kit's reference/nn_numpy.npz", "sha256": "4", "architecture": "mlp", "signature": None}]
    gradebook.flag_duplicates(rows, refs)
    assert [r["status"] for r in rows] == ["flagged", "flagged", "flagged", "graded", "flagged"]
    assert rows[0]["notes"] == ["duplicate of ben/b.npz (same weights)"]
    assert rows[1]["notes"] == ["duplicate of ann/a.pkl (same weights), ann/c.pkl (same weights)"]
    assert rows[4]["notes"] == ["duplicate of the kit's reference/nn_numpy.npz (identical file)"]


def test_z_scores_come_from_the_seeds_metrics_json_read_now(tmp_path):
    import json

    for folder, acc in (("", 0.98), ("seeds/seed1/", 0.982), ("seeds/seed2/", 0.984)):
        write(tmp_path / f"{folder}nn_numpy" / "metrics.json", json.dumps({"final": {"test_acc": acc}}).encode())
    write(tmp_path / "seeds/seed3/nn_numpy/metrics.json", b"{broken")
    seeds = gradebook.seed_accuracies(tmp_path)
    assert seeds == {"nn_numpy": pytest.approx([98.0, 98.2, 98.4])}
    rows = [row("a", "m.pkl", "1", None, acc=98.4), row("b", "m.pkl", "2", None, acc=None)]
    gradebook.add_z_scores(rows, seeds)
    assert rows[0]["z_score"] == pytest.approx(1.0) and rows[1]["z_score"] is None


def test_scores_csv_gives_each_submission_its_best_graded_or_flagged_file_as_gradescope_does():
    rows = [row("ann", "a.pkl", "1", None, acc=97.0), row("ann", "b.pkl", "2", None, acc=98.5, status="flagged"),
            row("ann", "c.pkl", "3", None, acc=None, status="refused"),
            row("ben", "m.npz", "4", None, acc=96.0, model="cnn_numpy"),
            row("ben", "n.npz", "5", None, acc=96.0, model="cnn_numpy", status="flagged"),
            row("cat", "x.pkl", None, None, acc=None, status="no model"),
            row("cat", "y.pkl", None, None, acc=None, status="refused"),
            row("cat", "z.pkl", None, None, acc=None, status="unreadable"),
            row("dan", "", None, None, acc=None, model="", status="no model")]
    rows[1]["notes"] = ["duplicate of ben/m.npz (same weights)"]
    rows[6]["notes"] = ["it contains posix.system, not only arrays"]
    rows[8]["notes"] = ["no .pkl, .pickle, .npz, .npy, .pt or .pth file in the submission"]
    scores = {r["submission"]: r for r in csv.DictReader(gradebook.scores_text(rows).splitlines())}
    assert list(scores) == ["ann", "ben", "cat", "dan"]
    assert list(scores["ann"]) == ["submission", "score", "file", "model", "status", "note"]
    assert (scores["ann"]["score"], scores["ann"]["file"], scores["ann"]["status"]) == ("98.50", "b.pkl", "flagged")
    assert scores["ann"]["note"].startswith("duplicate of ben/m.npz (same weights); best of 3 files")
    # at equal accuracy the graded file, not the flagged one
    assert (scores["ben"]["score"], scores["ben"]["file"], scores["ben"]["model"], scores["ben"]["status"]) == (
        "96.00", "m.npz", "cnn_numpy", "graded")
    # nothing graded: the worst reason, with its note
    assert (scores["cat"]["score"], scores["cat"]["status"]) == ("", "refused")
    assert scores["cat"]["note"] == "y.pkl: it contains posix.system, not only arrays"
    assert (scores["dan"]["score"], scores["dan"]["status"]) == ("", "no model") and "no .pkl" in scores["dan"]["note"]
    # Gradescope's score is the same file's
    results = gradebook.gradescope_results(rows)
    for submission, line in scores.items():
        assert results[submission]["score"] == (float(line["score"]) if line["score"] else 0.0)
    assert "(b.pkl, flagged)" in results["ann"]["output"] and "(m.npz, graded)" in results["ben"]["output"]


def test_the_histogram_counts_files_in_whole_numbers_its_legend_covers_no_panel_and_shows_the_seeds():
    rows = [row(f"s{i}", "m.pkl", str(i), None, acc=acc) for i, acc in enumerate([11.0, 97.9, 98.1, 98.2, 98.3])]
    rows.append(row("t", "m.pt", "t", None, acc=98.0, model="nn_torch"))
    seeds = {"nn_numpy": [98.1, 98.2, 98.3], "nn_torch": [98.0, 98.2]}
    fig = gradebook.histogram_figure(rows, seeds)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axes = fig.axes
    assert len(axes) == 2
    for ax in axes:
        ticks = [t for t in ax.get_yticks() if ax.get_ylim()[0] <= t <= ax.get_ylim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
    legend = fig.legends[0] if fig.legends else axes[0].get_legend()
    box = legend.get_window_extent(renderer)
    assert not any(box.overlaps(ax.get_window_extent(renderer)) for ax in axes)
    labels = [text.get_text() for text in legend.get_texts()]
    assert any("kit's seeds" in label and "sd" in label for label in labels), labels
    # the seeds' band on nn_numpy (sd 0.1 on an axis of ~90 points) is drawn wide enough to see, and labelled
    from matplotlib.colors import to_rgb

    ax = axes[0]
    band = [patch for patch in ax.patches if np.allclose(patch.get_facecolor()[:3], to_rgb("tab:red"))]
    width = max(b.get_window_extent(renderer).width for b in band) if band else 0
    assert width >= 0.015 * ax.get_window_extent(renderer).width
    assert any("98.20" in text.get_text() for text in ax.texts)
    import matplotlib.pyplot as plt

    plt.close(fig)


# --- the command, end to end --------------------------------------------------------------------------------------

def test_a_missing_folder_or_an_output_inside_the_submissions_is_one_line_and_exit_2(tmp_path):
    result = run_script(ROOT / "grade.py", tmp_path / "nope")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "does not exist" in result.stderr
    (tmp_path / "class").mkdir()
    result = run_script(ROOT / "grade.py", tmp_path / "class", "--out", tmp_path / "class" / "graded")
    assert result.returncode == 2 and "is inside" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "class" / "graded").exists()


def test_no_mnist_is_one_line_and_exit_1(tmp_path):
    (tmp_path / "class" / "ann").mkdir(parents=True)
    result = run_script(ROOT / "grade.py", tmp_path / "class", "--out", tmp_path / "out", cwd=tmp_path,
                        env={"MNIST_DIR": None, "MNIST_MIRROR": str(tmp_path / "no-mirror")})
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "MNIST_MIRROR" in result.stderr


def test_without_original_the_shared_folder_then_data_original_is_searched(tmp_path):
    """A fresh clone has no ../shared/original: the pickles that `reproduce.py --original` put in data/original
    are found there, and where neither has them the warning says how to get them."""
    import argparse

    from grading import cli as grade

    shared, data = tmp_path / "shared" / "original", tmp_path / "data" / "original"
    assert grade.ORIGINAL_FOLDERS[1] == ROOT / "data" / "original"
    assert grade.original_folder(None, (shared, data)) == shared  # neither: the first, said missing
    for name in ("nn_pure_python-model.pkl", "cnn_pure_python-model.pkl"):
        write(data / name, b"x")
    assert grade.original_folder(None, (shared, data)) == data
    assert grade.original_folder(str(tmp_path / "mine"), (shared, data)) == tmp_path / "mine"
    args = argparse.Namespace(reference=str(tmp_path / "no-reference"), original=None)
    found, line, warning = grade.reference_files(args, (shared, data))
    assert warning is None and sorted(name for name, _ in found) == [
        "the original report's cnn_pure_python-model.pkl", "the original report's nn_pure_python-model.pkl"]
    assert "the original's 2 pickles in" in line and str(data) in line
    found, line, warning = grade.reference_files(args, (shared, tmp_path / "empty"))
    assert found == [] and "python reproduce.py --original fetches them into data/original" in warning
    assert str(shared) in warning and str(tmp_path / "empty") in warning


@pytest.fixture(scope="module")
def one_student(tmp_path_factory, mnist_dir):
    """grade.py run on one student's folder holding one model file, the original's weights nowhere found."""
    tmp = tmp_path_factory.mktemp("one_student")
    write(tmp / "ann" / "model.pkl", pickle.dumps(named(mlp_params(7), ORIGINAL_NAMES)))
    result = run_script(ROOT / "grade.py", tmp / "ann", "--out", tmp / "graded", "--original", tmp / "no-original",
                        "--processes", "1", "--quiet", env={"MNIST_DIR": str(mnist_dir)}, timeout=300)
    assert result.returncode == 0, result.stderr
    return tmp / "graded", result


def test_one_students_folder_is_one_submission_one_model_file_one_row(one_student):
    _, result = one_student
    first, last = result.stdout.strip().splitlines()[0], result.stdout.strip().splitlines()[-1]
    assert "1 submission, 1 model file in" in first and "; 1 worker, each file" in first
    assert "grade.py: 1 row (1 graded)" in last


def test_the_originals_weights_not_checked_is_said_atop_summary_md_and_in_the_last_line(one_student):
    out, result = one_student
    how = "python reproduce.py --original fetches them into data/original"
    assert "NOT checked against the original report's weights" in result.stderr and how in result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert "NOT checked against the original report's weights" in last and how in last
    top = (out / "summary.md").read_text().splitlines()[:4]
    assert top[0] == "# Grades of 1 submission" and "NOT checked against the original report's weights" in top[2]
    assert how in top[2]
    grades = (out / "grades.csv").read_text()
    assert "original" not in grades and grades.splitlines()[0] == ",".join(gradebook.COLUMNS)


def test_no_note_says_there_is_nothing_to_plot(one_student):
    out, _ = one_student
    with open(out / "grades.csv", newline="") as f:
        (line,) = csv.DictReader(f)
    assert line["status"] == "graded" and "plot" not in line["note"]


def test_scores_csv_is_written_and_named_in_the_last_line(one_student):
    out, result = one_student
    with open(out / "scores.csv", newline="") as f:
        (line,) = csv.DictReader(f)
    with open(out / "grades.csv", newline="") as f:
        (graded,) = csv.DictReader(f)
    assert line == {"submission": "model.pkl", "score": graded["test_acc"], "file": "model.pkl",
                    "model": "nn_numpy", "status": "graded", "note": ""}
    assert f"one score per submission: {out / 'scores.csv'}" in result.stdout.strip().splitlines()[-1]


def make_class(folder, target):
    """The generated class: every container, naming and orientation, each bad case, copies, the original's."""
    nn = original_arrays("nn")
    cnn = original_arrays("cnn")
    mlp = [nn["layer1_W"], nn["layer1_b"][0], nn["layer2_W"], nn["layer2_b"][0], nn["layer3_W"], nn["layer3_b"][0]]
    write(folder / "orig_mlp" / "model.pkl", (SHARED / "nn_pure_python-model.pkl").read_bytes())
    write(folder / "orig_cnn" / "nested" / "model.pkl", (SHARED / "cnn_pure_python-model.pkl").read_bytes())
    write(folder / "p5" / "model.pkl", pickle.dumps({**named(mlp_params(1), ORIGINAL_NAMES, bias_row=True),
                                                     "epochs": 20, "train_accs": [0.9]}, protocol=5))
    write(folder / "p2" / "weights.pickle", pickle.dumps(named(mlp_params(2), ["W1", "b1", "W2", "b2", "W3", "b3"]),
                                                         protocol=2))
    np.savez(write(folder / "npz_copy" / "net.npz", b"").with_suffix(".npz"),
             **named([p.astype(np.float32) for p in mlp], ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias",
                                                           "fc3.weight", "fc3.bias"], transpose=True))
    write(folder / "torch_bare" / "model.pth", torch_bytes(torch_state(mlp_params(3))))
    write(folder / "torch_as_pkl" / "checkpoint.pkl", torch_bytes({"model_state_dict": torch_state(mlp_params(4)),
                                                                   "epoch": 5}))
    write(folder / "module" / "model.pt", torch_bytes(__import__("nn_torch").mlp()))
    bad = named(mlp_params(5), ORIGINAL_NAMES)
    bad["layer3_W"][0, 0] = np.inf
    write(folder / "nonfinite" / "model.pkl", pickle.dumps(bad))
    write(folder / "truncated" / "model.pkl", pickle.dumps(named(mlp_params(6), ORIGINAL_NAMES))[:20000])
    write(folder / "evil" / "model.pkl", pickle.dumps({"W1": CreatesFile(target)}))
    write(folder / "wrong" / "model.npz", b"")
    np.savez(folder / "wrong" / "model.npz", W1=np.zeros((784, 256)), W2=np.zeros((256, 10)))
    (folder / "empty").mkdir()
    write(folder / "copycat" / "model.pkl", (folder / "p2" / "weights.pickle").read_bytes())
    channels_last = {"conv1": cnn["conv1_W"].transpose(2, 3, 1, 0).astype(np.float32), "b1": cnn["conv1_b"],
                     "conv2": cnn["conv2_W"].transpose(2, 3, 1, 0).astype(np.float32), "b2": cnn["conv2_b"],
                     "dense": cnn["linear_W"].reshape(32, 7, 7, 10).transpose(1, 2, 0, 3).reshape(1568, 10)
                     .astype(np.float32), "dense_b": cnn["linear_b"]}
    write(folder / "keras_style" / "cnn.pkl", pickle.dumps(channels_last))
    write(folder / "loose_file.npy", b"")
    np.save(folder / "loose_file.npy", np.arange(20.0))


def test_a_whole_class_is_graded_in_one_command(tmp_path, mnist_dir):
    folder, target = tmp_path / "class", tmp_path / "pwned"
    make_class(folder, target)
    before = sorted((p.relative_to(folder), p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*"))
    result = run_script(ROOT / "grade.py", folder, "--out", tmp_path / "graded", "--gradescope", "--original", SHARED,
                        env={"MNIST_DIR": str(mnist_dir)}, timeout=300)
    assert result.returncode == 0, result.stderr
    assert sorted((p.relative_to(folder), p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")) == before
    assert not target.exists()
    with open(tmp_path / "graded" / "grades.csv", newline="") as f:
        rows = {(r["submission"], r["file"]): r for r in csv.DictReader(f)}
    status = {key: r["status"] for key, r in rows.items()}

    # the original's two pickles: exactly the report's numbers, flagged as the original's weights
    assert rows["orig_mlp", "model.pkl"]["test_acc"] == "97.94" and rows["orig_cnn", "nested/model.pkl"][
        "test_acc"] == "98.17"
    assert "duplicate of the original report's nn_pure_python-model.pkl" in rows["orig_mlp", "model.pkl"]["note"]
    assert rows["orig_mlp", "model.pkl"]["evaluated_with"] == "NumPy float64"
    # (out, in) float32 in an .npz under PyTorch's names: the same network, so the same grade, and a copy
    npz = rows["npz_copy", "net.npz"]
    assert npz["test_acc"] == "97.94" and npz["status"] == "flagged" and "same weights" in npz["note"]
    # channels-last kernels and flatten: recovered on training images, flagged as guessed and as the original's
    keras = rows["keras_style", "cnn.pkl"]
    assert keras["test_acc"] == "98.17" and keras["status"] == "flagged"
    assert "flatten channels-last" in keras["note"] and "cnn_pure_python-model.pkl (same weights)" in keras["note"]
    assert status["p5", "model.pkl"] == "graded" and "epochs 20" in rows["p5", "model.pkl"]["note"]
    assert not any("nothing to plot" in r["note"] for r in rows.values())
    assert rows["torch_bare", "model.pth"]["model"] == "nn_torch"
    assert rows["torch_as_pkl", "checkpoint.pkl"]["evaluated_with"] == "PyTorch float32"
    assert status["copycat", "model.pkl"] == "flagged" and "p2/weights.pickle (identical file)" in rows[
        "copycat", "model.pkl"]["note"]
    assert status["p2", "weights.pickle"] == "flagged"
    expected = {("nonfinite", "model.pkl"): "refused", ("truncated", "model.pkl"): "unreadable",
                ("evil", "model.pkl"): "refused", ("wrong", "model.npz"): "refused", ("empty", ""): "no model",
                ("module", "model.pt"): "refused", ("loose_file.npy", "loose_file.npy"): "no model"}
    assert {key: status[key] for key in expected} == expected
    assert "state_dict" in rows["module", "model.pt"]["note"] and "wrong architecture" in rows["wrong", "model.npz"][
        "note"]
    assert all(r["z_score"] for r in rows.values() if r["test_acc"])
    summary = (tmp_path / "graded" / "summary.md").read_text()
    assert "| nn_numpy |" in summary and "## To look at" in summary
    assert (tmp_path / "graded" / "histogram.png").stat().st_size > 1000
    results = __import__("json").loads((tmp_path / "graded" / "gradescope" / "orig_mlp" / "results.json").read_text())
    assert results["score"] == 97.94 and results["tests"][0]["name"] == "model.pkl"
    # scores.csv: one row per submission, the score Gradescope gives it
    with open(tmp_path / "graded" / "scores.csv", newline="") as f:
        scores = {r["submission"]: r for r in csv.DictReader(f)}
    assert set(scores) == {key[0] for key in rows}
    assert (scores["orig_mlp"]["score"], scores["orig_mlp"]["status"]) == ("97.94", "flagged")
    assert (scores["keras_style"]["file"], scores["keras_style"]["model"]) == ("cnn.pkl", "cnn_numpy")
    assert (scores["p5"]["status"], scores["evil"]["status"], scores["evil"]["score"]) == ("graded", "refused", "")
    assert scores["truncated"]["status"] == "unreadable" and "truncated" in scores["truncated"]["note"]
    for submission, line in scores.items():
        results = __import__("json").loads((tmp_path / "graded" / "gradescope" / submission / "results.json")
                                           .read_text())
        assert results["score"] == (float(line["score"]) if line["score"] else 0.0), submission


# --- hostile submissions: formulas in names, deep nesting, links and FIFOs -----------------------------------

HOSTILE_FOLDER = '=HYPERLINK("evil.example?id=1","click")'  # a folder's name holds no /
HOSTILE_FILE = "-rf.pkl"
LOOSE_FILE = "+SUM(1+1).pkl"
TAB_FOLDER = "\t@tab"


@pytest.fixture(scope="module")
def hostile_class(tmp_path_factory, mnist_dir):
    """grade.py run once on a class of hostile submissions: names a spreadsheet would run, pickles nested
    100,000 deep, a FIFO named model.pkl, links (looping, dangling, to a model outside, to a folder outside)."""
    if not hasattr(os, "mkfifo"):
        pytest.skip("a FIFO is needed (os.mkfifo)")
    tmp = tmp_path_factory.mktemp("hostile")
    folder, outside = tmp / "class", tmp / "outside"
    model = pickle.dumps(named(mlp_params(11), ORIGINAL_NAMES))
    write(outside / "secret.pkl", model)  # a valid model: graded only if a link to it were followed
    write(outside / "folder" / "model.pkl", model)
    write(folder / HOSTILE_FOLDER / HOSTILE_FILE, model)
    write(folder / LOOSE_FILE, pickle.dumps(named(mlp_params(12), ORIGINAL_NAMES)))
    write(folder / TAB_FOLDER / "@model.pkl", b"not a pickle")
    write(folder / "deep" / "dicts.pkl", nested_pickle("dicts", 100_000))
    write(folder / "deep" / "lists.pkl", nested_pickle("lists", 100_000))
    write(folder / "deep" / "tuple_key.pkl", nested_pickle("tuple key", 1_000_000))  # hashing it crashed
    write(folder / "deep" / "tuple_key.pt", nested_torch_file(1_000_000))
    links = folder / "links"
    links.mkdir(parents=True)
    os.mkfifo(links / "model.pkl")
    os.symlink("loop.pkl", links / "loop.pkl")
    os.symlink("nowhere.pkl", links / "dangling.pkl")
    os.symlink(outside / "secret.pkl", links / "outside.pkl")
    os.symlink(outside / "folder", links / "linked")
    os.symlink(outside / "folder", folder / "linked_student")
    result = run_script(ROOT / "grade.py", folder, "--out", tmp / "graded", "--original", tmp / "no-original",
                        "--reference", tmp / "no-reference", "--timeout", "60", "--quiet",
                        env={"MNIST_DIR": str(mnist_dir)}, timeout=240)  # a FIFO opened would block: no hang
    assert result.returncode == 0, result.stderr
    with open(tmp / "graded" / "grades.csv", newline="") as f:
        grades = {(r["submission"], r["file"]): r for r in csv.DictReader(f)}
    with open(tmp / "graded" / "scores.csv", newline="") as f:
        scores = {r["submission"]: r for r in csv.DictReader(f)}
    return grades, scores, result


def test_grades_csv_quotes_submission_and_file_names_a_spreadsheet_would_run(hostile_class):
    grades, _, _ = hostile_class
    hostile = grades["'" + HOSTILE_FOLDER, "'" + HOSTILE_FILE]
    assert hostile["status"] == "graded" and float(hostile["test_acc"]) >= 0
    assert hostile["z_score"] == "" or float(hostile["z_score"]) < 0  # a negative number is left as it is
    assert grades["'" + LOOSE_FILE, "'" + LOOSE_FILE]["status"] == "graded"
    assert grades["'" + TAB_FOLDER, "'@model.pkl"]["status"] == "unreadable"
    assert not any(cell[:1] in csvfile.FORMULA_STARTS for line in grades.values() for cell in line.values()
                   if not csvfile.NUMBER.fullmatch(cell))


def test_scores_csv_quotes_submission_and_file_names_a_spreadsheet_would_run(hostile_class):
    grades, scores, _ = hostile_class
    line = scores["'" + HOSTILE_FOLDER]
    assert line["file"] == "'" + HOSTILE_FILE and line["score"] == grades["'" + HOSTILE_FOLDER, "'" + HOSTILE_FILE][
        "test_acc"]
    assert (scores["'" + LOOSE_FILE]["file"], scores["'" + LOOSE_FILE]["status"]) == ("'" + LOOSE_FILE, "graded")
    assert (scores["'" + TAB_FOLDER]["file"], scores["'" + TAB_FOLDER]["status"]) == ("'@model.pkl", "unreadable")
    assert not any(cell[:1] in csvfile.FORMULA_STARTS for line in scores.values() for cell in line.values()
                   if not csvfile.NUMBER.fullmatch(cell))


def test_pickles_nested_100000_deep_get_a_refused_row_and_no_traceback(hostile_class):
    grades, _, result = hostile_class
    for name in ("dicts.pkl", "lists.pkl", "tuple_key.pkl", "tuple_key.pt"):
        line = grades["deep", name]
        assert line["status"] == "refused", (name, line["note"])
        assert f"nested deeper than {safe_pickle.MAX_NESTING} levels" in line["note"], name
    assert "Traceback" not in result.stderr and "RecursionError" not in result.stderr


def test_a_fifo_and_symbolic_links_get_refused_rows_and_nothing_outside_is_read(hostile_class):
    grades, scores, _ = hostile_class
    link = "a symbolic link (links are not followed)"
    assert grades["links", "model.pkl"]["status"] == "refused"
    assert grades["links", "model.pkl"]["note"].startswith("a FIFO (named pipe), not a regular file")
    for name in ("loop.pkl", "dangling.pkl", "outside.pkl", "linked"):
        line = grades["links", name]
        assert (line["status"], line["sha256"], line["test_acc"]) == ("refused", "", ""), name
        assert line["note"].startswith(link), name
    assert not any(key[0] == "links" and key[1].startswith("linked/") for key in grades)  # not walked into
    assert grades["linked_student", "linked_student"]["status"] == "refused"
    assert grades["linked_student", "linked_student"]["note"].startswith(link)
    assert (scores["links"]["status"], scores["links"]["score"]) == ("refused", "")


def test_submissions_list_fifos_and_links_without_following_any(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("a FIFO is needed (os.mkfifo)")
    write(tmp_path / "outside" / "model.pkl", b"x")
    write(tmp_path / "class" / "ann" / "notes.txt", b"x")
    os.mkfifo(tmp_path / "class" / "ann" / "pipe.npz")
    os.mkfifo(tmp_path / "class" / "ann" / "pipe.txt")  # not named as a model: no row, as notes.txt
    os.symlink(tmp_path / "outside", tmp_path / "class" / "ann" / "sub")
    os.symlink(tmp_path / "outside" / "model.pkl", tmp_path / "class" / "ann" / ".hidden.pkl")
    os.symlink(tmp_path / "outside", tmp_path / "class" / "ben")
    found = {name: [p.name for p in files] for name, files in gradebook.find_submissions(tmp_path / "class")}
    assert found == {"ann": ["pipe.npz", "sub"], "ben": ["ben"]}
