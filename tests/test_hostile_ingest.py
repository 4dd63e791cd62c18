"""Ingest on hostile and oddly exported files: nothing lost, no traceback, clear refusals.

Every file here is built in tmp_path the way a careless exporter or an attacker would make it,
and taken through the command line (``petition ingest FILE --run R``): the stage exits 0 (rows
in = kept + quarantined) or 2 with one line naming the file, never with a traceback.
"""
import codecs
import datetime
import json
import zipfile

import openpyxl
import pandas as pd
import pytest

from pipeline import ingest, schema
from pipeline.intake import encodings
from tests.config_files import write_config

HEADER4 = "编号,日期,信访人,内容"


def run_ingest(cli, tmp_path, *inputs, run="run", config=None):
    """``petition [--config C] ingest INPUTS --run R``; returns (exit code, stdout, stderr, run directory)."""
    code, out, err = cli(*(["--config", config] if config else []), "ingest", *inputs, "--run", tmp_path / run)
    assert "Traceback" not in out + err
    if code == 2:
        assert len(err.strip().splitlines()) == 1, err
    return code, out, err, tmp_path / run


def outputs(run):
    """(letters, quarantine, warnings, manifest's ingest stage) of a run directory."""
    read = lambda name: pd.read_csv(run / name, dtype=str, keep_default_na=False, encoding="utf-8-sig")  # noqa: E731
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    stage = manifest[schema.MANIFEST_STAGES]["ingest"]
    letters = pd.read_parquet(run / "ingested.parquet")
    quarantine = read("quarantine.csv")
    rows = quarantine[quarantine[schema.SOURCE_ROW] != ""]
    assert stage["rows_in"] == len(letters) + len(rows) == stage["rows_out"] + stage["quarantined"]
    return letters, quarantine, read("ingest_warnings.csv"), stage


def write_lines(path, lines, encoding="utf-8"):
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


# --- nothing lost -------------------------------------------------------------------------

@pytest.mark.parametrize("after", [[], ["B4,2026/11/3,赵六,\"有逗号,的内容\"", "B5,2026/11/3,钱七,路面塌陷"]])
def test_unclosed_quote_does_not_swallow_the_next_record(tmp_path, cli, after):
    path = write_lines(tmp_path / "quote.csv", [HEADER4, "B1,2026/11/2,张三,路灯坏了",
                                                 'B2,2026/11/2,李四,"他说""没钱"",拖着不办',
                                                 "B3,2026/11/2,王五,噪音扰民"] + after)
    code, out, _, run = run_ingest(cli, tmp_path, path)
    letters, quarantine, _, stage = outputs(run)
    assert code == 0 and stage["rows_in"] == 3 + len(after)
    assert letters[schema.LETTER_ID].tolist() == ["B1", "B3"] + [line[:2] for line in after]
    assert letters.set_index(schema.LETTER_ID).at["B3", schema.CONTENT] == "噪音扰民"
    broken = quarantine.set_index(schema.SOURCE_ROW).loc["3"]
    assert "unclosed quote" in broken[schema.REASON] and broken[schema.RAW].startswith("B2,")
    assert f"{3 + len(after) + 1} lines: header + {3 + len(after)} records" in out


def test_quoted_line_breaks_stay_one_record(tmp_path, config):
    # the middle line holds as many commas as a record (the bundled sample has such a letter)
    body = ["第一段，路灯坏了", "第二段,有,逗号,三个", "第三段,有逗号"]
    path = write_lines(tmp_path / "multi.csv", [HEADER4, f'B1,2026/11/2,张三,"{body[0]}', body[1], body[2] + '"',
                                                 "B2,2026/11/2,李四,噪音扰民"])
    letters, quarantine, *_ = ingest.ingest([path], config)
    assert not quarantine and letters[schema.CONTENT].tolist() == ["\n".join(body), "噪音扰民"]


def test_a_field_over_the_csv_module_limit_is_quarantined_and_the_folder_still_loads(tmp_path, cli):
    folder = tmp_path / "dump"
    folder.mkdir()
    write_lines(folder / "a_long.csv", [HEADER4, "L1,2026/11/2,张三," + "长" * 131_073, "L2,2026/11/2,李四,正常来信"])
    write_lines(folder / "b_good.csv", [HEADER4, "G1,2026/11/2,王五,噪音扰民"])
    code, out, _, run = run_ingest(cli, tmp_path, folder)
    letters, quarantine, _, stage = outputs(run)
    assert code == 0 and letters[schema.LETTER_ID].tolist() == ["L2", "G1"] and stage["quarantined"] == 1
    reason = quarantine.at[0, schema.REASON]
    assert "131,073 characters in 内容" in reason and "ingest.max_text_chars (50,000)" in reason
    assert len(quarantine.at[0, schema.RAW]) < 60_000                     # shown cut, saying so
    assert "more characters not shown" in quarantine.at[0, schema.RAW]


def test_letters_above_max_text_chars_are_quarantined_not_cut(tmp_path, config):
    limit = config.ingest.max_text_chars
    path = write_lines(tmp_path / "len.csv", [HEADER4, "A,2026/11/2,张三," + "字" * limit,
                                               "B,2026/11/2,李四," + "字" * (limit + 1)])
    letters, quarantine, *_ = ingest.ingest([path], config)
    assert letters[schema.LETTER_ID].tolist() == ["A"] and len(letters.at[0, schema.CONTENT]) == limit
    assert [q[schema.SOURCE_ROW] for q in quarantine] == [3] and quarantine[0][schema.COLUMN] == "内容"


def test_deeply_nested_jsonl_line_is_quarantined(tmp_path, cli):
    path = tmp_path / "deep.jsonl"
    good = json.dumps({"编号": "J1", "内容": "路灯坏了"}, ensure_ascii=False)
    path.write_text(good + "\n" + '{"内容": ' + "[" * 100_000 + "]" * 100_000 + "}\n", encoding="utf-8")
    code, _, _, run = run_ingest(cli, tmp_path, path)
    letters, quarantine, _, _ = outputs(run)
    assert code == 0 and letters[schema.LETTER_ID].tolist() == ["J1"]
    assert quarantine[schema.REASON].tolist() == ["invalid JSON line: nested too deeply to read"]


def test_control_characters_are_removed_from_every_text_field(tmp_path, cli):
    path = write_lines(tmp_path / "ctl.csv", [HEADER4 + ",受理机关,备注",
                                              "C1,2026/11/2,张\x00三,\"路灯\x0b坏了\r\n第二行\",县\x00信访局\x1f,注\x07",
                                              "C2,2026/11/2,李四,噪音扰民,县信访局,"])
    (tmp_path / "ctl.jsonl").write_text(json.dumps({"编号": "C3", "内容": "积水\u0000严重\u000c"}) + "\n",
                                        encoding="utf-8")
    code, _, _, run = run_ingest(cli, tmp_path, path, tmp_path / "ctl.jsonl")
    letters, _, warnings, _ = outputs(run)
    assert code == 0
    first = letters.set_index(schema.LETTER_ID).loc["C1"]
    assert first[schema.PETITIONER_NAME] == "张三" and first[schema.ADDRESSEE] == "县信访局"
    assert first[schema.CONTENT] == "路灯坏了\n第二行"                     # CRLF inside a field becomes LF
    assert json.loads(first[schema.EXTRA]) == {"备注": "注"}
    assert letters.set_index(schema.LETTER_ID).at["C3", schema.CONTENT] == "积水严重"
    stored = "".join(letters[[schema.PETITIONER_NAME, schema.CONTENT, schema.ADDRESSEE, schema.EXTRA]].stack())
    assert not encodings_controls(stored)
    removed = warnings[warnings[schema.PROBLEM] == "control characters removed"]
    assert set(removed[schema.COLUMN]) == {schema.PETITIONER_NAME, schema.CONTENT, schema.ADDRESSEE, "备注"}
    assert "\\x00" in set(removed[schema.VALUE])


def encodings_controls(text):
    return [c for c in text if (ord(c) < 32 and c not in "\n\t") or 0x7f <= ord(c) <= 0x9f]


def test_warnings_do_not_echo_identifiers(tmp_path, config):
    path = write_lines(tmp_path / "pii.csv", [HEADER4 + ",联名人数",
                                              "P1,身份证110101199003071234,张三,路灯坏了,电话13812345678"])
    _, _, warnings, _, _ = ingest.ingest([path], config)
    values = " ".join(w[schema.VALUE] for w in warnings)
    assert {w[schema.COLUMN] for w in warnings} == {schema.RECEIVED_AT, schema.SIGNATORIES}
    assert "110101199003071234" not in values and "13812345678" not in values
    assert "[身份证号]" in values and "[手机号]" in values


# --- refusals ---------------------------------------------------------------------------------

def xlsx_bomb(path, letter_chars):
    """A workbook of a few hundred KB whose one letter inflates to ``letter_chars`` characters."""
    book = openpyxl.Workbook()
    book.active.append(["编号", "内容"])
    book.active.append(["X1", "PLACEHOLDER"])
    small = path.with_suffix(".small.xlsx")
    book.save(small)
    with zipfile.ZipFile(small) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            data = source.read(item)
            if b"PLACEHOLDER" in data:
                data = data.replace(b"PLACEHOLDER", b"x" * letter_chars)
            target.writestr(item.filename, data)
    small.unlink()
    return path


def test_xlsx_that_inflates_too_far_is_refused_before_parsing(tmp_path, cli):
    (tmp_path / "dump").mkdir()
    bomb = xlsx_bomb(tmp_path / "dump" / "bomb.xlsx", 70_000_000)
    assert bomb.stat().st_size < 500_000
    # the default cap fits Excel's largest sheets; a 70 MB letter is over this test's cap
    config = write_config(tmp_path, lambda raw: raw["ingest"].update(max_xlsx_bytes=50_000_000))
    code, _, err, _ = run_ingest(cli, tmp_path, bomb, config=config)
    assert code == 2 and "bomb.xlsx: workbook inflates to" in err and "ingest.max_xlsx_bytes" in err
    # in a folder: skipped, counted in the notes and the manifest, quarantined as a file
    write_lines(tmp_path / "dump" / "good.csv", [HEADER4, "G1,2026/11/2,王五,噪音扰民"])
    code, out, _, run = run_ingest(cli, tmp_path, tmp_path / "dump", config=config)
    letters, quarantine, _, stage = outputs(run)
    assert code == 0 and letters[schema.LETTER_ID].tolist() == ["G1"]
    assert "files skipped (unreadable; in quarantine.csv): 1 of 2" in out
    assert stage["notes"]["files skipped (unreadable; in quarantine.csv)"] == "1 of 2"
    assert quarantine[schema.SOURCE_FILE].str.endswith("bomb.xlsx").tolist() == [True]


def test_unreadable_files_are_refused_in_one_line(tmp_path, cli):
    (tmp_path / "bad16.csv").write_bytes(codecs.BOM_UTF16_LE + "编号\t内容\n".encode("utf-16-le") + b"\x00\xd8")
    code, _, err, _ = run_ingest(cli, tmp_path, tmp_path / "bad16.csv")
    assert code == 2 and "bad16.csv: starts as UTF-16 but is not valid UTF-16" in err
    (tmp_path / "fake.xls").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600)
    code, _, err, _ = run_ingest(cli, tmp_path, tmp_path / "fake.xls")
    assert code == 2 and "fake.xls: not a readable .xls workbook" in err


# --- encodings and formats offices export ------------------------------------------------------

BIG5_TEXT = "我家林權證被人冒名頂替，請求調查處理。"


def test_big5_csv_reads_as_big5(tmp_path, cli):
    path = write_lines(tmp_path / "big5.csv", ["id,date,name,content", f"T1,2026/11/2,陳大文,{BIG5_TEXT}",
                                                "T2,2026/11/2,林小明,違章建築影響通行"], encoding="cp950")
    code, out, _, run = run_ingest(cli, tmp_path, path)
    letters, quarantine, _, _ = outputs(run)
    assert code == 0 and quarantine.empty and "lines read as Big5: 2" in out
    assert letters[schema.CONTENT].tolist() == [BIG5_TEXT, "違章建築影響通行"]
    assert letters[schema.PETITIONER_NAME].tolist() == ["陳大文", "林小明"]


def test_gb18030_is_not_taken_for_big5(tmp_path):
    text = "柳溪镇白石村征地补偿款至今未发放，某公司拖欠农民工工资三个月。\n"
    path = tmp_path / "gb.csv"
    path.write_bytes(("id,content\n1," + text).encode("gb18030"))
    decoded = encodings.LineStream(path)
    assert decoded.encoding == "gb18030" and list(decoded)[1] == ("1," + text, "gb18030")


def test_excel_unicode_text_export_utf16_tab_separated(tmp_path, cli):
    text = "编号\t来信日期\t信访人\t内容\r\nU1\t2026/11/2\t张三\t\"路灯坏了，\"\"尽快\"\"修\"\r\nU2\t2026/11/3\t李四\t噪音扰民\r\n"
    path = tmp_path / "unicode.txt"
    path.write_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
    code, out, _, run = run_ingest(cli, tmp_path, path)
    letters, quarantine, _, _ = outputs(run)
    assert code == 0 and quarantine.empty and "read as UTF-16" in out
    assert letters[schema.CONTENT].tolist() == ['路灯坏了，"尽快"修', "噪音扰民"]
    assert letters[schema.RECEIVED_AT].dt.date.tolist() == [datetime.date(2026, 11, 2), datetime.date(2026, 11, 3)]


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_semicolon_tab_and_bar_delimiters(tmp_path, config, delimiter):
    path = write_lines(tmp_path / "d.csv", [delimiter.join(["编号", "信访人", "内容"]),
                                            delimiter.join(["D1", "张三", "路灯坏了，一直没人修,已经三个月"]),
                                            delimiter.join(["D2", "李四", '"含分隔符' + delimiter + '的内容"'])])
    letters, quarantine, *_ = ingest.ingest([path], config)
    assert not quarantine
    assert letters[schema.CONTENT].tolist() == ["路灯坏了，一直没人修,已经三个月", f"含分隔符{delimiter}的内容"]


def test_old_binary_xls(tmp_path, cli):
    xlwt = pytest.importorskip("xlwt", reason="xlwt (dev dependency) writes the .xls fixture")
    book = xlwt.Workbook(encoding="utf-8")
    sheet = book.add_sheet("来信")
    rows = [["编号", "登记日期", "信访人", "内容"], ["X1", datetime.datetime(2020, 5, 1), "张三", "柳溪镇征地补偿款未发放"],
            ["X2", 43952, "李四", "第二封"], [], ["X3", "2020/5/1", "王五", ""]]
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            is_date = isinstance(value, datetime.datetime)
            style = xlwt.easyxf(num_format_str="yyyy-mm-dd") if is_date else xlwt.Style.default_style
            sheet.write(r, c, value, style)
    book.save(str(tmp_path / "old.xls"))
    code, _, _, run = run_ingest(cli, tmp_path, tmp_path / "old.xls")
    letters, quarantine, _, _ = outputs(run)
    assert code == 0 and letters[schema.CONTENT].tolist() == ["柳溪镇征地补偿款未发放", "第二封"]
    assert letters[schema.RECEIVED_AT].dt.date.tolist() == [datetime.date(2020, 5, 1)] * 2
    assert letters[schema.SOURCE_ROW].tolist() == [2, 3] and quarantine[schema.SOURCE_ROW].tolist() == ["5"]


def test_hidden_files_in_a_folder_are_reported(tmp_path, cli):
    folder = tmp_path / "dump"
    folder.mkdir()
    write_lines(folder / "a.csv", [HEADER4, "G1,2026/11/2,王五,噪音扰民"])
    (folder / ".~lock.a.csv#").write_text("lock", encoding="utf-8")
    code, out, _, _ = run_ingest(cli, tmp_path, folder)
    assert code == 0 and "hidden files left out" in out and ".~lock.a.csv#" in out
