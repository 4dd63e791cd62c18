"""Privacy (README: Privacy): identifiers and names in every written form are masked, and a
nightly over a hostile dump writes raw names and identifiers only into the register data.

Register data: ``ingested.parquet``, the archive's and the run's letter-as-received columns
(names, ID and phone numbers, addresses, title, content, original text, extra fields), the
quarantine's ``raw`` row, and the dedupe index's internal name lists (``index/*/letters.parquet``:
matching uses names; its ``links.parquet`` is evidence and is scanned). Everything else the run
writes — CSV, JSON, Markdown, HTML, XLSX cells, the other Parquet columns, binary arrays, and
what it prints — is scanned for every planted raw value.
"""
import csv
import random
import re

import openpyxl
import pandas as pd
import pytest

from pipeline import privacy, schema
from pipeline.privacy import mask_identifiers

REGISTER_COLUMNS = {*schema.PETITIONER_COLUMNS, schema.ORIGINAL_TEXT, schema.TITLE, schema.CONTENT, schema.EXTRA}

# (written form, what it must become)
IDENTIFIERS = [
    ("339021195001222518", "[身份证号]"),        # 18 digits, valid checksum
    ("339021195001222519", "[身份证号]"),        # bad checksum: a register typo, still an ID
    ("43010319850612001x", "[身份证号]"),
    ("430103 19850612 0018", "[身份证号]"),
    ("430103850612001", "[身份证号]"),           # 15-digit (old) number
    ("6222021234567890123", "[银行卡号]"),
    ("6222 0212 3456 7890 123", "[银行卡号]"),
    ("6217-0012-3456-7890", "[银行卡号]"),
    ("0731-84567890", "[电话]"),
    ("(0731)84567890", "[电话]"),
    ("（0731）84567890", "[电话]"),
    ("0731 84567890", "[电话]"),
    ("010-62345678-801", "[电话]"),
    ("zhang.san_01@163.com", "[邮箱]"),
    ("13812345678@qq.com", "[邮箱]"),
    ("13712345678", "[手机号]"),
    ("+86 13712345670", "[手机号]"),
    ("+8613712345671", "[手机号]"),
    ("86-13712345672", "[手机号]"),
    ("0086 13712345673", "[手机号]"),
    ("138 1234 5678", "[手机号]"),
    ("139-8765-4321", "[手机号]"),
]


@pytest.mark.parametrize("raw, mask", IDENTIFIERS)
def test_every_written_form_is_masked(raw, mask):
    assert mask_identifiers(f"联系我:{raw},谢谢") == f"联系我:{mask},谢谢"
    assert mask_identifiers(f"号码{raw}。") == f"号码{mask}。"


def test_numbers_after_a_cue_and_numbers_that_are_no_identifiers():
    assert mask_identifiers("电话84567890,座机：6543210") == "电话[电话],座机：[电话]"
    assert mask_identifiers("身份证号43010319850612001X2019年5月") == "身份证号[身份证号]2019年5月"
    kept = "2019年12月31日,补偿款120000元,共1234户,第20190312号文件,面积3.5亩,12345热线,400-800-1234"
    assert mask_identifiers(kept) == kept


def test_a_text_no_number_pattern_can_match_is_skipped_soundly():
    """``mask_identifiers`` returns a text without a ``NUMBER_LIKE`` run as it is: what each
    number pattern matches must hold such a run, in the written forms and in random strings
    of digits, separators and cue words (each pattern matches some)."""
    rng = random.Random(0)
    other = list("  --()（）+转xX８") + ["电话", "手机", "联系", "座机", "固话", "身份证号", "86"]
    texts = ["".join(rng.choice("0123456789") if rng.random() < 0.85 else rng.choice(other)
                     for _ in range(rng.randint(1, 40))) for _ in range(100_000)]
    for pattern in (privacy.ID_NUMBER, privacy.BANK_CARD, privacy.MOBILE_AFTER_CUE, privacy.MOBILE,
                    privacy.LANDLINE, privacy.LANDLINE_AFTER_CUE):
        matched = [match.group(0) for text in texts + [raw for raw, _ in IDENTIFIERS]
                   for match in pattern.finditer(text)]
        assert len(matched) > 20, pattern.pattern
        assert all(privacy.NUMBER_LIKE.search(number) for number in matched), pattern.pattern


# --- the hostile dump ---------------------------------------------------------------------------

PEOPLE = ["邹国强", "雷伟明", "欧阳倩广", "谭明辉", "覃君君", "蒋诚先"]
WRITTEN = [raw for raw, _ in IDENTIFIERS]
# people named in the text without a cue, registered nowhere: same-matter evidence (links,
# cases, reports) must not carry them; the letters' working text may.
OFFICIALS = ["覃海波", "龙建勇"]
MATTERS = [
    "村里修路占了我家三亩承包地,至今没有补偿,村支书覃海波说钱已经发给镇里了。",
    "小区楼下烧烤店每天营业到凌晨两点,油烟和噪音让老人孩子无法休息,店主龙建勇不理睬。",
    "原单位拖欠我工资八个月共计四万六千元,劳动监察大队受理后一直没有结果。",
]
FOR_PEOPLE = (".csv", ".json", ".md", ".html", ".xlsx")
HEADER = ["信件编号", "来信日期", "信访形式", "信访人", "身份证号", "联系电话", "住址", "受理机关", "受理层级",
          "标题", "内容", "联名人数", "来访人数"]


def hostile_rows():
    """~30 letters: names in the name column and after cue words in the text, every written
    form of identifier, some letters repeated (resends, one letter to two offices) so links
    and cases exist."""
    rows = []
    for i in range(30):
        person = PEOPLE[i % len(PEOPLE)]
        number, other = WRITTEN[i % len(WRITTEN)], WRITTEN[(i + 7) % len(WRITTEN)]
        matter = MATTERS[i % len(MATTERS)]
        cue = ["我叫", "本人", "信访人：", "反映人", "联系人：", "投诉人"][i % 6]
        content = (f"{cue}{person},身份证号{WRITTEN[(i + 3) % 5]},电话{number}。{matter}"
                   f"联系方式{other},邮箱{WRITTEN[13 + i % 2]}。{person}敬上")
        id_number = ["339021195001222519", "430103850612001", "43010319850612", ""][i % 4]  # the 3rd: malformed
        phone = ["+86 137 1234 5670", "0731-84567890", "138 1234 5678", "13912345"][i % 4]
        rows.append([f"H{i:03d}", f"2026-11-{1 + i % 20:02d}", "来信", person, id_number, phone,
                     f"青山县柳溪镇白石村{i % 5 + 1}组", ["青山县信访局", "江北市信访局"][i % 2],
                     ["county", "city"][i % 2], f"{person}反映{matter[:8]}", content, "", "1"])
    return rows


def planted(rows):
    values = set(PEOPLE) | set(WRITTEN)
    for row in rows:
        values.update(v for v in (row[4], row[5]) if v)
    digits = {re.sub(r"\D", "", v) for v in values if len(re.sub(r"\D", "", v)) >= 8}
    return sorted(values | digits)


def written_text(path):
    """The text of an output file a person or a program may read, without register data."""
    name = path.name
    if name.endswith(".parquet"):
        frame = pd.read_parquet(path)
        return frame.drop(columns=[c for c in frame.columns if c in REGISTER_COLUMNS]).astype(str).to_csv()
    if name == "quarantine.csv":
        with path.open(encoding="utf-8-sig", newline="") as handle:
            return "\n".join(",".join(v for k, v in row.items() if k != schema.RAW)
                             for row in csv.DictReader(handle))
    if name.endswith(".xlsx"):
        book = openpyxl.load_workbook(path)
        return "\n".join(str(cell.value) for sheet in book for row in sheet.iter_rows() for cell in row
                         if cell.value is not None)
    return path.read_bytes().decode("utf-8", errors="replace")


def is_register(path, home):
    relative = path.relative_to(home).as_posix()
    return (path.name == "ingested.parquet" or path.name == ".lock"
            or re.fullmatch(r"index/[^/]+/letters\.parquet", relative) is not None)


def test_nightly_on_a_hostile_dump_writes_no_raw_name_or_identifier(tmp_path, cli):
    dump, home = tmp_path / "hostile.csv", tmp_path / "home"
    rows = hostile_rows()
    rows += [[f"R{i}", *row[1:]] for i, row in enumerate(rows[:6])]       # resent letters
    rows.append(["Q1", "不是日期", "来信", PEOPLE[0], WRITTEN[1], WRITTEN[16], "白石村", "青山县信访局",
                 "county", "", "", "", ""])                              # quarantined
    # identifiers in malformed fields: echoed by ingest_warnings.csv, masked
    rows[7][1], rows[8][11], rows[9][12], rows[10][8] = WRITTEN[1], WRITTEN[20], WRITTEN[8], WRITTEN[13]
    with dump.open("w", encoding="utf-8-sig", newline="") as handle:
        csv.writer(handle).writerows([HEADER, *rows])
    code, out, err = cli("nightly", dump, "--home", home)
    assert code == 0, err[-2000:]
    run = next(p for p in home.iterdir() if (p / "links.csv").exists())
    assert len(pd.read_csv(run / "links.csv")) > 0
    assert pd.read_parquet(run / "ingested.parquet")[schema.PETITIONER_NAME].isin(PEOPLE).all()  # the plant took
    assert len(pd.read_csv(run / "ingest_warnings.csv")) >= 5

    outputs = {"stdout": out, "stderr": err}
    outputs.update({str(p.relative_to(home)): written_text(p) for p in sorted(home.rglob("*"))
                    if p.is_file() and not is_register(p, home)})
    assert any(name.endswith("report.xlsx") for name in outputs) and len(outputs) > 15
    leaks = {(where, value) for where, text in outputs.items() for value in planted(rows) if value in text}
    leaks |= {(where, name) for where, text in outputs.items() for name in OFFICIALS
              if name in text and (where.endswith(FOR_PEOPLE) or where.startswith("std") or "links" in where)}
    assert not leaks, sorted(leaks)[:20]
