"""The class's code gradebook: what an instructor takes away from grading the code a class hands in.

    student = Student("PA1_2024123_Ada_Lovelace", code=grade_code(...), weights=[rows of grades.csv])
    student.id, student.name                          # "2024123", "Ada Lovelace"
    modules_text(students, rubric)                    # modules.csv: one row per student and module part
    scores_text(students, rubric)                     # scores.csv: one row per student
    feedback_html(student, rubric, sandboxed=True)    # feedback/<student_id>.html
    gradescope(student, rubric)                       # gradescope/<student_id>/results.json
    summary_markdown(students, rubric, command)       # summary.md: totals, the pass rate of every part

Pure functions over the graded results; grading/gradebook.py writes them as one set with the weights' files.
"""

import dataclasses
import datetime
import re

import numpy as np

from grading import csvfile
from grading.sandbox import summary

MODULE_COLUMNS = ("student_id", "module", "part", "verdict", "points", "max_points", "detail")
SCORE_COLUMNS = ("student_id", "name", "file", "submitted_at", "late_hours", "code_points", "report_points",
                 "max_points", "raw_total", "late_factor", "final", "copies", "status", "note", "test_acc",
                 "weights_file")
FOLDER = re.compile(r"^PA1_([^_]+)_(.+)$", re.I)
NO_SANDBOX = "graded WITHOUT the sandbox (--no-sandbox): the student's code ran as the grader's user"


@dataclasses.dataclass
class Student:
    folder: str                     # the submission's folder name
    code: object = None             # grading.code_grade.StudentCode, or None (no code graded)
    weights: list = dataclasses.field(default_factory=list)   # the student's rows of grades.csv
    error: str = ""                 # why the code could not be graded at all
    submission: object = None       # grading.lms.Submission: where it came from, its notes
    late: object = None             # grading.lms.Late
    copies: list = dataclasses.field(default_factory=list)    # [(other submission or "source:...", share)]
    zeroed: bool = False            # --copies zero and a flagged copy
    report: object = None           # grading.report.Report
    report_points: float = 0.0

    @property
    def id(self):
        match = FOLDER.match(self.folder)
        return match.group(1) if match else self.folder

    @property
    def name(self):
        match = FOLDER.match(self.folder)
        return match.group(2).replace("_", " ") if match else ""

    @property
    def points(self):
        return self.code.points if self.code is not None else 0.0

    @property
    def raw_total(self):
        return self.points + self.report_points

    @property
    def factor(self):
        return self.late.factor if self.late is not None else 1.0

    @property
    def final(self):
        return 0.0 if self.zeroed else round(self.raw_total * self.factor, 4)

    def best_weights(self):
        graded = [r for r in self.weights if r.get("test_acc") is not None and r["status"] in ("graded", "flagged")]
        return max(graded, key=lambda r: (r["test_acc"], r["status"] == "graded"), default=None)


def fmt(points):
    return f"{points:g}"


def status(student):
    if student.submission is not None and student.submission.status != "ok":
        return student.submission.status
    if student.error:
        return "error"
    if student.code is None or not student.code.files:
        return "no code"
    return "graded"


def modules_text(students, rubric):
    lines = []
    for student in students:
        for row in (student.code.rows if student.code is not None else []):
            max_points = rubric.points.get(row.part, 0.0)
            lines.append({"student_id": student.id, "module": row.part.partition(".")[0], "part": row.part,
                          "verdict": row.verdict, "points": fmt(max_points if row.verdict == "pass" else 0),
                          "max_points": fmt(max_points), "detail": row.detail})
    return csvfile.csv_text(MODULE_COLUMNS, lines)


def verdict_counts(rows):
    counts = {}
    for row in rows:
        counts[row.verdict] = counts.get(row.verdict, 0) + 1
    return ", ".join(f"{n} {v}" for v, n in counts.items())


def note(student, rubric=None):
    """What the instructor should know of a student's row, in one line (with ``rubric``, the parts worth points
    counted apart from those worth 0: "22 scored parts: 22 pass; worth 0: 1 pass, 4 missing")."""
    parts = [student.error] if student.error else []
    code = student.code
    if code is not None:
        scored = [r for r in code.rows if rubric is None or rubric.points.get(r.part, 0) > 0]
        free = [r for r in code.rows if rubric is not None and rubric.points.get(r.part, 0) <= 0]
        parts.append((f"{len(scored)} scored parts: " if rubric is not None else "") + verdict_counts(scored) +
                     (f"; worth 0: {verdict_counts(free)}" if free else ""))
        if any(row.verdict == "banned" for row in code.rows):
            parts.append("framework imports in the NumPy part: " + "; ".join(ban_lines(code))[:300])
        if not code.sandboxed:
            parts.append(NO_SANDBOX)
    if student.submission is not None:
        parts += student.submission.notes
    if student.late is not None and student.late.hours:
        parts.append(f"{student.late.hours:.1f} h late: {student.factor:.0%} kept (time: {student.late.source})")
    elif student.late is not None and student.late.submitted_at is not None:
        parts.append(f"on time (time: {student.late.source})")
    if student.zeroed:
        parts.append("no grade: a flagged copy (--copies zero)")
    if student.report is not None:
        parts += report_notes(student.report)
    flagged = [r for r in student.weights if r["status"] == "flagged"]
    parts += [f"weights {r['file']}: {'; '.join(r['notes'])}" for r in flagged]
    return "; ".join(p for p in parts if p)


def report_notes(report):
    """The report's trouble, what it lacks, and which items a TA marked by hand (--report-marks)."""
    from grading.report import missing_items

    parts = [f"report: {report.note}"] if report.note else []
    if report.file and report.pages and missing_items(report):
        parts.append(f"report lacks {missing_items(report)}")
    if report.by_hand:
        parts.append("report items marked by hand: " + ", ".join(sorted(report.by_hand)))
    return parts


def copies_text(student):
    return "; ".join(f"{other} ({share:.0%} of this code found there)" for other, share in student.copies)


def scores_text(students, rubric):
    lines = []
    for student in students:
        best, late, source = student.best_weights(), student.late, student.submission
        lines.append({"student_id": student.id, "name": student.name,
                      "file": source.source.name if source is not None and source.source is not None else "",
                      "submitted_at": late.submitted_at.isoformat() if late and late.submitted_at else "",
                      "late_hours": f"{late.hours:.2f}" if late and late.hours is not None else "",
                      "code_points": fmt(student.points), "report_points": fmt(student.report_points),
                      "max_points": fmt(rubric.max_points), "raw_total": fmt(student.raw_total),
                      "late_factor": fmt(student.factor), "final": fmt(student.final), "copies": copies_text(student),
                      "status": status(student), "note": note(student, rubric),
                      "test_acc": f"{best['test_acc']:.2f}" if best else "",
                      "weights_file": best["file"] if best else ""})
    return csvfile.csv_text(SCORE_COLUMNS, lines)


def ban_lines(code):
    """"nn.py:3 imports torch", once per line of the student's files."""
    return list(dict.fromkeys(line for file_lines in code.bans.values() for line in file_lines))


def gradescope(student, rubric):
    """Gradescope's results.json: one test per module part (its points, its verdict and detail as output)."""
    tests = []
    for row in (student.code.rows if student.code is not None else []):
        max_points = rubric.points.get(row.part, 0.0)
        tests.append({"name": row.part, "score": max_points if row.verdict == "pass" else 0.0,
                      "max_score": max_points, "output": f"{row.verdict}: {row.detail}"})
    best = student.best_weights()
    if student.weights:
        tests.append({"name": "weights (test accuracy, no points)", "score": 0.0, "max_score": 0.0,
                      "output": f"{best['file']}: {best['test_acc']:.2f}% on the MNIST test set" if best else
                      "no handed-in weights file could be evaluated"})
    if student.report is not None:
        from grading.rubric import REPORT_ITEMS
        for item in REPORT_ITEMS:
            given = student.report.by_hand.get(item)
            found = student.report.found[item]
            points = given if given is not None else rubric.report["figure_points"] if found else 0.0
            tests.append({"name": f"report: {item}", "score": points, "max_score": rubric.report["figure_points"],
                          "output": ("marked by hand" if given is not None else "found in the report" if found
                                     else f"not found in the report ({student.report.note or student.report.file})")})
    output = (f"{fmt(student.points)} points for the code and {fmt(student.report_points)} for the report, of "
              f"{fmt(rubric.max_points)}; kept {student.factor:.0%} ({note_of_late(student)}): {fmt(student.final)}.")
    if student.zeroed:
        output += " No grade: a flagged copy (--copies zero)."
    if student.code is not None and not student.code.sandboxed:
        output += f" {NO_SANDBOX}."
    return {"score": student.final, "max_score": rubric.max_points, "output": output, "tests": tests}


def note_of_late(student):
    late = student.late
    if late is None or late.submitted_at is None:
        return late.source if late is not None else "no due date"
    return (f"{late.hours:.1f} h late" if late.hours else "on time") + f", time from {late.source}"


# --- summary --------------------------------------------------------------------------------------------------

def histogram_lines(totals, maximum, bins=10):
    """A text histogram of the totals in ``bins`` equal bins of [0, maximum]."""
    if not totals or maximum <= 0:
        return ["(no totals)"]
    counts = np.histogram(np.clip(totals, 0, maximum), bins=bins, range=(0, maximum))[0]
    width = maximum / bins
    return ["```"] + [f"{i * width:5.1f}–{(i + 1) * width:5.1f} | {'#' * n} {n}" for i, n in enumerate(counts)] + \
        ["```"]


def pass_rates(students, rubric):
    """[(part, points, passed, tested, {verdict: n})], hardest first (lowest pass rate, then most points)."""
    rates = []
    for part, points in rubric.points.items():
        verdicts = [row.verdict for s in students if s.code is not None and s.code.files for row in s.code.rows
                    if row.part == part]
        tally = {v: verdicts.count(v) for v in dict.fromkeys(verdicts)}
        rates.append((part, points, tally.get("pass", 0), len(verdicts), tally))
    return sorted(rates, key=lambda r: (r[1] == 0, r[2] / r[3] if r[3] else 1, -r[1], r[0]))


def copies_lines(pairs):
    flagged = [p for p in pairs if p.flagged]
    lines = ["", "## Copies (largest first)", ""]
    if not flagged:
        return lines + [f"None flagged among {len(pairs)} pairs compared (similarity.csv has each)."]
    lines += ["| a | b | share of a in b | of b in a |", "|---|---|---|---|"]
    lines += [f"| {md(p.a)} | {md(p.b)} | {p.a_in_b:.0%} | {p.b_in_a:.0%} |" for p in flagged]
    return lines + ["", "Side by side: `similarity.html`. The default only flags; `--copies zero` applies the "
                        "handout's no-grade rule."]


def report_lines(students):
    from grading.rubric import REPORT_ITEMS
    read = [s for s in students if s.report is not None]
    if not read:
        return []
    lines = ["", "## The reports", "", f"{sum(bool(s.report.file) for s in read)} of {len(read)} handed in a PDF.",
             "", "| figure | found in |", "|---|---|"]
    lines += [f"| {item} | {sum(s.report.found[item] for s in read)}/{len(read)} |" for item in REPORT_ITEMS]
    return lines


def summary_markdown(students, rubric, command, sandboxed, seconds, copies=None):
    graded = [s for s in students if s.code is not None and s.code.files]
    totals = [s.final for s in students]
    lines = [f"# Code grades of {len(students)} student{'s' if len(students) != 1 else ''}", ""]
    if not sandboxed:
        lines += [f"**Warning: {NO_SANDBOX}.**", ""]
    lines += [f"Written by `{command}` on {datetime.date.today().isoformat()} in {seconds:.0f} s; rubric "
              f"`{rubric.path}` ({fmt(rubric.max_points)} points), hidden inputs from the class's seed in "
              f"`{rubric.secret_path}`. One row per student in `scores.csv`, one per part in `modules.csv`, "
              f"each student's feedback in `feedback/`.", ""]
    if totals:
        lines += [f"Final totals (code + report, times the late factor): mean {np.mean(totals):.1f}, median "
                  f"{np.median(totals):.1f}, min {min(totals):g}, max {max(totals):g} of {fmt(rubric.max_points)}; "
                  f"{len(graded)} with code.", ""]
    lines += ["## Totals", ""] + histogram_lines(totals, rubric.max_points)
    lines += copies_lines(copies or [])
    lines += report_lines(students)
    late = [s for s in students if s.late is not None and s.late.hours]
    if late:
        lines += ["", "## Late", "", "| student | hours late | kept | time from |", "|---|---|---|---|"]
        lines += [f"| {md(s.id)} | {s.late.hours:.1f} | {s.factor:.0%} | {md(s.late.source)} |" for s in late]
    lines += ["", "## Pass rate per module part (hardest first; parts worth no points last)", "",
              "| part | points | passed | rate | other verdicts |", "|---|---|---|---|---|"]
    for part, points, passed, tested, tally in pass_rates(students, rubric):
        others = ", ".join(f"{n} {v}" for v, n in tally.items() if v != "pass")
        rate = f"{passed / tested:.0%}" if tested else "—"
        lines.append(f"| `{part}` | {fmt(points)} | {passed}/{tested} | {rate} | {others} |")
    look = [s for s in students if status(s) != "graded" or any(
        r.verdict in ("error", "timeout", "banned") for r in s.code.rows)]
    lines += ["", "## To look at", ""]
    if look:
        lines += ["| student | status | note |", "|---|---|---|"]
        lines += [f"| {md(s.id)} | {status(s)} | {md(note(s, rubric))} |" for s in look]
    else:
        lines.append("Nothing: every student's code ran without an error, a timeout or a banned import.")
    audits = [summary(s.code.audit) for s in graded if s.code.audit]
    if any(audits):
        lines += ["", f"The sandbox recorded stand-ins or refusals for {sum(bool(a) for a in audits)} students "
                      "(each feedback file lists them)."]
    return "\n".join(lines) + "\n"


def md(text):
    return str(text).replace("|", "\\|").replace("\n", " ")
