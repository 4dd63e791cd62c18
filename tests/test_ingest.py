"""Ingest: formats, encodings, the alias map, dates, and the quarantine invariant."""
import datetime
import json

import openpyxl
import pandas as pd
import pytest

from pipeline import ingest, schema
from pipeline.intake import fields, readers
from pipeline.errors import PetitionError

HEADER = ["信件编号", "来信日期", "信访形式", "信访人", "受理机关", "标题", "内容", "联名人数"]
ROWS = [
    ["XF-1", "2019/2/28 11:25:05", "来信", "郭××", "青山县柳溪镇人民政府", "征地补偿", "柳溪镇白石村征地补偿款至今未发放。", "3"],
    ["XF-2", "2019-02-28", "网上信访", "张某", "江南省信访局", "工资拖欠", "某公司拖欠农民工工资三个月。", ""],
    ["XF-3", "2019年2月28日", "来访", "李四", "江北市青山县人民法院", "", "判决生效两年仍执行不力。", ""],
]


def write_csv(path, header, rows, encoding="utf-8"):
    lines = [",".join(header)] + [",".join(f'"{v}"' if "," in v else v for v in row) for row in rows]
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def ingest_files(config, *paths):
    letters, quarantine, warnings, rows_in, _ = ingest.ingest(list(paths), config)
    assert rows_in == len(letters) + sum(q[schema.SOURCE_ROW] != "" for q in quarantine)
    return letters, quarantine, warnings


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
def test_csv_encodings_read_the_same(tmp_path, config, encoding):
    letters, quarantine, _ = ingest_files(config, write_csv(tmp_path / "dump.txt", HEADER, ROWS, encoding))
    assert not quarantine
    assert letters[schema.CONTENT].tolist() == [row[6] for row in ROWS]
    assert letters[schema.PETITIONER_NAME].tolist() == ["郭××", "张某", "李四"]


def test_every_format_and_a_folder(tmp_path, config):
    frame = pd.DataFrame(ROWS, columns=HEADER)
    write_csv(tmp_path / "a.csv", HEADER, ROWS)
    frame.to_parquet(tmp_path / "b.parquet")
    (tmp_path / "c.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False)
                                                for r in frame.to_dict("records")), encoding="utf-8")
    frame.to_excel(tmp_path / "d.xlsx", index=False)
    for name in ("a.csv", "b.parquet", "c.jsonl", "d.xlsx"):
        letters, quarantine, _ = ingest_files(config, tmp_path / name)
        assert letters[schema.LETTER_ID].tolist() == ["XF-1", "XF-2", "XF-3"], name
        assert letters[schema.RECEIVED_AT].dt.date.tolist() == [datetime.date(2019, 2, 28)] * 3, name
    letters, _, _ = ingest_files(config, tmp_path)
    # the same three letters in four files: the first file keeps the ids, the rest are repeats
    assert len(letters) == 3


def test_format_is_detected_from_content_not_extension(tmp_path):
    pd.DataFrame(ROWS, columns=HEADER).to_excel(tmp_path / "export.csv", index=False)
    assert readers.detect_format(tmp_path / "export.csv") == "xlsx"


def test_alias_map_covers_office_and_board_headers():
    mapping, unmapped = schema.map_columns(["留言编号", "留言用户", "留言主题", "留言时间", "留言详情", "反对数"])
    assert mapping == {"留言编号": "letter_id", "留言用户": "petitioner_name", "留言主题": "title",
                       "留言时间": "received_at", "留言详情": "content"}
    assert unmapped == ["反对数"]
    expected = {"信件编号": "letter_id", "来信日期": "received_at", "登记日期": "received_at",
                "信访人": "petitioner_name", "身份证号": "petitioner_id_number",
                "联系电话": "petitioner_phone", "住址": "address", "受理机关": "addressee",
                "标题": "title", "内容": "content", "正文": "content", "主要诉求": "content",
                "信访形式": "channel", "联名人数": "signatories", "来访人数": "visitors",
                " Letter_ID ": "letter_id"}
    for header, column in expected.items():
        assert schema.map_columns([header])[0] == {header: column}, header
    # two headers for one column: the first wins, the second is kept as extra
    assert schema.map_columns(["内容", "正文"]) == ({"内容": "content"}, ["正文"])


def test_date_forms(config):
    values = pd.Series(["2019/2/28 11:25:05", "2019-02-28", "2019年2月28日", "2019.2.28", "20190228",
                        43524, 43524.5, datetime.datetime(2019, 2, 28, 8), "", "下周一", "2019年13月45日"],
                       dtype=object)
    dates, bad = fields.parse_dates(values)
    assert dates[:8].dt.date.tolist() == [datetime.date(2019, 2, 28)] * 8
    assert dates[0] == pd.Timestamp("2019-02-28 11:25:05")
    assert dates[6] == pd.Timestamp("2019-02-28 12:00")
    assert dates[8:].isna().all()
    assert bad.tolist() == [False] * 9 + [True, True]


def test_recoverable_problems_keep_the_row_and_warn(tmp_path, config):
    rows = [["XF-1", "2019年13月45日", "传真", "王五", "县住建局", "物业", "物业乱收费。", "三人"]]
    letters, quarantine, warnings = ingest_files(config, write_csv(tmp_path / "w.csv", HEADER, rows))
    assert len(letters) == 1 and not quarantine
    assert pd.isna(letters.at[0, schema.RECEIVED_AT]) and letters.at[0, schema.CHANNEL] == ""
    assert {w[schema.COLUMN] for w in warnings} == {schema.RECEIVED_AT, schema.CHANNEL, schema.SIGNATORIES}
    assert all(w[schema.SOURCE_ROW] == 2 for w in warnings)


def test_channels_and_levels(tmp_path, config):
    letters, _, _ = ingest_files(config, write_csv(tmp_path / "a.csv", HEADER, ROWS))
    assert letters[schema.CHANNEL].tolist() == [schema.LETTER, schema.ONLINE, schema.VISIT]
    assert letters[schema.ADDRESSEE_LEVEL].tolist() == ["township", "province", "county"]
    assert letters[schema.SIGNATORIES].tolist()[0] == 3


def test_missing_ids_are_stable_hashes(tmp_path, config):
    rows = [row[1:] for row in ROWS]
    path = write_csv(tmp_path / "noid.csv", HEADER[1:], rows)
    first, _, _ = ingest_files(config, path)
    second, _, _ = ingest_files(config, path)
    assert first[schema.LETTER_ID].tolist() == second[schema.LETTER_ID].tolist()
    assert first[schema.LETTER_ID].str.match(r"^h[0-9a-f]{16}$").all()
    assert first[schema.LETTER_ID].nunique() == 3


def test_reused_id_with_other_content_is_quarantined(tmp_path, config):
    rows = ROWS + [["XF-1", "2019-03-01", "来信", "赵六", "县信访局", "别的事", "完全不同的内容。", ""],
                   list(ROWS[1])]
    letters, quarantine, _ = ingest_files(config, write_csv(tmp_path / "dup.csv", HEADER, rows))
    assert len(letters) == 3
    reasons = {q[schema.SOURCE_ROW]: q[schema.REASON] for q in quarantine}
    assert "different content" in reasons[5] and "dup.csv row 2" in reasons[5]
    assert "same text" in reasons[6]


def test_mixed_encodings_empty_text_and_broken_quoting(tmp_path, config):
    path = tmp_path / "broken.csv"
    good = ["XF-1,2019-02-28,来信,甲,县信访局,标题一,内容一", "XF-2,2019-02-28,来信,乙,县信访局,标题二,内容二"]
    parts = [",".join(HEADER[:7]).encode("utf-8"),
             good[0].encode("utf-8"),
             "XF-3,2019-02-28,来信,丙,县信访局,国标编码,这一行是GB18030".encode("gb18030"),
             b"XF-4,2019-02-28,\xff\xfe\xfa,x,x,x,x",                      # neither encoding
             "XF-5,2019-02-28,来信,丁,县信访局,,".encode("utf-8"),          # no text
             'XF-6,2019-02-28,来信,戊,县信访局,"标题没有闭合,内容'.encode("utf-8"),  # unclosed quote
             good[1].encode("utf-8"),
             "XF-7,2019-02-28,来信,己,县信访局,多了,一个,字段".encode("utf-8")]
    path.write_bytes(b"\n".join(parts) + b"\n")
    letters, quarantine, _ = ingest_files(config, path)
    assert letters[schema.LETTER_ID].tolist() == ["XF-1", "XF-3", "XF-2"]
    assert letters.at[1, schema.CONTENT] == "这一行是GB18030"
    reasons = {q[schema.SOURCE_ROW]: q[schema.REASON] for q in quarantine}
    assert set(reasons) == {4, 5, 6, 8}
    assert "undecodable" in reasons[4] and "no text" in reasons[5]
    assert "unclosed quote" in reasons[6] and "found 8" in reasons[8]
    assert all(q[schema.SOURCE_FILE] == str(path) for q in quarantine)


def test_truncated_xlsx(tmp_path, config, cli):
    good = tmp_path / "in" / "good.xlsx"
    good.parent.mkdir()
    pd.DataFrame(ROWS, columns=HEADER).to_excel(good, index=False)
    data = good.read_bytes()
    (tmp_path / "in" / "truncated.xlsx").write_bytes(data[: len(data) // 2])
    with pytest.raises(PetitionError, match="truncated.xlsx: not a readable XLSX"):
        ingest.ingest([tmp_path / "in" / "truncated.xlsx"], config)
    # in a folder, the bad file is quarantined as a whole and the good one still loads
    code, out, _ = cli("ingest", tmp_path / "in", "--run", tmp_path / "run")
    assert code == 0 and "3 rows in, 3 out, 0 quarantined" in out
    quarantine = pd.read_csv(tmp_path / "run" / "quarantine.csv", encoding="utf-8-sig")
    assert quarantine[schema.REASON].str.contains("truncated").tolist() == [True]


def test_xlsx_dates_serials_and_row_numbers(tmp_path, config):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["编号", "登记日期", "正文"])
    sheet.append(["A", datetime.datetime(2020, 5, 1, 9, 30), "第一封"])
    sheet.append([None, None, None])                       # blank row: not a letter
    sheet.append(["B", 43952, "第二封"])                   # Excel serial for 2020-05-01
    sheet.append(["C", "2020/5/1 9:30:00", ""])            # no text
    book.save(tmp_path / "s.xlsx")
    letters, quarantine, _ = ingest_files(config, tmp_path / "s.xlsx")
    assert letters[schema.RECEIVED_AT].dt.date.tolist() == [datetime.date(2020, 5, 1)] * 2
    assert letters[schema.SOURCE_ROW].tolist() == [2, 4]
    assert [q[schema.SOURCE_ROW] for q in quarantine] == [5]


def test_wrong_columns_and_empty_files_give_clear_errors(tmp_path, cli):
    write_csv(tmp_path / "wrong.csv", ["a", "b"], [["1", "2"]])
    code, _, err = cli("ingest", tmp_path / "wrong.csv", "--run", tmp_path / "r")
    assert code == 2 and "wrong.csv: no text column" in err and "Traceback" not in err
    (tmp_path / "empty.csv").write_bytes(b"")
    code, _, err = cli("ingest", tmp_path / "empty.csv", "--run", tmp_path / "r")
    assert code == 2 and "empty.csv: empty file" in err
    code, _, err = cli("ingest", tmp_path / "missing.csv", "--run", tmp_path / "r")
    assert code == 2 and "no such file" in err


def test_board_export_keeps_every_row(board_run):
    letters = pd.read_parquet(board_run / "ingested.parquet")
    assert len(letters) == 4314
    assert letters[schema.LETTER_ID].is_unique
    assert letters[schema.RECEIVED_AT].notna().all()       # strings and Excel datetimes both read
    assert (letters[schema.CONTENT] != "").all() and (letters[schema.TITLE] != "").all()
    assert (letters[schema.PETITIONER_NAME] != "").all() and (letters[schema.CHANNEL] == "online").all()
    assert set(json.loads(letters.at[0, schema.EXTRA])) == {"反对数", "点赞数"}
    manifest = json.loads((board_run / "manifest.json").read_text(encoding="utf-8"))
    assert manifest[schema.MANIFEST_STAGES]["ingest"]["rows_out"] == 4314


@pytest.mark.parametrize("body, level", [
    ("青山县柳溪镇人民政府", "township"), ("江北市青山县人民法院", "county"), ("国家信访局", "national"),
    ("江南省信访局", "province"), ("青山县市场监督管理局", "county"), ("江北市城市管理局", "city"),
    ("青山县住房和城乡建设局", "county"), ("城关街道办事处", "township"), ("县乡村振兴局", "county"),
    ("某某物业公司", ""),
])
def test_level_inferred_from_the_last_unit_in_the_name(config, body, level):
    assert fields.infer_level(pd.Series([body]), config.ingest.level_patterns)[0] == level


def test_sample_levels_match_the_bodies(config):
    from tests.conftest import sample_path
    dump = pd.read_csv(sample_path(), dtype=str, encoding="utf-8-sig", keep_default_na=False)
    inferred = fields.infer_level(dump["受理机关"], config.ingest.level_patterns)
    assert (inferred == dump["受理层级"]).all()
