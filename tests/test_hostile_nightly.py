"""A whole nightly over a dump that mixes every hostile file an office or an attacker sends.

The folder holds: a CSV whose unclosed quote would swallow the next record, a field over the
csv module's limit, formulas, markup and control characters in ids and addressees, a Big5 CSV,
Excel's UTF-16 "Unicode text" export, a JSONL line nested 100,000 deep, pinyin-annotated
traditional text, a workbook that inflates past its cap, and ordinary letters that repeat one
another. The night must finish (exit 0), lose nothing (rows in = kept + quarantined), and write
no formula, raw markup or raw identifier into what people open.
"""
import json

import openpyxl
import pandas as pd

from pipeline import schema
from tests.config_files import write_config
from tests.test_hostile_ingest import write_lines, xlsx_bomb

HEADER = "编号,日期,信访人,受理机关,标题,内容"
MARKUP = "<img src=x onerror=alert(1)>"
ID_NUMBER, MOBILE = "43010219800101123X", "13912345678"
COMPLAINT = "金鼎村村民反映，村委会擅自拍卖集体土地，补偿款至今未发放，请求县里调查处理。"


def hostile_dump(folder):
    """Write the mixed dump; returns the number of records it holds."""
    folder.mkdir()
    records = [f"H{i},2026/11/{i + 1},张{i}明,县信访局,土地补偿款未发放,{COMPLAINT}第{i}次反映。" for i in range(4)]
    records += ['=HYPERLINK("http://x","y"),2026/11/5,李四,=1+1,标题,路灯坏了',
                f"@SUM(A1),2026/11/5,王五,{MARKUP},{MARKUP},噪音扰民 身份证{ID_NUMBER} 电话{MOBILE}",
                "C1,2026/11/6,赵\x00六,县\x0b信访局,标题,积水\x00严重",
                'Q1,2026/11/7,钱七,县信访局,标题,"他说""没钱"",拖着不办',
                "Q2,2026/11/7,孙八,县信访局,标题,路面塌陷",
                "L1,2026/11/8,周九,县信访局,标题," + "长" * 131_073]
    write_lines(folder / "mixed.csv", [HEADER, *records])
    write_lines(folder / "big5.csv", ["id,date,name,content", "B1,2026/11/9,陳大文,我家林權證被村委會扣押，請求歸還。"],
                encoding="big5")
    (folder / "unicode.txt").write_bytes(("\ufeff" + "\r\n".join([
        "编号\t日期\t信访人\t内容", "U1\t2026/11/10\t吴十\t總結(zǒng jié)是對(duì)過(guò)去工作的回顧"]) + "\r\n").encode("utf-16-le"))
    (folder / "deep.jsonl").write_text(
        json.dumps({"编号": "J1", "内容": "小区油烟扰民"}, ensure_ascii=False) + "\n"
        + '{"内容": ' + "[" * 100_000 + "]" * 100_000 + "}\n", encoding="utf-8")
    xlsx_bomb(folder / "bomb.xlsx", 70_000_000)
    return len(records) + 1 + 1 + 2  # big5, utf-16, two JSONL lines; the refused workbook holds no record read


def test_a_night_of_hostile_files_finishes_and_loses_nothing(tmp_path, cli):
    records = hostile_dump(tmp_path / "dump")
    config = write_config(tmp_path, lambda raw: raw["ingest"].update(max_xlsx_bytes=50_000_000))
    code, out, err = cli("--config", config, "nightly", tmp_path / "dump", "--home", tmp_path / "home")
    assert code == 0, err
    assert "Traceback" not in out + err
    run = next((tmp_path / "home").glob("*/report.xlsx")).parent
    stages = json.loads((run / "manifest.json").read_text(encoding="utf-8"))[schema.MANIFEST_STAGES]
    ingest = stages["ingest"]
    assert ingest["rows_in"] == records == ingest["rows_out"] + ingest["quarantined"]
    letters = pd.read_parquet(run / "deduped.parquet")
    kept = set(letters[schema.LETTER_ID])
    assert {"H0", "H3", "Q2", "B1", "U1", "J1", "C1"} <= kept and not {"Q1", "L1"} & kept
    assert "林权证" in letters.set_index(schema.LETTER_ID).at["B1", schema.CLEAN_TEXT]      # Big5 read as Big5
    assert "总结是对过去" in letters.set_index(schema.LETTER_ID).at["U1", schema.CLEAN_TEXT]  # pinyin gone
    quarantine = pd.read_csv(run / "quarantine.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert quarantine[schema.SOURCE_FILE].str.endswith("bomb.xlsx").any()                # refused, counted

    workbook = openpyxl.load_workbook(run / "report.xlsx")
    cells = [cell for sheet in workbook for row in sheet.iter_rows() for cell in row if cell.value is not None]
    assert [cell.coordinate for cell in cells if cell.data_type == "f"] == []
    for name in ("links.csv", "cases.csv", "quarantine.csv", "ingest_warnings.csv"):
        frame = pd.read_csv(run / name, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        values = frame.to_numpy().ravel()
        assert not [v for v in values if v[:1] in ("=", "+", "@", "\t", "\r")], name
    for name in ("report.md", "report.html", "summary.json", "links.csv", "cases.csv", "manifest.json"):
        text = (run / name).read_text(encoding="utf-8-sig")
        assert ID_NUMBER not in text and MOBILE not in text, name
        assert name.endswith((".csv", ".json")) or "<img" not in text, name   # markup is shown as text
    assert ID_NUMBER not in out + err and MOBILE not in out + err
