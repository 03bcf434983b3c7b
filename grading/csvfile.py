"""The one CSV writer of grade.py's outputs: rows to text, no cell of them a spreadsheet formula.

    text = csv_text(("submission", "score"), [{"submission": "ann", "score": "97.94"}])
    path.write_text(text, encoding="utf-8")

A submission's folder or file name goes into the gradebook verbatim, and a spreadsheet takes a cell that begins
with =, +, -, @, a tab or a carriage return for a formula (``=HYPERLINK(...)`` a live link, ``=cmd|...`` a
command). Such a text cell is written with a leading ' (OWASP's rule for CSV injection), which the spreadsheet
shows as text; numbers, and text that spells a plain number (-0.5000, 97.94), are written as they are.
"""

import csv
import io
import numbers
import re

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def cell_text(value):
    """The text of one cell: "" for None, a number as str() gives it, a text beginning with one of
    FORMULA_STARTS (and not a plain number) after a ' that keeps a spreadsheet from running it."""
    if value is None:
        return ""
    text = str(value)
    if isinstance(value, numbers.Number) or NUMBER.fullmatch(text):
        return text
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_text(columns, rows):
    """CSV text ("\\n" line ends): a header of ``columns``, then each row, a mapping of column name to value (a
    column it lacks is empty), every cell through :func:`cell_text`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([cell_text(column) for column in columns])
    for row in rows:
        writer.writerow([cell_text(row.get(column)) for column in columns])
    return out.getvalue()
