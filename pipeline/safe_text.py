"""Text made safe for the files people open: spreadsheets, CSV, Markdown.

Letter-derived strings (ids, addressees, titles, names) come from outside and may be hostile:

* Spreadsheet formulas (OWASP "CSV injection"): a cell beginning with ``=``, ``+``, ``-``,
  ``@``, a tab or a carriage return is evaluated by Excel. :func:`neutralise_cell` prefixes
  such a text with ``'`` (Excel shows the rest as text); CSV writers apply it to text columns
  only (a negative number column stays a number), xlsx writers store text cells as text.
* Control characters (NUL, ``\\x0b`` …) make the xlsx writer fail: :func:`strip_control`
  removes them.
* Markdown: :func:`markdown_text` HTML-escapes ``<>&`` and backslash-escapes the characters
  Markdown gives a meaning to; :func:`markdown_code` makes a code span whose fence is longer
  than any run of backticks inside.

The original values stay in the Parquet data; only what is written for people is changed.
"""
import re

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

FORMULA_START = "=+-@\t\r"
FORMULA_PREFIX = "'"
_FORMULA_REGEX = "^[=+\\-@\t\r]"
# openpyxl's ILLEGAL_CHARACTERS_RE: control characters other than tab, newline, carriage return
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|~#])")
_MARKDOWN_LEADING = re.compile(r"^(\s*)([+\-]|\d+(?=[.)]))")   # a list marker at the start


def neutralise_cell(value):
    """``value`` with ``'`` before it when it is a text Excel would read as a formula."""
    if isinstance(value, str) and value[:1] and value[0] in FORMULA_START:
        return FORMULA_PREFIX + value
    return value


def neutralise_arrow(array):
    """A pyarrow string array with :func:`neutralise_cell` applied to each value (vectorised)."""
    risky = pc.fill_null(pc.match_substring_regex(array, _FORMULA_REGEX), False)
    if not pc.any(risky).as_py():
        return array
    prefixed = pc.binary_join_element_wise(pa.scalar(FORMULA_PREFIX, array.type), array, pa.scalar("", array.type))
    return pc.if_else(risky, prefixed, array)


def neutralise_frame(frame):
    """``frame`` with every text column's values neutralised (numbers, booleans and dates as they are)."""
    out = {}
    for name, column in frame.items():
        if column.dtype == object:
            out[name] = column.map(neutralise_cell)
        elif pd.api.types.is_string_dtype(column.dtype):
            values = column.to_numpy(dtype=object, na_value=None)
            out[name] = pd.Series([neutralise_cell(v) for v in values], index=column.index, dtype=column.dtype)
        else:
            out[name] = column
    return pd.DataFrame(out, index=frame.index)


def strip_control(text):
    """``text`` without the control characters xlsx cannot hold (tab, newline and CR kept)."""
    return CONTROL.sub("", text) if isinstance(text, str) else text


def markdown_text(value):
    """``value`` as literal Markdown text (a table cell or a paragraph): ``<>&`` HTML-escaped,
    Markdown's special characters backslash-escaped, line breaks as spaces."""
    text = "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)
    text = strip_control(text).replace("\r", " ").replace("\n", " ")
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", text)
    return _MARKDOWN_LEADING.sub(lambda m: m.group(1) + m.group(2) + "\\" if m.group(2)[0].isdigit()
                                 else m.group(1) + "\\" + m.group(2), text)


def markdown_code(value):
    """``value`` as a Markdown code span: the fence is one backtick longer than the longest
    run of backticks inside, with spaces inside the fence when the text starts or ends with one."""
    text = strip_control(str(value)).replace("\r", " ").replace("\n", " ")
    runs = [len(run) for run in re.findall(r"`+", text)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"
