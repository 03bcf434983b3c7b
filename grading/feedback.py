"""feedback/<student_id>.html: one student's page, what the TA and the student read.

    page = feedback_html(student, rubric)     # student: grading.classbook.Student

The points (code, report, late factor, final), the submission's notes, lateness, flagged copies, the report's
items with a thumbnail of every page, every module part beside its tolerance, what was found where, what the
sandbox saw, the weights. Every text from the submission is escaped.
"""

import base64
import datetime
import html

from grading.classbook import NO_SANDBOX, ban_lines, copies_text, fmt, note_of_late, status
from grading.report import missing_items
from grading.rubric import REPORT_ITEMS

STYLE = """img.thumb{width:180px;border:1px solid #aaa;margin:2px}
body{font:15px/1.45 system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:.3rem .5rem;vertical-align:top;
text-align:left}th{background:#f3f3f3}.pass{color:#176317;font-weight:600}.fail,.banned,.error,.timeout{color:#a3171b;
font-weight:600}.missing{color:#8a5a00;font-weight:600}code{font-size:90%}.warn{background:#fff2d6;padding:.5rem}"""


def feedback_html(student, rubric):
    e = html.escape
    code = student.code
    title = f"PA1 code feedback: {student.id}" + (f" ({student.name})" if student.name else "")
    title = title.replace("code feedback", "feedback")
    out = [f"<!doctype html><html lang=en><meta charset=utf-8><title>{e(title)}</title><style>{STYLE}</style>",
           f"<h1>{e(title)}</h1>",
           f"<p><b>{fmt(student.final)} of {fmt(rubric.max_points)} points</b>: {fmt(student.points)} for the code "
           f"and {fmt(student.report_points)} for the report, {fmt(student.raw_total)} in all, "
           f"{student.factor:.0%} kept ({e(note_of_late(student))}) ({e(status(student))}).</p>"]
    notes = list(student.submission.notes) if student.submission is not None else []
    if notes:
        out.append("<ul>" + "".join(f"<li>{e(n)}</li>" for n in notes) + "</ul>")
    if student.copies:
        out.append(f"<p class=warn>Flagged as a possible copy: {e(copies_text(student))}. "
                   + ("No grade (--copies zero)." if student.zeroed else "The instructor decides.") + "</p>")
    if student.error:
        out.append(f"<p class=warn>{e(student.error)}</p>")
    out += report_section(student, rubric)
    if code is not None and not code.sandboxed:
        out.append(f"<p class=warn>{e(NO_SANDBOX)}.</p>")
    if code is not None and code.rows:
        out += ["<h2>What was tested</h2><p>Each part of each module was called on inputs drawn from the class's "
                "secret seed and compared with the grader's float64 NumPy reference (relative error "
                "max |a − b| / max(1e-8, |a| + |b|)). Backward must give the true vector-Jacobian product of that "
                "part's own forward. Only <code>pass</code> earns the part's points.</p>",
                "<table><tr><th>part</th><th>verdict</th><th>points</th><th>your result beside the tolerance</th>"
                "</tr>"]
        for row in code.rows:
            got = fmt(rubric.points.get(row.part, 0) if row.verdict == "pass" else 0)
            out.append(f"<tr><td><code>{e(row.part)}</code></td><td class={e(row.verdict)}>{e(row.verdict)}</td>"
                       f"<td>{got} / {fmt(rubric.points.get(row.part, 0))}</td><td>{e(row.detail)}</td></tr>")
        out.append("</table>")
        found = list(dict.fromkeys(row.found for row in code.rows if row.found))
        out += ["<h2>What was found where</h2><ul>"] + [f"<li>{e(f)}</li>" for f in found] + ["</ul>"]
        out += ["<h2>What the sandbox saw</h2>", sandbox_record(code)]
    elif code is not None:
        out.append("<p>No <code>.py</code> file was handed in.</p>")
    if student.weights:
        out += ["<h2>Weights handed in</h2><table><tr><th>file</th><th>model</th><th>test accuracy</th><th>status"
                "</th><th>note</th></tr>"]
        for r in student.weights:
            acc = "" if r.get("test_acc") is None else f"{r['test_acc']:.2f}%"
            out.append(f"<tr><td>{e(r['file'])}</td><td>{e(str(r.get('model') or ''))}</td><td>{acc}</td>"
                       f"<td>{e(r['status'])}</td><td>{e('; '.join(r['notes']))}</td></tr>")
        out.append("</table>")
    seconds = f" in {student.code.seconds:.1f} s" if student.code is not None else ""
    out.append(f"<p><small>Graded {datetime.date.today().isoformat()}{seconds} by the kit's grade.py.</small></p>"
               "</html>")
    return "\n".join(out) + "\n"


def sandbox_record(code):
    """The audit record as a list: files read, imports stood in for, top-level statements not run, refusals."""
    e, audit = html.escape, code.audit or {}
    items = [f"files: {', '.join(code.files)}"]
    if audit.get("standins"):
        items.append("imports the sandbox lacks, given an inert stand-in: " + ", ".join(audit["standins"]))
    if audit.get("dropped"):
        items.append(f"top-level statements not run (only imports, definitions and simple assignments are loaded): "
                     f"{len(audit['dropped'])}, e.g. " + ", ".join(audit["dropped"][:5]))
    if audit.get("load_errors"):
        items.append("files that did not load: " + "; ".join(audit["load_errors"]))
    if audit.get("actions"):
        items.append("attempted, and refused or contained by the sandbox (no network, no other files, a process "
                     "limit): " + "; ".join(audit["actions"][:20]))
    if code.bans:
        items.append("files that import a deep-learning framework (a NumPy module found in one of them is banned; "
                     "a framework script of its own is allowed): " + "; ".join(ban_lines(code)))
    return "<ul>" + "".join(f"<li>{e(i)}</li>" for i in items) + "</ul>"




def report_section(student, rubric):
    """The report's items (found, or marked by hand) and a thumbnail of each page."""
    report, e = student.report, html.escape
    if report is None:
        return []
    out = [f"<h2>The report</h2><p>{e(report.file or 'no PDF')}: {report.pages} pages, {report.images} images"
           + (f"; {e(report.note)}" if report.note else "") + ".</p>"]
    if any(report.accuracies.values()):
        out.append("<p>Accuracies it states: " + "; ".join(
            f"{e(m)} {', '.join(f'{v:g}%' for v in dict.fromkeys(vals))}" for m, vals in report.accuracies.items()
            if vals) + "</p>")
    out.append("<table><tr><th>item</th><th>found</th><th>points</th></tr>")
    for item in REPORT_ITEMS:
        given = report.by_hand.get(item)
        points = given if given is not None else rubric.report["figure_points"] if report.found[item] else 0
        how = "marked by hand" if given is not None else "yes" if report.found[item] else "no"
        out.append(f"<tr><td>{item}</td><td class={'pass' if how != 'no' else 'missing'}>{how}</td>"
                   f"<td>{fmt(points)} / {fmt(rubric.report['figure_points'])}</td></tr>")
    out.append("</table>")
    if missing_items(report):
        out.append(f"<p>Not found: {e(missing_items(report))}. A TA who sees them in the thumbnails marks them in "
                   "--report-marks.</p>")
    if report.thumbnails:
        out.append("<p>" + "".join(f'<img class=thumb alt="page {i + 1}" src="data:image/png;base64,'
                                   f'{base64.b64encode(png).decode()}">' for i, png in enumerate(report.thumbnails))
                   + "</p>")
    return out
