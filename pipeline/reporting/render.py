"""Write a report: report.xlsx (a sheet per table), report.html (self-contained, inline SVG
charts, nothing fetched), report.md (the narrative and the definitions)."""
import contextlib
import dataclasses
import html
import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import __version__
from pipeline.reporting.charts import chart_svg
from pipeline.reporting.fonts import FONT_STACK
from pipeline.reporting.tables import TOTAL_MARK, cell_text
from pipeline.rundir import atomic_path
from pipeline.safe_text import FORMULA_START, markdown_text, strip_control

OUTPUTS = ("report.xlsx", "report.html", "report.md")
LONG_TABLES = ("review", "units", "townships", "bodies", "reopened")    # HTML shows their first html_max_rows rows
CSS = """
body { font-family: %s; margin: 2em auto; max-width: 1100px; color: #1d2733; line-height: 1.6; padding: 0 1em; }
h1 { font-size: 1.7em; border-bottom: 3px solid #a61b1b; padding-bottom: .3em; }
h2 { font-size: 1.25em; margin-top: 2em; border-left: 5px solid #a61b1b; padding-left: .5em; }
.narrative p { text-indent: 2em; font-size: 1.05em; }
.note { color: #4a5563; font-size: .9em; }
table { border-collapse: collapse; margin: .6em 0 1em; font-size: .92em; }
th, td { border: 1px solid #b9c2cc; padding: .25em .6em; }
th { background: #dde4ee; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.text { white-space: nowrap; }
tr.total td { font-weight: bold; background: #f4f6f9; }
figure.chart { margin: .5em 0; }
figure.chart svg text { font-family: %s; }
figcaption { color: #4a5563; font-size: .85em; }
.toc { columns: 3; font-size: .95em; }
@media print { h2 { break-after: avoid; } figure, table { break-inside: avoid; } }
""" % (FONT_STACK, FONT_STACK)


@dataclasses.dataclass
class Report:
    """What is written: the period, the narrative paragraphs and {key: Table}."""

    period: object
    tables: dict
    narrative: list

    @property
    def title(self):
        return f"信访情况分析报告（{self.period.label}）"


def _missing(value):
    return value is None or (not isinstance(value, str) and pd.isna(value))


class Workbook:
    """An xlsx workbook being written (XlsxWriter's constant-memory mode: rows go to the file as
    they are filled; a million-letter night's clerk sheet has 300,000). Every text cell is
    stored as text, never as a formula: control characters removed, quote-prefixed when it
    begins like one (Excel keeps it text on edit); an empty one is left blank. Made by
    :func:`xlsx_workbook`, its rows kept in files in ``tmpdir`` until it is closed."""

    def __init__(self, path, tmpdir=None):
        import xlsxwriter

        # zip64 only where a sheet needs it: about 600,000 clerk rows pass the zip's 2 GiB member limit
        self.book = xlsxwriter.Workbook(str(path), {"constant_memory": True, "tmpdir": tmpdir, "use_zip64": True,
                                                    "strings_to_formulas": False, "strings_to_numbers": False,
                                                    "strings_to_urls": False})
        self._formats = {}

    def format(self, **properties):
        """The cell format of ``properties`` (XlsxWriter's names), made once."""
        key = tuple(sorted(properties.items()))
        if key not in self._formats:
            self._formats[key] = self.book.add_format(properties)
        return self._formats[key]

    def write_text(self, sheet, row, column, value, **properties):
        """``value`` (a str) at (``row``, ``column``), 0-based, as text."""
        value = strip_control(value)
        if not value:
            return
        if value[0] in FORMULA_START:
            properties["quote_prefix"] = True
        sheet.write_string(row, column, value, self.format(**properties) if properties else None)


@contextlib.contextmanager
def xlsx_workbook(path):
    """Yield a :class:`Workbook` written to ``path`` (atomically) when the block succeeds. Its
    row files go to a folder beside ``path`` (not a small /tmp), removed whatever happens."""
    path = Path(path)
    with atomic_path(path) as tmp, tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as rows:
        workbook = Workbook(tmp, tmpdir=rows)
        yield workbook
        workbook.book.close()


def write_xlsx(report, path):
    """One sheet per table (``add_table_sheet``); the narrative first."""
    with xlsx_workbook(path) as workbook:
        summary = workbook.book.add_worksheet("综述")
        summary.set_column(0, 0, 120)
        workbook.write_text(summary, 0, 0, report.title, bold=True, font_size=14)
        for i, paragraph in enumerate(report.narrative, start=2):
            workbook.write_text(summary, i, 0, paragraph, text_wrap=True, valign="top")
        for table in report.tables.values():
            add_table_sheet(workbook, table)


def add_table_sheet(workbook, table, wrap=()):
    """A sheet of ``workbook`` (a :class:`Workbook`) holding ``table``: title in A1, note in A2,
    the table from row 4 (headings frozen). A letter id or addressee beginning with ``=`` stays
    text. Columns of ``wrap`` wrap their text."""
    sheet = workbook.book.add_worksheet(re.sub(r"[\[\]:*?/\\]", "", strip_control(table.title))[:31])
    for j, column in enumerate(table.frame.columns):
        width = max([len(str(column))] + [len(cell_text(v)) for v in table.frame[column].head(200)])
        sheet.set_column(j, j, min(60, 4 + 1.8 * width))
    sheet.freeze_panes(4, 0)
    workbook.write_text(sheet, 0, 0, table.title, bold=True, font_size=13)
    workbook.write_text(sheet, 1, 0, table.note)
    for j, column in enumerate(table.frame.columns):
        workbook.write_text(sheet, 3, j, str(column), bold=True, bg_color="#DDE4EE", pattern=1)
    wrapped = {j: {"text_wrap": True, "valign": "top"} for j, column in enumerate(table.frame.columns)
               if column in wrap}
    one_decimal = workbook.format(num_format="0.0")
    for i, row in enumerate(table.frame.itertuples(index=False), start=4):
        for j, value in enumerate(row):
            if _missing(value):
                continue
            if isinstance(value, np.generic):
                value = value.item()
            if isinstance(value, str):
                workbook.write_text(sheet, i, j, value, **wrapped.get(j, {}))
            elif isinstance(value, float):
                sheet.write_number(i, j, value, one_decimal)
            else:
                sheet.write(i, j, value)
    return sheet


def table_html(table, max_rows=None):
    """``table.frame`` (its first ``max_rows`` rows) as an HTML table; total rows in bold."""
    frame = table.frame if max_rows is None else table.frame.head(max_rows)
    numeric = {c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])}
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        total = any(isinstance(v, str) and TOTAL_MARK in v for v in row)
        cells = "".join(f'<td class="num">{cell_text(v)}</td>' if c in numeric else
                        f'<td class="{"wrap" if len(cell_text(v)) > 24 else "text"}">{html.escape(cell_text(v))}</td>'
                        for c, v in zip(frame.columns, row))
        body.append(f'<tr class="total">{cells}</tr>' if total else f"<tr>{cells}</tr>")
    more = ""
    if max_rows is not None and len(table.frame) > max_rows:
        more = f'<p class="note">（仅显示前 {max_rows} 行，共 {len(table.frame)} 行，全部见 report.xlsx。）</p>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{more}"


def render_html(report, settings):
    """report.html's text: narrative, a contents list, then each table with its chart.

    ``settings`` (ReportConfig): ``chart_rows`` bars per chart, ``html_max_rows`` rows of the
    long tables.
    """
    sections, toc = [], []
    for table in report.tables.values():
        chart = chart_svg(table, settings.chart_rows)
        figure = (f'<figure class="chart" data-chart="{table.key}">{chart}'
                  f"<figcaption>图：{html.escape(table.title)}</figcaption></figure>") if chart else ""
        rows = settings.html_max_rows if table.key in LONG_TABLES else None
        toc.append(f'<li><a href="#{table.key}">{html.escape(table.title)}</a></li>')
        sections.append(f'<section id="{table.key}"><h2>{html.escape(table.title)}</h2>'
                        f'<p class="note">{html.escape(table.note)}</p>{figure}{table_html(table, rows)}</section>')
    narrative_html = "".join(f"<p>{html.escape(p)}</p>" for p in report.narrative)
    return (f'<!DOCTYPE html>\n<html lang="zh-CN"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(report.title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{html.escape(report.title)}</h1>"
            f'<section class="narrative" id="summary"><h2>综述</h2>{narrative_html}</section>'
            f'<nav><ul class="toc">{"".join(toc)}</ul></nav>{"".join(sections)}'
            f'<p class="note">本报告由 petition {__version__} 生成；信访人只以化名（加密哈希）出现。</p>'
            "</body></html>\n")


def render_markdown(report):
    """report.md's text: the title, the narrative and each table's definition (口径说明);
    every text escaped (``safe_text.markdown_text``): letter-derived names stay literal text."""
    lines = [f"# {markdown_text(report.title)}", "", "## 综述", ""]
    for paragraph in report.narrative:
        lines += [markdown_text(paragraph), ""]
    lines += ["## 口径说明", ""]
    for table in report.tables.values():
        if table.note:
            lines.append(f"- **{markdown_text(table.title)}**：{markdown_text(table.note)}")
    return "\n".join(lines) + "\n"


def write_report(report, directory, settings):
    """Write ``OUTPUTS`` into ``directory`` (each atomically); return their paths."""
    directory = Path(directory)
    write_xlsx(report, directory / "report.xlsx")
    for name, text in (("report.html", render_html(report, settings)), ("report.md", render_markdown(report))):
        with atomic_path(directory / name) as tmp:
            tmp.write_text(text, encoding="utf-8")
    return [directory / name for name in OUTPUTS]
