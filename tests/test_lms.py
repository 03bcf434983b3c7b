"""grade.py takes the LMS export as it comes (issue 35): a class of 30 zips (tests/lms_class.py) graded in one
command with a due date, the LMS's times, the course's handed-out loader and a TA's report marks; every row
checked, nothing written outside the out folder, a rerun the same byte for byte but for its timestamp lines.

One grade.py run (and its rerun into the same folder) is shared by the tests that read it."""

import csv
import json
import os
import re

import pytest

from conftest import run_script
from grading.rubric import REPORT_ITEMS
from grading.sandbox import sandbox_problem
from lms_class import DUE, build_class

TIMESTAMP_LINES = re.compile(r"^(Written by `python grade\.py|<p><small>Graded )")


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def tree(folder, skip=None):
    """{relative path: (size, mtime)} of every file and link under ``folder`` (``skip``: a folder left out)."""
    found = {}
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if skip is None or os.path.join(root, d) != str(skip)]
        for name in files:
            path = os.path.join(root, name)
            info = os.lstat(path)
            found[os.path.relpath(path, folder)] = (info.st_size, info.st_mtime_ns)
    return found


def contents(folder):
    return {path: open(os.path.join(folder, path), "rb").read() for path in tree(folder)}


@pytest.fixture(scope="module")
def graded(tmp_path_factory, mnist_dir):
    if sandbox_problem():
        pytest.skip(sandbox_problem())
    tmp = tmp_path_factory.mktemp("lms")
    expected, times = build_class(tmp / "CLASS", tmp / "handout")
    with open(tmp / "times.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("student_id", "submitted_at"), *times])
    with open(tmp / "marks.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("student_id", "item", "points"), ("2024016", "cnn_numpy.loss_graph", "0.5")])
    out = tmp / "graded"
    before = tree(tmp)
    args = ("grade.py", tmp / "CLASS", "--out", out, "--due", DUE, "--times", tmp / "times.csv", "--boilerplate",
            tmp / "handout", "--report-marks", tmp / "marks.csv", "--quiet")
    result = run_script(*args, env={"MNIST_DIR": str(mnist_dir)}, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    first = contents(out)
    outside = tree(tmp, skip=out)
    again = run_script(*args, env={"MNIST_DIR": str(mnist_dir)}, timeout=900)
    assert again.returncode == 0, again.stdout + again.stderr
    scores = {row["student_id"]: row for row in read_csv(out / "scores.csv")}
    return {"tmp": tmp, "out": out, "expected": expected, "scores": scores, "before": before, "outside": outside,
            "first": first, "result": result}


def test_every_submission_has_one_row_in_scores_feedback_and_gradescope(graded):
    expected, scores, out = graded["expected"], graded["scores"], graded["out"]
    assert sorted(scores) == sorted(expected) and len(scores) == 30
    assert sorted(p.stem for p in (out / "feedback").glob("*.html")) == sorted(expected)
    assert sorted(p.name for p in (out / "gradescope").iterdir()) == sorted(expected)
    assert "the code and reports of 30 students" in graded["result"].stdout


def test_each_row_has_its_status_points_late_factor_notes_and_copies(graded):
    for student_id, want in graded["expected"].items():
        row = graded["scores"][student_id]
        where = f"{student_id}: {row}"
        assert row["status"] == want.status, where
        assert row["file"] == want.zip_name, where
        assert float(row["late_factor"]) == pytest.approx(want.factor), where
        assert float(row["raw_total"]) == pytest.approx(float(row["code_points"]) + float(row["report_points"]))
        assert float(row["final"]) == pytest.approx(round(float(row["raw_total"]) * want.factor, 4)), where
        assert row["max_points"] == "28"
        if want.code_points is not None:
            assert float(row["code_points"]) == want.code_points, where
        if want.report_points is not None:
            assert float(row["report_points"]) == want.report_points, where
        for words in want.notes:
            assert words in row["note"], where
        for other in want.copies_of:
            assert other in row["copies"], where
        if not want.copies_of:
            assert row["copies"] == "", where


def test_names_are_shown_as_the_zip_writes_them(graded):
    scores = graded["scores"]
    assert (scores["2024001"]["name"], scores["2024002"]["name"], scores["2024027"]["name"]) == \
        ("김민준", "이서연", "Alice Kim")
    # 2024002's zip names its files in CP949 with the UTF-8 flag clear: they unpack under their Hangul names
    folder = graded["out"] / "unpacked" / "PA1_2024002_이서연"
    assert (folder / "코드" / "mlp.py").is_file() and (folder / "보고서.pdf").is_file()


def test_lateness_follows_the_schedule_at_each_boundary(graded):
    scores, expected = graded["scores"], graded["expected"]
    for student_id in ("2024001", "2024002", "2024003", "2024004", "2024005", "2024006", "2024007", "2024021"):
        row, want = scores[student_id], expected[student_id]
        assert float(row["late_hours"]) == pytest.approx(want.hours_late, abs=0.005), row
        assert "time: --times" in row["note"]
    assert scores["2024001"]["submitted_at"] == "2025-10-16T14:30:00+09:00"       # exactly at the due time: 100%
    assert scores["2024004"]["submitted_at"] == "2025-10-18T02:30:00+09:00"   # given in UTC, by file name: shown
    # in the due time's zone
    assert "on time (time: the zip's modification time (not in --times))" in scores["2024008"]["note"]


def test_the_renamed_copy_is_flagged_and_the_boilerplate_pair_is_not(graded):
    pairs = {(r["a"], r["b"]): r for r in read_csv(graded["out"] / "similarity.csv")}
    copy = pairs[("PA1_2024001_김민준", "PA1_2024002_이서연")]
    assert copy["flagged"] == "yes" and float(copy["b_in_a"]) > 0.6
    shared = pairs[("PA1_2024022_배서현", "PA1_2024023_홍지안")]
    assert shared["flagged"] == "" and max(float(shared["a_in_b"]), float(shared["b_in_a"])) < 0.2
    assert not [k for k, r in pairs.items() if r["flagged"] and not {"PA1_2024001_김민준", "PA1_2024002_이서연",
                                                                      "PA1_2024024_유은우"} & set(k)]
    html = (graded["out"] / "similarity.html").read_text(encoding="utf-8")
    assert "PA1_2024001_김민준" in html and not (graded["out"] / ".copies").exists()
    summary = (graded["out"] / "summary.md").read_text(encoding="utf-8")
    assert "| PA1_2024001_김민준 | PA1_2024002_이서연 |" in summary


def test_the_reports_are_read_and_shown_as_thumbnails(graded):
    out = graded["out"]
    page = (out / "feedback" / "2024001.html").read_text(encoding="utf-8")
    assert page.count('<img class=thumb') == 4 and "보고서.pdf: 4 pages, 12 images" in page   # a thumbnail a page
    assert "Accuracies it states: nn_numpy 9" in page
    tests = {t["name"]: t for t in json.loads((out / "gradescope" / "2024016" / "results.json").read_text())["tests"]}
    found = {item: tests[f"report: {item}"]["output"] for item in REPORT_ITEMS}
    assert found["nn_torch.top3_images"] == "found in the report"
    assert found["cnn_numpy.loss_graph"] == "marked by hand" and found["cnn_torch.loss_graph"].startswith("not found")
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert "| nn_numpy.loss_graph | 24/30 |" in summary and "| cnn_torch.top3_images | 23/30 |" in summary


def test_nothing_is_written_outside_the_out_folder(graded):
    assert graded["outside"] == graded["before"]              # CLASS, the handout and the CSVs untouched
    assert not [p for p in graded["tmp"].rglob("escaped.py")]
    unpacked = graded["out"] / "unpacked"
    assert not [p for p in unpacked.rglob("*") if p.is_symlink()]
    assert not (unpacked / "PA1_2024011_한예준").exists()      # the bomb left nothing


def test_a_rerun_writes_the_same_files_but_for_one_timestamp_line(graded):
    second = contents(graded["out"])
    assert sorted(second) == sorted(graded["first"])
    for path, data in second.items():
        if data != graded["first"][path]:
            old, new = graded["first"][path].decode().splitlines(), data.decode().splitlines()
            changed = [(a, b) for a, b in zip(old, new) if a != b]
            assert len(old) == len(new) and len(changed) == 1 and TIMESTAMP_LINES.match(changed[0][0]), path


@pytest.mark.parametrize("row, message", [(("2024001", "2025-10-16 14:30"), "row 2: '2025-10-16 14:30' has no time "
                                                                              "zone"),
                                          (("2024001", "yesterday"), "row 2: 'yesterday' is not a time")])
def test_a_time_without_a_zone_or_unreadable_is_one_line_naming_its_row(tmp_path, row, message):
    (tmp_path / "CLASS").mkdir()
    with open(tmp_path / "times.csv", "w", newline="") as f:
        csv.writer(f).writerows([("student_id", "submitted_at"), row])
    result = run_script("grade.py", tmp_path / "CLASS", "--out", tmp_path / "out", "--due", DUE, "--times",
                        tmp_path / "times.csv")
    assert result.returncode != 0 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    result = run_script("grade.py", tmp_path / "CLASS", "--out", tmp_path / "out", "--due", "2025-10-16T14:30")
    assert result.returncode != 0 and "--due: '2025-10-16T14:30' has no time zone" in result.stderr


@pytest.mark.parametrize("trouble", ["hangs", "fills the memory"])
def test_a_pdf_that_hangs_or_fills_the_memory_costs_its_own_report_only(tmp_path, monkeypatch, trouble):
    import time

    from grading import report
    from grading.classbook import Student
    from grading.lms import Submission
    from grading.rubric import load_rubric
    from lms_class import report_pdf

    students = []
    for name in ("PA1_1_bad", "PA1_2_good"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "report.pdf").write_bytes(report_pdf())
        students.append(Student(name, submission=Submission(name, tmp_path / name, tmp_path / name)))
    real = report.read_report

    def troubled(folder, thumbnails=True):   # runs in the forked worker
        if folder.name == "PA1_1_bad":
            if trouble == "hangs":
                time.sleep(30)
            bytearray(4 << 30)
        return real(folder, thumbnails)

    monkeypatch.setattr(report, "read_report", troubled)
    monkeypatch.setattr(report, "READ_TIMEOUT", 3.0)
    started = time.monotonic()
    report.read_reports(students, load_rubric(out=tmp_path / "out"), None)
    assert time.monotonic() - started < 20
    bad, good = students
    assert "could not be read within 3 s" in bad.report.note and bad.report_points == 0
    assert good.report_points == 6 and good.report.pages == 4


def test_the_original_reports_pdf_shows_every_figure_and_its_accuracies():
    from conftest import ROOT
    from grading.report import read_report

    original = ROOT.parent / "shared" / "original"
    if not (original / "report.pdf").is_file():
        pytest.skip("../shared/original/report.pdf is not here")
    report = read_report(original, thumbnails=False)
    assert (report.file, report.pages, report.images) == ("report.pdf", 12, 12) and all(report.found.values())
    assert {model: max(values) for model, values in report.accuracies.items()} == \
        {"nn_numpy": 99.99, "nn_torch": 99.97, "cnn_numpy": 98.17, "cnn_torch": 99.52}
    assert 97.94 in report.accuracies["nn_numpy"] and 98.77 in report.accuracies["cnn_torch"]


def test_the_times_column_read_is_the_student_id_before_a_name(tmp_path):
    from grading.lms import read_times

    path = tmp_path / "times.csv"
    path.write_text("Name,Student ID,Submitted at\n이경민,202412345,2025-10-16T13:00:00+09:00\n", encoding="utf-8")
    assert list(read_times(path)) == ["202412345"]
    path.write_text("이름,파일,제출 시각\n이경민,PA1_1_a.zip,2025-10-16T13:00:00+09:00\n", encoding="utf-8")
    assert list(read_times(path)) == ["PA1_1_a.zip"]


def test_times_that_match_nobody_or_look_like_a_download_are_said(tmp_path):
    import datetime

    from grading.classbook import Student
    from grading.lms import Late, Submission, parse_time, times_warnings

    due = parse_time(DUE, "--due")
    students = []
    for i, (source, hours) in enumerate((("--times", 2.0), ("the zip's modification time", 400.0),
                                         ("the zip's modification time", 500.0))):
        name = f"PA1_{i}_x"
        student = Student(name, submission=Submission(name, tmp_path, tmp_path / f"{name}.zip"))
        student.late = Late(due + datetime.timedelta(hours=hours), hours, 0.0, source)
        students.append(student)
    lines = times_warnings(students, {"0": due, "Kim": due}, due)
    assert lines[0].startswith("1 of 2 rows of --times match no submission (e.g. 'Kim')")
    assert "2 submission times come from the zips' modification times and 2 of them are over 7 days late" in lines[1]
    assert times_warnings(students[:1], {"0": due}, due) == []


@pytest.mark.parametrize("line, model", [("2.3 합성곱 신경망 (넘파이로 직접 구현)", "cnn_numpy"),
                                         ("2.2 다층 퍼셉트론: 파이토치", "nn_torch"), ("CNN with PyTorch", "cnn_torch"),
                                         ("MLP from scratch (pure NumPy)", "nn_numpy"), ("Results", None)])
def test_a_heading_names_its_model_in_english_or_korean(line, model):
    from grading.report import model_of

    assert model_of(line) == model


@pytest.mark.parametrize("caption, kind", [("그림 1: 학습/테스트 손실 그래프", "loss_graph"),
                                           ("그림 2: 혼동 행렬", "confusion_matrix"),
                                           ("그림 3: 각 클래스의 상위 3개 이미지", "top3_images"),
                                           ("Figure 2: 10x10 probability confusion matrix", "confusion_matrix")])
def test_a_caption_names_its_figure_in_english_or_korean(caption, kind):
    from grading.report import FIGURE

    assert [k for k, pattern in FIGURE.items() if pattern.search(caption)] == [kind]
