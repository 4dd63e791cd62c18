"""The clerk's spreadsheet of tonight's repeats: ``tonight.xlsx``, written by every dedupe.

One row per letter of the dump that is not the first of its case (it joins a matter an earlier
letter raised): the letter, how it relates to the earlier one, the case's label, the earlier
letters (dates, ids, titles), whether the matter had been closed before it came (回流) and
how many letters the case holds. Matters that came back come first, then the cases in the
order they began, each case's letters by date: a clerk works down it case by case.

Titles are masked (``dedup.cases.Labeler.mask``: identifiers, names after cue words, the
registered names); ids, dates and addressees are the register's own. Every text cell is
stored as text (``render.add_table_sheet``): a title beginning with ``=`` is no formula.
"""
import pandas as pd

from pipeline import schema
from pipeline.dedup.arrays import run_bounds
from pipeline.lookup import is_in
from pipeline.reporting.render import add_table_sheet, xlsx_workbook
from pipeline.reporting.tables import Table

FILE_NAME = "tonight.xlsx"
RELATION_ZH = {schema.EXACT_COPY: "完全相同（复制件）", schema.MULTI_ADDRESSED: "一信多投",
               schema.RESEND: "重复发送（同一信访人，近乎相同）", schema.REPEAT_PETITION: "重复信访（同一信访人）",
               schema.SAME_MATTER: "同一事项（他人或改写）", schema.DECIDED_SAME: "人工判定为同一事项"}
REOPENED_COLUMN = "回流（此前各件均已办结）"
EARLIER_COLUMN = "此前来信（日期 编号 标题）"
COLUMNS = [REOPENED_COLUMN, "事项编号", "事项名称", "事项累计件数", "信件编号", "来信日期", "受理机关",
           "标题（已脱敏）", "与此前来信的关系", "关联来信编号", EARLIER_COLUMN]
# sort keys, never written
_FIRST, _DATE = "_case_first", "_date"


def _days(values):
    """Each of ``values`` (dates) as YYYY-MM-DD, "" where unknown (a list of str)."""
    return pd.to_datetime(values).dt.strftime("%Y-%m-%d").fillna("").tolist()


def earlier_lines(case_letters, titles, max_shown=10):
    """{letter id: text} listing, for each letter of ``case_letters`` (``letter_id``,
    ``received_at``, ``case_id``: every letter of the cases), the letters of its case received
    before it (by date, then id; undated last), one line each (date, id, title from
    ``titles``): at most ``max_shown``, the case's first and the latest ones, with how many
    between them are left out."""
    frame = case_letters.sort_values([schema.CASE_ID, schema.RECEIVED_AT, schema.LETTER_ID], na_position="last")
    # plain lists over each case's run of rows: a frame per case took 25 times as long
    ids, bounds = frame[schema.LETTER_ID].tolist(), run_bounds(frame[schema.CASE_ID])
    days = _days(frame[schema.RECEIVED_AT])
    shown_all = [f"{day} {letter} {titles.get(letter, '')}".strip() for day, letter in zip(days, ids)]
    lines = {}
    for start, end in zip(bounds, bounds[1:]):
        shown = shown_all[start:end]
        for i, letter in enumerate(ids[start:end]):
            if i <= max_shown:
                lines[letter] = "\n".join(shown[:i])
            else:   # the matter's first letter, how many are left out, the latest ones
                left_out = i - max_shown
                lines[letter] = "\n".join([shown[0], f"…（其间另有 {left_out} 件）"] + shown[i - max_shown + 1:i])
    return lines


def tonight_table(letters, case_letters, titles, labels, max_shown=10):
    """The clerk's table (a ``tables.Table``) of tonight's letters that join an earlier matter.

    Parameters
    ----------
    letters : DataFrame
        The run's deduped letters new to the index: ``letter_id``, ``received_at``,
        ``addressee``, ``case_id``, ``duplicate_of``, ``relation``, ``reopened``.
    case_letters : DataFrame
        Every letter of their cases (history included): ``letter_id``, ``received_at``,
        ``case_id``.
    titles : dict
        {letter id: masked title}.
    labels : dict
        {case id: case label} (``cases.csv``).
    max_shown : int
        Earlier letters listed per row (the case's first and the latest ones).
    """
    joining = letters[letters[schema.DUPLICATE_OF].astype(str) != ""]
    sizes = case_letters.groupby(schema.CASE_ID).size()
    first = case_letters.groupby(schema.CASE_ID)[schema.RECEIVED_AT].min()
    before = earlier_lines(case_letters[is_in(case_letters[schema.CASE_ID], joining[schema.CASE_ID])],
                           titles, max_shown)
    ids = joining[schema.LETTER_ID].astype(str)
    cases = joining[schema.CASE_ID].astype(str)
    frame = pd.DataFrame({
        REOPENED_COLUMN: joining[schema.REOPENED].map({True: "是", False: "否"}).to_numpy(),
        "事项编号": cases.to_numpy(),
        "事项名称": cases.map(lambda c: labels.get(c, "")).to_numpy(),
        "事项累计件数": sizes.reindex(cases).fillna(0).astype(int).to_numpy(),
        "信件编号": ids.to_numpy(),
        "来信日期": _days(joining[schema.RECEIVED_AT]),
        "受理机关": joining[schema.ADDRESSEE].fillna("").astype(str).to_numpy(),
        "标题（已脱敏）": ids.map(lambda i: titles.get(i, "")).to_numpy(),
        "与此前来信的关系": joining[schema.RELATION].map(lambda r: RELATION_ZH.get(r, r)).to_numpy(),
        "关联来信编号": joining[schema.DUPLICATE_OF].astype(str).to_numpy(),
        EARLIER_COLUMN: ids.map(lambda i: before.get(i, "")).to_numpy(),
        _FIRST: first.reindex(cases).to_numpy(), _DATE: joining[schema.RECEIVED_AT].to_numpy(),
    })
    frame = frame.sort_values([REOPENED_COLUMN, _FIRST, "事项编号", _DATE, "信件编号"],
                              ascending=[False, True, True, True, True], na_position="last", kind="stable")
    reopened = int((frame[REOPENED_COLUMN] == "是").sum())
    note = (f"今晚新到的 {len(letters)} 件来信中，{len(frame)} 件属于此前已有来信的事项（不是该事项的第一件），"
            f"其中回流 {reopened} 件（该事项此前各件来信在其到达前均已办结）。回流件排在最前，其余按事项首次来信"
            "日期、事项内按来信日期排列。标题已遮盖身份证号、电话和姓名；此前来信最多列出"
            f" {max_shown} 件：该事项的第一件和最近的几件。此前已入库、本次重新导出的来信不列入。")
    return Table("tonight", "今晚的重复来信", frame[COLUMNS].reset_index(drop=True), note)


def write_tonight(table, path):
    """``table`` (:func:`tonight_table`) as the one sheet of an xlsx workbook at ``path``."""
    with xlsx_workbook(path) as workbook:
        add_table_sheet(workbook, table, wrap=(EARLIER_COLUMN,))
    return path
