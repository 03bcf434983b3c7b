"""What the LMS hands over: the class's zips (and folders, and loose model files), each one submission, and when
each was handed in against the due date.

    submissions = gather(Path("CLASS"), Path("graded"))     # [Submission], zips unpacked into graded/unpacked/
    due = parse_time("2025-10-16T14:30+09:00", "--due")
    times = read_times(Path("times.csv"))                   # {student id or file name: aware datetime}
    late = lateness(submission, due, times, schedule)       # Late(submitted_at, hours, factor, source)

The handout's late rule (the default `[late]` schedule of grading/grading.toml): up to 1 day late keeps 75%, up
to 2 days 50%, up to 3 days 25%, up to 7 days 10%, beyond that 0; handed in at or before the due time, 100%.
"""

import csv
import dataclasses
import datetime
import os
import re
from pathlib import Path

from common.errors import UsageError
from grading.gradebook import gets_row, submitted_files
from grading.unpack import unpack_zip

ZIP_NAME = re.compile(r"^PA1_([^_]+)_(.+)$", re.I)
DATASET = re.compile(r"(ubyte|\.idx\d|^mnist[^/]*\.(csv|npy|npz|gz|pkl|zip|bin)$|^(train|test)[^/]*\.(csv|gz)$)", re.I)
# the column of --times that names the submission, best first: a student id, a file name, else a name
KEY_HEADERS = (r"student.?(id|number|no)|학번|^id$|\bid\b", r"file|zip|파일", r"student|name|이름|학생")


@dataclasses.dataclass
class Submission:
    name: str                        # the zip's or the folder's name without .zip: PA1_<id>_<name>
    folder: Path = None              # its files (None: a refused zip, or a loose model file)
    source: Path = None              # the zip, folder or file in CLASS
    status: str = "ok"               # ok, or the zip's: refused, not a zip, empty, encrypted
    notes: list = dataclasses.field(default_factory=list)
    model_files: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Late:
    submitted_at: datetime.datetime = None
    hours: float = None
    factor: float = 1.0
    source: str = ""                 # where the time came from


def gather(class_dir, out_dir):
    """[Submission] of CLASS, sorted by name: each folder; each .zip, unpacked into OUT/unpacked/<name>/; each
    model file lying in CLASS. Nothing is written into CLASS."""
    found = []
    with os.scandir(class_dir) as scanned:
        entries = sorted(scanned, key=lambda entry: entry.name)
    for entry in entries:
        path = Path(entry.path)
        if entry.name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=False):
            found.append(Submission(entry.name, path, path))
        elif entry.name.lower().endswith(".zip") and entry.is_file(follow_symlinks=False):
            unpacked = unpack_zip(path, Path(out_dir) / "unpacked")
            submission = Submission(unpacked.name, unpacked.folder, path, "ok" if unpacked.folder else unpacked.status,
                                    list(unpacked.notes))
            if not ZIP_NAME.match(unpacked.name):
                submission.notes.append(f"{entry.name} is not named PA1_<id>_<name>.zip: graded as {unpacked.name}")
            found.append(submission)
        elif gets_row(entry):
            found.append(Submission(entry.name, None, path, model_files=[path]))
    names = [s.name for s in found]
    for submission in found:
        if names.count(submission.name) > 1:
            submission.notes.append(f"{submission.name} is both a folder and a zip in CLASS: both are graded")
        if submission.folder is not None:
            submission.model_files = submitted_files(submission.folder)
            note_handed_in(submission)
    return found


def note_handed_in(submission):
    """Notes for what the handout excludes: datasets and weights (weights are still graded)."""
    datasets = [p for p in Path(submission.folder).rglob("*") if p.is_file() and not p.is_symlink()
                and DATASET.search(p.name)]
    if datasets:
        submission.notes.append("datasets handed in (the handout asks for code and report only): " +
                                ", ".join(p.relative_to(submission.folder).as_posix() for p in datasets[:5]))
    if submission.model_files:
        submission.notes.append("weights handed in (the handout asks for code and report only; graded): " +
                                ", ".join(p.relative_to(submission.folder).as_posix()
                                          for p in submission.model_files[:5]))


# --- the deadline ---------------------------------------------------------------------------------------------

def parse_time(text, where):
    """An aware datetime of ISO 8601 ``text`` (2025-10-16T14:30+09:00, also with a space or Z); a time without a
    zone, or one that does not parse, is a UsageError naming ``where``."""
    value = str(text).strip().replace(" ", "T", 1) if "T" not in str(text) else str(text).strip()
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{where}: {text!r} is not a time (write it as 2025-10-16T14:30+09:00)") from None
    if parsed.tzinfo is None:
        raise UsageError(f"{where}: {text!r} has no time zone (write it as 2025-10-16T14:30+09:00)")
    return parsed


def read_times(path):
    """{key: time} from the LMS's CSV: a column of student ids or file names, one of submission times (found by
    their headers: id/student/file/name, and time/submitted/date; else the first two columns)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        raise UsageError(f"--times {path}: {e.strerror or e}") from None
    if not rows:
        raise UsageError(f"--times {path} is empty")
    header = [h.strip().lower() for h in rows[0]]
    when = next((i for i, h in enumerate(header) if re.search(r"time|submit|date|제출", h)), None)
    key = next((i for pattern in KEY_HEADERS for i, h in enumerate(header) if i != when and re.search(pattern, h)),
               None)
    body = rows[1:] if key is not None and when is not None else rows
    key, when = (0, 1) if key is None or when is None else (key, when)
    times = {}
    for number, row in enumerate(body, 2 if body is not rows else 1):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(key, when):
            raise UsageError(f"--times {path}, row {number}: {len(row)} column(s), expected at least "
                             f"{max(key, when) + 1}")
        times[row[key].strip()] = parse_time(row[when], f"--times {path}, row {number}")
    return times


def factor_of(hours, schedule):
    """The share of the points kept ``hours`` after the due time (``schedule``: [(up to hours, factor)])."""
    if hours <= 0:
        return 1.0
    for limit, factor in sorted(schedule):
        if hours <= limit:
            return float(factor)
    return 0.0


def lateness(submission, due, times, schedule, student_id):
    """Late of one submission: its time from --times (by student id, then file name, then name), else from the
    zip's (or folder's) modification time, said in ``source``; no due date, no lateness."""
    if due is None:
        return Late(source="no --due given")
    source_name = submission.source.name if submission.source is not None else submission.name
    for key in (student_id, source_name, submission.name):
        if key in times:
            at, source = times[key], "--times"
            break
    else:
        stamp = os.stat(submission.source, follow_symlinks=False).st_mtime if submission.source else None
        if stamp is None:
            return Late(source="no submission time")
        at = datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc)
        source = f"the {'zip' if source_name.lower().endswith('.zip') else 'file'}'s modification time" + \
                 (" (not in --times)" if times else "")
    hours = (at - due).total_seconds() / 3600
    return Late(at.astimezone(due.tzinfo), max(0.0, hours), factor_of(hours, schedule), source)


def times_warnings(students, times, due):
    """Lines to say before an instructor trusts the late factors: --times rows that match no submission, and
    modification times that look like a download's (most of the class over 7 days late)."""
    lines = []
    keys = set()
    for student in students:
        source = student.submission.source
        keys |= {student.id, source.name if source is not None else "", student.submission.name}
    unmatched = [key for key in times if key not in keys]
    if unmatched:
        lines.append(f"{len(unmatched)} of {len(times)} rows of --times match no submission (e.g. {unmatched[0]!r}): "
                     "the column read is the student id, else the file name")
    by_mtime = [s for s in students if s.late is not None and "modification time" in s.late.source]
    very_late = [s for s in by_mtime if s.late.hours and s.late.hours > 168]
    if due is not None and by_mtime and len(very_late) * 2 > len(by_mtime):
        lines.append(f"{len(by_mtime)} submission times come from the zips' modification times and {len(very_late)} "
                     "of them are over 7 days late: if the zips were downloaded after the deadline these are "
                     "download times; give the LMS's times with --times")
    return lines
