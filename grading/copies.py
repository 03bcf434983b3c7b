"""Copies among a class's code, and of known public code, by copydetect's winnowed fingerprints.

    pairs = find_copies(students, out, boilerplate="handout/", sources=[("the kit", [Path("nn_numpy.py"),
                        Path("cnn_numpy.py")]), Path("public/")], threshold=0.5)   # a folder: one source
    pairs[0]     # Pair(a="PA1_1_x", b="PA1_2_y", a_in_b=0.91, b_in_a=0.88, flagged=True)

Each student's .py files are joined into one file (in path order), so functions moved between files or reordered
still match; copydetect tokenizes the code (identifiers, strings and comments normalised, so renaming and rewriting
comments hide nothing) and compares fingerprints of 25-token windows; every line the course's handed-out files
(``boilerplate``) also have is taken out first, and copydetect leaves out their fingerprints. A pair is flagged
where either side's share found in the other reaches ``threshold``. similarity_csv(pairs) is OUT/similarity.csv
(every pair, largest first); copydetect's side-by-side report of the flagged pairs is left at
OUT/.copies/report.html for the writer to move to OUT/similarity.html. With ``mode`` "zero", a flagged student's
total is 0.
"""

import dataclasses
import re
import shutil
import warnings
from pathlib import Path

from grading import csvfile
from grading.code_grade import python_files

COLUMNS = ("a", "b", "a_in_b", "b_in_a", "flagged")
SOURCE = "source:"


@dataclasses.dataclass
class Pair:
    a: str
    b: str
    a_in_b: float      # share of a's code found in b
    b_in_a: float
    flagged: bool


def joined(folder, target, handed_out=frozenset()):
    """One file of every .py in ``folder`` (path order), each headed by its path, less every line that the
    course's handed-out code also has (``handed_out``: stripped lines); False when nothing is left."""
    files = python_files(folder) if Path(folder).is_dir() else []
    parts = []
    for rel in files:
        try:
            text = (Path(folder) / rel).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        own = [line for line in text.splitlines() if line.strip() not in handed_out]
        if any(line.strip() for line in own):
            parts.append(f"# --- {rel}\n" + "\n".join(own))
    if not parts:
        return False
    target.write_text("\n".join(parts), encoding="utf-8")
    return True


def find_copies(students, out, boilerplate=None, sources=(), threshold=0.5, mode="flag"):
    """[Pair] of every two students, and of each student with each source, flagged ones noted on both students
    (``student.copies``); writes similarity.csv and similarity.html into ``out``."""
    from copydetect import CopyDetector

    stage = Path(out) / ".copies"
    shutil.rmtree(stage, ignore_errors=True)
    (stage / "students").mkdir(parents=True)
    (stage / "sources").mkdir()
    names = {}
    handed_out = handed_out_lines(boilerplate)
    for student in students:
        folder = student.submission.folder if student.submission is not None else None
        student.copies = []
        target = stage / "students" / f"{len(names):04d}_{safe(student.submission.name)}.py"
        if folder is not None and joined(folder, target, handed_out):
            names[target.name] = student.submission.name
    for source in sources:
        label, files = source if isinstance(source, tuple) else (Path(source).name, [Path(source)])
        target = stage / "sources" / f"{len(names):04d}_{safe(label)}.py"
        texts = []
        for path in map(Path, files):
            if path.is_dir() and joined(path, stage / "one.py"):
                texts.append((stage / "one.py").read_text(encoding="utf-8"))
            elif path.is_file():
                texts.append(f"# --- {path.name}\n" + path.read_text(encoding="utf-8", errors="replace"))
        if texts:
            target.write_text("\n".join(texts), encoding="utf-8")
            names[target.name] = f"{SOURCE}{label}"
    pairs = []
    if sum(not n.startswith(SOURCE) for n in names.values()) and len(names) > 1:
        detector = CopyDetector(test_dirs=[str(stage / "students")], ref_dirs=[str(stage / "students"),
                                str(stage / "sources")], boilerplate_dirs=[str(boilerplate)] if boilerplate else [],
                                extensions=["py"], display_t=threshold, autoopen=False, silent=True,
                                out_file=str(stage / "report.html"))
        detector.test_files, detector.ref_files = sorted(detector.test_files), sorted(detector.ref_files)
        detector.run()   # (copydetect gathers the files through a set: sorted, the report is the same each run)
        seen = set()
        for i, test in enumerate(detector.test_files):
            for j, ref in enumerate(detector.ref_files):
                a, b = names[Path(test).name], names[Path(ref).name]
                sim = detector.similarity_matrix[i, j]
                if a == b or sim[0] < 0 or (b, a) in seen:
                    continue
                seen.add((a, b))
                if b < a and not b.startswith(SOURCE):   # one way round whatever copydetect's file order
                    a, b, sim = b, a, sim[::-1]
                pairs.append(Pair(a, b, float(sim[0]), float(sim[1]), max(sim) >= threshold))
        pairs.sort(key=lambda p: (-max(p.a_in_b, p.b_in_a), p.a, p.b))
        if any(p.flagged for p in pairs):
            with warnings.catch_warnings():   # copydetect 0.5 reads its template with a deprecated call
                warnings.simplefilter("ignore", DeprecationWarning)
                detector.generate_html_report()
    by_name = {s.submission.name: s for s in students if s.submission is not None}
    for pair in (p for p in pairs if p.flagged):
        for me, other, share in ((pair.a, pair.b, pair.a_in_b), (pair.b, pair.a, pair.b_in_a)):
            if me in by_name:
                by_name[me].copies.append((other, share))
                by_name[me].zeroed = by_name[me].zeroed or mode == "zero"
    return pairs


def handed_out_lines(boilerplate):
    """The stripped lines of the course's handed-out .py files. They are taken out of each student's code before
    fingerprinting: a handout's docstrings, signatures and main() around a student's bodies would otherwise
    make windows that straddle the two, and two honest students filling the same handout look alike."""
    if not boilerplate or not Path(boilerplate).is_dir():
        return frozenset()
    lines = set()
    for rel in python_files(boilerplate):
        try:
            lines |= {line.strip() for line in (Path(boilerplate) / rel).read_text(encoding="utf-8",
                                                                                    errors="replace").splitlines()}
        except OSError:
            continue
    return frozenset(lines)


def safe(label):
    """A file name's worth of ``label``: its words, joined by _ (Hangul kept)."""
    return re.sub(r"[^\w.-]+", "_", label).strip("_")[:80]


def similarity_csv(pairs):
    return csvfile.csv_text(COLUMNS, ({"a": p.a, "b": p.b, "a_in_b": f"{p.a_in_b:.3f}", "b_in_a": f"{p.b_in_a:.3f}",
                                       "flagged": "yes" if p.flagged else ""} for p in pairs))