"""The PDF report a student hands in: does it show, for each of the four models, the three figures the handout
asks for (the train/test loss graph, the 10x10 confusion matrix, the top-3 images per class)?

    report = read_report(Path("graded/unpacked/PA1_1_a"))   # Report: pages, figures, found items, stated accuracies
    report.found["nn_numpy.loss_graph"]                      # True: a caption or text near an image says so
    report.thumbnails                                        # [PNG bytes] of every page, for the feedback

Reading (pypdf for the text and the images of each page, pypdfium2 to render the thumbnails), in page order, line by
line: a line that names an architecture (NN, MLP, neural network; CNN, convolutional; or in Korean) and a framework
(pure Python, NumPy, scratch, manual; PyTorch, TensorFlow, Keras, framework) sets the model the next figures belong to (a section
heading, a table row); a line that names a figure kind ("loss graph", "confusion matrix", "top 3") on a page that
holds an image, or that is a caption ("Figure 3: ..."), marks that figure found for the current model, or for a
model the line itself names. The percentages on a line naming a model, or saying "accuracy" under a model's heading,
are the accuracies it states. A TA confirms from the thumbnails, and corrects with --report-marks (student_id, item,
points). The largest PDF of the submission is read; none, a damaged or an encrypted one is a note and no points,
never a crash.
"""

import csv
import dataclasses
import io
import logging
import re
from pathlib import Path

from common.errors import UsageError
from grading.rubric import FIGURES, MODELS, REPORT_ITEMS

ARCH = (("cnn", re.compile(r"\bcnns?\b|convolutional|합성곱|컨볼루션", re.I)),
        ("nn", re.compile(r"\bnn\b|\bmlp\b|neural network|fully[- ]connected|신경망|다층 ?퍼셉트론", re.I)))
FRAMEWORK = (("numpy", re.compile(r"pure|numpy|scratch|manual|without (a )?framework|from scratch|넘파이|직접 ?구현|"
                                  r"프레임워크 ?(없이|미사용)", re.I)),
             ("torch", re.compile(r"pytorch|torch|tensorflow|keras|framework|파이토치|텐서플로|프레임워크", re.I)))
FIGURE = {"loss_graph": re.compile(r"loss\s*(graph|curve|plot)|(train\w*|test)[^.]{0,20}loss|손실|로스|loss 그래프",
                                   re.I),
          "confusion_matrix": re.compile(r"confusion|혼동 ?행렬|오차 ?행렬|혼동", re.I),
          "top3_images": re.compile(r"top[- ]?(3|three)|three (best|highest)|highest[- ]scor|상위 ?(3|세)", re.I)}
CAPTION = re.compile(r"^\W*(fig(ure)?\.?\s*\d+)", re.I)
PERCENT = re.compile(r"(\d{1,3}(?:\.\d+)?)\s*%")
ACCURACY = re.compile(r"\bacc(uracy)?\b", re.I)
MAX_PAGES = 60
READ_TIMEOUT, READ_MEMORY_MB = 60.0, 1024   # per report, in a worker
THUMB_WIDTH = 180


@dataclasses.dataclass
class Report:
    file: str = ""                   # the PDF read, relative to the submission
    pages: int = 0
    images: int = 0
    found: dict = dataclasses.field(default_factory=lambda: {item: False for item in REPORT_ITEMS})
    accuracies: dict = dataclasses.field(default_factory=dict)   # model -> [percent, ...] as stated
    thumbnails: list = dataclasses.field(default_factory=list)
    note: str = ""
    by_hand: dict = dataclasses.field(default_factory=dict)      # item -> points a TA gave


def model_of(line):
    """"nn_numpy", ... where the line names both an architecture and a framework, else None."""
    arch = next((a for a, pattern in ARCH if pattern.search(line)), None)
    framework = next((f for f, pattern in FRAMEWORK if pattern.search(line)), None)
    return f"{arch}_{framework}" if arch and framework else None


def largest_pdf(folder):
    pdfs = [p for p in Path(folder).rglob("*") if p.suffix.lower() == ".pdf" and p.is_file() and not p.is_symlink()]
    return max(pdfs, key=lambda p: (p.stat().st_size, p.as_posix()), default=None), len(pdfs)


def read_report(folder, thumbnails=True):
    """Report of the largest PDF in ``folder``."""
    report = Report()
    path, count = largest_pdf(folder)
    if path is None:
        report.note = "no PDF report in the submission"
        return report
    report.file = path.relative_to(folder).as_posix()
    if count > 1:
        report.note = f"{count} PDFs: the largest, {report.file}, was read"
    try:
        read_pages(path, report)
    except Exception as error:  # noqa: BLE001 - a damaged PDF may raise anything from the library
        report.found = {item: False for item in REPORT_ITEMS}
        report.note = "; ".join(n for n in (report.note, f"{report.file} could not be read "
                                            f"({type(error).__name__}: {str(error)[:120]})") if n)
        return report
    if thumbnails:
        try:
            report.thumbnails = render(path, report.pages)
        except Exception as error:  # noqa: BLE001
            report.note = "; ".join(n for n in (report.note, f"no thumbnails ({type(error).__name__})") if n)
    return report


def read_pages(path, report):
    import pypdf

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    reader = pypdf.PdfReader(str(path), strict=False)
    if reader.is_encrypted:
        raise ValueError("it is encrypted (password-protected)")
    report.pages = len(reader.pages)
    current = None
    for page in reader.pages[:MAX_PAGES]:
        images = images_drawn(page)
        report.images += images
        for line in (page.extract_text() or "").splitlines():
            named = model_of(line)
            current = named or current
            if named or (current and ACCURACY.search(line)):   # "CNN (PyTorch): 98.77%", or "Test accuracy: 98%"
                stated = [float(v) for v in PERCENT.findall(line) if 0 < float(v) <= 100]
                if stated:
                    report.accuracies.setdefault(current, []).extend(stated)
            for kind, pattern in FIGURE.items():
                if pattern.search(line) and (images or CAPTION.match(line)) and (named or current):
                    report.found[f"{named or current}.{kind}"] = True


def images_drawn(page, depth=0):
    """How many images the page draws: its content stream's Do operators that name an image, forms followed a
    level or two (matplotlib's pages share one resource dictionary, so the page's listed images overcount)."""
    try:
        from pypdf.generic import ContentStream

        xobjects = page["/Resources"].get_object().get("/XObject", {})
        xobjects = xobjects.get_object() if xobjects else {}
        contents = page.get_contents() if hasattr(page, "get_contents") else ContentStream(page, page.pdf)
        count = 0
        for operands, operator in (contents.operations if contents is not None else []):
            if operator == b"Do" and operands and operands[0] in xobjects:
                target = xobjects[operands[0]].get_object()
                if target.get("/Subtype") == "/Image":
                    count += 1
                elif target.get("/Subtype") == "/Form" and depth < 2:
                    count += images_drawn(FormPage(target), depth + 1)
        return count
    except Exception:  # noqa: BLE001 - a page whose stream the library cannot parse: what it lists
        try:
            return len(page.images)
        except Exception:  # noqa: BLE001
            return 0


class FormPage:
    """A form XObject seen as a page: its own resources and content stream."""

    def __init__(self, form):
        self.form = form
        self.pdf = getattr(form, "indirect_reference", None) and form.indirect_reference.pdf

    def __getitem__(self, key):
        return self.form[key]

    def get_contents(self):
        from pypdf.generic import ContentStream
        return ContentStream(self.form, self.pdf)


def render(path, pages):
    """PNG bytes of each page (at most MAX_PAGES), THUMB_WIDTH pixels wide."""
    import pypdfium2

    pdf = pypdfium2.PdfDocument(str(path))
    try:
        out = []
        for index in range(min(len(pdf), pages or len(pdf), MAX_PAGES)):
            page = pdf[index]
            image = page.render(scale=THUMB_WIDTH / page.get_width()).to_pil()
            buffer = io.BytesIO()
            image.save(buffer, format="PNG", optimize=True)
            out.append(buffer.getvalue())
        return out
    finally:
        pdf.close()


def read_marks(path):
    """{student_id: {item: points}} from a TA's CSV (student_id, item, points)."""
    if not path:
        return {}
    marks = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        for number, row in enumerate(csv.DictReader(f), 2):
            try:
                item, points = row["item"].strip(), float(row["points"])
                student = row["student_id"].strip()
            except (KeyError, TypeError, ValueError, AttributeError):
                raise UsageError(f"--report-marks {path}, row {number}: expected student_id, item, points") from None
            if item not in REPORT_ITEMS:
                raise UsageError(f"--report-marks {path}, row {number}: no item {item!r}; the items are "
                                 f"{', '.join(REPORT_ITEMS)}")
            marks.setdefault(student, {})[item] = points
    return marks


def read_task(task):
    """In a worker: the Report of one submission's folder, as a dict."""
    return dataclasses.asdict(read_report(Path(task["folder"])))


def prepare_task(task):
    """The PDF libraries loaded before the worker's memory cap."""
    import importlib

    for module in ("pypdf", "pypdfium2"):
        importlib.import_module(module)


def read_reports(students, rubric, marks_path, processes=2):
    """Each student's report read, and its points: figure_points per item found, a TA's mark where given. A PDF
    is a student's file too: each is read in a worker limited to READ_TIMEOUT seconds and READ_MEMORY_MB, so a
    PDF built to hang or to fill the memory costs its own report only."""
    from grading.workers import WorkerPool

    marks = read_marks(marks_path)
    tasks = [{"index": i, "folder": str(s.submission.folder)} for i, s in enumerate(students)
             if s.submission is not None and s.submission.folder is not None]
    reports = {}
    pool = WorkerPool(read_task, processes, READ_TIMEOUT, READ_MEMORY_MB, prepare_task)
    for task, result in pool.map(tasks) if tasks else ():
        if "found" in result:
            reports[task["index"]] = Report(**result)
        else:
            path, _ = largest_pdf(task["folder"])
            name = path.relative_to(task["folder"]).as_posix() if path else "the PDF"
            reports[task["index"]] = Report(file=name if path else "", note=(
                f"{name} could not be read within {READ_TIMEOUT:g} s and {READ_MEMORY_MB} MiB (the worker was "
                f"stopped): left to a TA"))
    for i, student in enumerate(students):
        student.report = reports.get(i, Report(note="nothing unpacked"))
        student.report.by_hand = marks.get(student.id, {})
        student.report_points = sum(student.report.by_hand.get(
            item, rubric.report["figure_points"] if student.report.found[item] else 0.0) for item in REPORT_ITEMS)


def missing_items(report):
    """"nn_torch: confusion matrix; cnn_numpy: loss graph, top-3 images" for what was not found (nor marked by
    hand)."""
    parts = []
    for model in MODELS:
        lost = [f.replace("_", " ").replace("top3", "top-3") for f in FIGURES if not report.found[f"{model}.{f}"]
                and f"{model}.{f}" not in report.by_hand]
        if lost:
            parts.append(f"{model}: {', '.join(lost)}")
    return "; ".join(parts)
