"""Copies (grading/copies.py, issue 35): renamed identifiers, rewritten comments and reordered functions do not hide
a copy; two students who share only the course's handed-out code are not flagged."""

import pytest

from conftest import ROOT
from grading.classbook import Student
from grading.copies import find_copies
from grading.lms import Submission
from lms_class import LOADER, disguised


def student(tmp_path, name, files):
    folder = tmp_path / name
    for rel, text in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text, encoding="utf-8")
    return Student(name, submission=Submission(name, folder, folder))


def own_code(tag):
    """A few lines of a student's own, different for each tag."""
    if tag == "c":
        return "def accuracy(pred, y):\n    return float((pred.argmax(1) == y).mean())\n\n\nEPOCHS = 3\n"
    return "import numpy as np\n\n\nclass Timer:\n    def __init__(self):\n        self.laps = []\n"


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("copies")
    kit = (ROOT / "nn_numpy.py").read_text()
    (tmp / "handout" / "dataset").mkdir(parents=True)
    (tmp / "handout" / "dataset" / "dataloader.py").write_text(LOADER)
    students = [student(tmp, "PA1_1_a", {"nn.py": kit}),
                student(tmp, "PA1_2_b", {"src/mlp.py": disguised(kit)}),
                student(tmp, "PA1_3_c", {"dataset/dataloader.py": LOADER, "train.py": own_code("c")}),
                student(tmp, "PA1_4_d", {"dataset/dataloader.py": LOADER, "main.py": own_code("d")})]
    with_boilerplate = {(p.a, p.b): p for p in find_copies(students, tmp / "out", tmp / "handout", [], 0.5)}
    flags = {s.submission.name: list(s.copies) for s in students}
    without = {(p.a, p.b): p for p in find_copies(students, tmp / "out2", None, [], 0.5)}
    with_sources = find_copies(students, tmp / "out3", tmp / "handout",
                               [("the kit", [ROOT / "nn_numpy.py", ROOT / "cnn_numpy.py"])], 0.5)
    return with_boilerplate, flags, without, with_sources


def pair(pairs, a, b):
    return pairs.get((a, b)) or pairs.get((b, a))


def test_a_copy_with_renamed_names_new_comments_and_reordered_functions_is_flagged(copies):
    pairs, flags, _, _ = copies
    found = pair(pairs, "PA1_1_a", "PA1_2_b")
    assert found.flagged and min(found.a_in_b, found.b_in_a) > 0.6, found
    assert [o for o, _ in flags["PA1_2_b"]] == ["PA1_1_a"] and [o for o, _ in flags["PA1_1_a"]] == ["PA1_2_b"]


def test_sharing_only_the_handed_out_code_is_not_flagged_and_would_be_without_it(copies):
    pairs, flags, without, _ = copies
    shared = pair(pairs, "PA1_3_c", "PA1_4_d")
    assert not shared.flagged and max(shared.a_in_b, shared.b_in_a) < 0.2, shared
    assert not flags["PA1_3_c"] and not flags["PA1_4_d"]
    assert pair(without, "PA1_3_c", "PA1_4_d").flagged      # the check is not blind: the loader is most of it


def test_a_known_public_source_is_matched_as_one_source(copies):
    *_, with_sources = copies
    hits = {(p.a, p.b): p for p in with_sources if p.flagged}
    assert ("PA1_1_a", "source:the kit") in hits and ("PA1_2_b", "source:the kit") in hits
    assert not any("PA1_3_c" in key or "PA1_4_d" in key for key in hits)


def test_copies_zero_applies_the_no_grade_rule_to_both_sides_of_a_flagged_pair_only(tmp_path):
    kit = (ROOT / "nn_numpy.py").read_text()
    students = [student(tmp_path, "PA1_1_a", {"nn.py": kit}), student(tmp_path, "PA1_2_b", {"mlp.py": disguised(kit)}),
                student(tmp_path, "PA1_3_c", {"train.py": own_code("c")})]
    find_copies(students, tmp_path / "out", None, [], 0.5, mode="zero")
    assert [s.zeroed for s in students] == [True, True, False] and students[0].final == 0.0
