"""Outputs for people: no spreadsheet formula, no raw markup, case labels, meaningful figures.

Hostile values (formulas, HTML, backticks, control characters) are planted in small frames
and runs built here; every CSV, report.xlsx, report.md and report.html written from them is
read back and checked.
"""
import csv
import re

import markdown_it
import openpyxl
import pandas as pd
import pytest

from pipeline import schema
from pipeline.config import load_config
from pipeline.dedup.cases import Labeler, case_table
from pipeline.reporting.places import dictionary_townships, find_townships
from pipeline.reporting.render import add_table_sheet, xlsx_workbook
from pipeline.reporting.tables import Table
from pipeline.rundir import RunDir, write_csv
from pipeline.safe_text import markdown_code, markdown_text
from report_fixtures import synthetic_letters, write_run

FORMULAS = ['=HYPERLINK("http://x","y")', "=1+1", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"]
MARKUP = "<img src=x onerror=alert(1)>"
TICKS = "C``1` `x"


def read_csv(path):
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def is_formula(text):
    return isinstance(text, str) and text[:1] in ("=", "+", "-", "@", "\t", "\r")


# --- CSV -------------------------------------------------------------------------------------

@pytest.mark.parametrize("mixed", [False, True])
def test_csv_text_neutralised_numbers_kept(tmp_path, mixed):
    frame = pd.DataFrame({"id": pd.array(FORMULAS + ["ok"], dtype="str"),
                          "n": range(-4, 4), "x": [-0.5, 1.5, 0, 2, 3, 4, 5, -6.25]})
    if mixed:   # an object column of mixed values: written through pandas
        frame["o"] = pd.Series([-1, "=A1", None, "plain", 2.5, "@x", "-y", "z"], dtype=object)
    write_csv(frame, tmp_path / "out.csv")
    rows = read_csv(tmp_path / "out.csv")
    assert [row["id"] for row in rows] == ["'" + v for v in FORMULAS] + ["ok"]
    assert [float(row["n"]) for row in rows] == list(range(-4, 4))          # numbers stay numbers
    assert float(rows[0]["x"]) == -0.5 and float(rows[-1]["x"]) == -6.25
    if mixed:
        assert [row["o"] for row in rows] == ["-1", "'=A1", "", "plain", "2.5", "'@x", "'-y", "z"]
    assert not any(is_formula(v) for row in rows for k, v in row.items() if k not in ("n", "x", "o"))


def test_quarantine_and_warnings_neutralised(tmp_path):
    run = RunDir(tmp_path)
    run.set_quarantine("ingest", [{schema.SOURCE_FILE: "f.csv", schema.SOURCE_ROW: 2, schema.COLUMN: "",
                                   schema.RAW: "=cmd|' /C calc'!A0", schema.REASON: "bad"}])
    run.set_quarantine("normalize", [{schema.SOURCE_FILE: "f.csv", schema.SOURCE_ROW: 3, schema.COLUMN: "",
                                      schema.RAW: "@x", schema.REASON: "bad"}])   # rewrites ingest's rows too
    raws = [row[schema.RAW] for row in read_csv(tmp_path / "quarantine.csv")]
    assert raws == ["'=cmd|' /C calc'!A0", "'@x"]                            # not prefixed twice
    run.set_warnings("ingest", [{schema.SOURCE_FILE: "f.csv", schema.SOURCE_ROW: 2, schema.COLUMN: "visitors",
                                 schema.VALUE: "-1+2", schema.REASON: "not a number"}])
    assert read_csv(tmp_path / "ingest_warnings.csv")[0][schema.VALUE] == "'-1+2"


# --- report.xlsx, report.md, report.html -------------------------------------------------------

@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory):
    """A report over letters whose ids, addressees, titles and case ids are hostile."""
    from pipeline.cli import main
    letters = synthetic_letters(n=600, seed=5)
    hostile = [*FORMULAS, MARKUP, "A\x00B\x0bC", TICKS]
    for i, value in enumerate(hostile):
        rows = letters.index[letters[schema.RECEIVED_AT] >= "2024-11-01"][i::len(hostile)][:6]
        letters.loc[rows, schema.ADDRESSEE] = value
        letters.loc[rows, schema.LETTER_ID] = [f"{value}{j}" for j in range(len(rows))]
        letters.loc[rows, schema.NEEDS_REVIEW] = True
    in_period = letters[schema.RECEIVED_AT].between("2024-11-01", "2024-11-30 23:59")
    letters.loc[letters.index[in_period][-12:], schema.ADDRESSEE] = MARKUP   # the unit named in the narrative
    sizes = letters[schema.CASE_ID].value_counts()
    biggest = sizes[sizes.index.isin(letters.loc[in_period, schema.CASE_ID])].index[0]
    first = letters.index[letters[schema.CASE_ID] == biggest][0]
    letters[schema.CASE_ID] = letters[schema.CASE_ID].replace(biggest, TICKS)
    letters.loc[first, schema.TITLE] = f"{MARKUP}=1+1 身份证 330102198001011234 电话 13812345678"
    run = tmp_path_factory.mktemp("hostile")
    write_run(run, letters)
    assert main(["report", "--run", str(run), "--end", "2024-11-30"]) == 0
    return run, letters


def test_xlsx_has_no_formula_cell(hostile_report):
    run, _ = hostile_report
    workbook = openpyxl.load_workbook(run / "report.xlsx")
    cells = [cell for sheet in workbook for row in sheet.iter_rows() for cell in row if cell.value is not None]
    assert [cell.coordinate for cell in cells if cell.data_type == "f"] == []
    texts = {cell.value for cell in cells if isinstance(cell.value, str)}
    assert '=HYPERLINK("http://x","y")0' in texts                           # kept, as text
    assert "ABC0" in texts                                                  # control characters removed
    assert all(cell.quotePrefix for cell in cells if is_formula(cell.value))


def test_xlsx_blank_cells_and_no_leftover_files(tmp_path):
    table = Table("t", "表", pd.DataFrame({"来信编号": ["=A1", "", None], "件数": [1, 2, 3]}))
    with xlsx_workbook(tmp_path / "t.xlsx") as workbook:
        add_table_sheet(workbook, table)
    sheet = openpyxl.load_workbook(tmp_path / "t.xlsx")["表"]
    assert [(cell.value, cell.quotePrefix) for cell in sheet["A"][4:]] == [("=A1", True), (None, False), (None, False)]
    with pytest.raises(RuntimeError), xlsx_workbook(tmp_path / "broken.xlsx") as workbook:
        add_table_sheet(workbook, table)
        raise RuntimeError("the night stops mid-sheet")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["t.xlsx"]  # no half file, no row files


def test_markdown_escapes_letter_strings(hostile_report):
    run, _ = hostile_report
    text = (run / "report.md").read_text(encoding="utf-8")
    rendered = markdown_it.MarkdownIt().render(text)
    assert "<img" not in text and "<img" not in rendered
    shown = MARKUP.replace("<", "&lt;").replace(">", "&gt;")
    assert f"受理单位中，{shown}受理最多" in text                             # shown, as text
    assert f"累计来信最多的事项为「{shown}" in text                           # the case label: its title
    assert "330102198001011234" not in text and "13812345678" not in text


def test_html_escapes_letter_strings(hostile_report):
    run, _ = hostile_report
    page = (run / "report.html").read_text(encoding="utf-8")
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "330102198001011234" not in page and "13812345678" not in page


def test_markdown_code_span_holds_backticks():
    md = markdown_it.MarkdownIt()
    for value in (TICKS, "`", "a```b", "plain", " `x` "):
        html = md.render(f"Case {markdown_code(value)} here")
        code = re.search(r"<code>(.*?)</code>", html).group(1)
        assert code == value.strip() if value != " `x` " else code == value[1:-1], (value, html)
        assert html.count("<code>") == 1
    assert md.render(markdown_text("*a* [x](http://e) <b>|`c`")).count("<") == 2   # only <p></p>


# --- Case labels -------------------------------------------------------------------------------

def labeler():
    return Labeler.from_config(load_config())


def test_case_label_is_earliest_title_masked():
    letters = pd.DataFrame({
        schema.LETTER_ID: ["A1", "A2", "B1", "B2", "C1"],
        schema.RECEIVED_AT: pd.to_datetime(["2024-02-01", "2024-01-01", "2024-01-05", "2024-03-01", "2024-01-01"]),
        schema.PETITIONER_KEY: ["k1", "k1", "k2", "k3", ""], schema.ADDRESSEE: ["=x", "y", "z", "z", ""],
        schema.TOPICS: ["a", "a", "b", "b", ""],
        schema.PLACES: ["", "", "", "", "白石村|2024年1月1日|≈3万元"], schema.OTHERS: ["", "", "", "", "柳溪镇人民政府|王某"]})
    cases = pd.DataFrame({schema.CASE_ID: ["A2", "A2", "B1", "B1", "C1"]})
    titles = pd.DataFrame({schema.LETTER_ID: ["A1", "A2", "B1", "B2", "C1"],
                           schema.TITLE: ["后一件的标题", "本人张建国反映村干部侵占集体土地补偿款长期不公开账目问题，电话13812345678",
                                          "", "李秀英举报砖厂污染", ""],
                           schema.PETITIONER_NAME: ["张建国", "张建国", "李秀英", "李秀英", ""]})
    table = case_table(letters, cases, [True] * 5, [False] * 5, titles, labeler()).set_index(schema.CASE_ID)
    assert list(table.columns[:1]) == [schema.CASE_LABEL]
    label = table.at["A2", schema.CASE_LABEL]
    assert label.startswith("本人张某反映") and "张建国" not in label and len(label) <= 30
    assert table.at["B1", schema.CASE_LABEL] == "李某举报砖厂污染"          # earliest letter with a title
    assert table.at["C1", schema.CASE_LABEL] in ("柳溪镇人民政府、白石村", "白石村、柳溪镇人民政府")  # no title: names


# --- Report figures ----------------------------------------------------------------------------

def test_small_base_gives_no_percentage(tmp_path, cli):
    """One letter a year before, hundreds now: no 同比 percentage anywhere."""
    letters = synthetic_letters(n=900, seed=3, start="2024-01-01", end="2024-12-31")
    early = letters.iloc[:1].copy()
    early[schema.RECEIVED_AT] = pd.Timestamp("2023-06-01")
    early[schema.LETTER_ID], early[schema.CASE_ID] = "OLD1", "OLD1"
    write_run(tmp_path / "run", pd.concat([early, letters], ignore_index=True))
    assert cli("report", "--run", tmp_path / "run", "--period", "year", "--end", "2024-12-31")[0] == 0
    text = (tmp_path / "run" / "report.md").read_text(encoding="utf-8").split("## 口径说明")[0]
    assert "同比上升" not in text and "上年同期仅1件次，基数过小" in text
    workbook = openpyxl.load_workbook(tmp_path / "run" / "report.xlsx")
    overview = [row for row in workbook["总体情况"].iter_rows(min_row=5, values_only=True)]
    assert overview[0][:5] == ("受理件次", len(letters), 1, len(letters) - 1, "基数过小")
    months = [row for row in workbook["月度趋势"].iter_rows(min_row=5, values_only=True)]
    assert {row[5] for row in months if row[4]} == {"基数过小"}            # 上年同月 1: no percentage


def test_townships_from_text_and_dictionary(tmp_path):
    dictionary = tmp_path / "places.txt"
    dictionary.write_text("青山铺镇 10 ns\n哈佛小镇 10\n万科小区 10\n", encoding="utf-8")
    known = dictionary_townships([dictionary], ["街道", "镇", "乡"], ["小镇"])
    assert known == {"青山铺镇"}
    frame = pd.DataFrame({schema.ADDRESS: ["江北市青山县柳溪镇白石村3组", "", "", "", "", ""],
                          schema.CLEAN_TEXT: ["", "长沙县星沙街道某小区漏水", "我家在青山铺镇", "小区属于暮云街道管",
                                              "A市雨花区暮云街道办事处不作为", "哈佛小镇和城乡建设的问题"]})
    names, source = find_townships(frame, load_config().report, known)
    assert names.tolist() == ["柳溪镇", "星沙街道", "青山铺镇", "暮云街道", "暮云街道", "未识别"]
    assert source.tolist() == ["address", "text", "text", "text", "text", ""]


def test_excerpt_masks_address_name_and_numbers():
    text = ("本人王建国，男，61岁，家住青山县清河镇三里村九组52号，电话139-8765-4321。邻居李秀英家的"
            "砖厂污染严重。")
    excerpt = labeler().excerpt(text, ["王建国"], frozenset({"李秀英"}), 60, ["江北市青山县清河镇三里村九组52号"])
    for raw in ("王建国", "李秀英", "三里村九组52号", "139-8765-4321"):
        assert raw not in excerpt
    assert excerpt.startswith("本人王某，男，61岁，家住〔住址〕") and "李某" in excerpt
