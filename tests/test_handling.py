"""Handling over time: status, reply and closing columns read at ingest, the status history
across dumps (latest status, no double counting), 回流, the report's 办结率 / 反馈率 / 积案 /
超期 figures (checked by hand), the board's reply rate, and the clerk's tonight.xlsx."""
import json
import re

import numpy as np
import openpyxl
import pandas as pd
import pytest

from pipeline import schema
from pipeline.reporting import tables
from pipeline.reporting.periods import report_period
from pipeline.reporting.tonight import EARLIER_COLUMN, RELATION_ZH, REOPENED_COLUMN
from report_fixtures import pipeline_run, synthetic_letters, write_run
from tests.conftest import sample_path
from tests.test_dedupe import COLUMNS, LETTERS, write_dump

HANDLING = ["办理状态", "办结日期", "责任单位", "答复意见"]
BY_ID = {row[0]: row for row in LETTERS}


def read_sheet(path, title):
    """A sheet of an xlsx written by ``render.add_table_sheet`` as (note, DataFrame)."""
    rows = list(openpyxl.load_workbook(path, read_only=True)[title].iter_rows(values_only=True))
    header = [c for c in rows[3] if c is not None]
    return rows[1][0], pd.DataFrame([r[:len(header)] for r in rows[4:]], columns=header)


def handling_sheet(path):
    return read_sheet(path, "办理情况（办结率、反馈率）")[1].set_index("指标")["数值"]


# --- ingest ------------------------------------------------------------------------------------

def test_ingest_reads_handling_columns_and_keeps_unknown_status(tmp_path, cli):
    rows = [("A1", "2024-01-05", "路灯不亮", "小区路灯坏了三个月", "已办结", "2024年1月20日", "城管局", "已修复", "2024/1/19", "满意"),
            ("A2", "2024-01-06", "工地噪音", "工地夜间施工", "办理中", "", "环保局", "", "", ""),
            ("A3", "2024-01-07", "拖欠工资", "老板拖欠工资", "待研究", "", "人社局", "", "", ""),
            ("A4", "2024-01-08", "拖欠工资二", "老板拖欠工资两个月", "", "不是日期", "", "已转人社局", "", ""),
            ("A5", "2024-01-09", "占道经营", "门口占道经营", "不予受理", "", "", "", "", "")]
    headers = ["编号", "登记日期", "标题", "内容", "办理状态", "办结时间", "承办单位", "回复意见", "回复时间", "评价"]
    path = tmp_path / "register.csv"
    pd.DataFrame(rows, columns=headers).to_csv(path, index=False, encoding="utf-8-sig")
    code, _, err = cli("ingest", path, "--run", tmp_path / "run")
    assert code == 0, err
    letters = pd.read_parquet(tmp_path / "run" / "ingested.parquet").set_index(schema.LETTER_ID)
    assert letters[schema.STATUS].to_dict() == {"A1": "closed", "A2": "in_progress", "A3": "待研究",
                                                "A4": "accepted", "A5": "not_accepted"}
    assert letters.at["A1", schema.CLOSED_AT] == pd.Timestamp("2024-01-20")
    assert letters.at["A1", schema.REPLIED_AT] == pd.Timestamp("2024-01-19")
    assert (letters.at["A1", schema.HANDLING_BODY], letters.at["A1", schema.SATISFACTION]) == ("城管局", "满意")
    assert letters.at["A4", schema.REPLY] == "已转人社局" and pd.isna(letters.at["A4", schema.CLOSED_AT])
    assert (letters[schema.EXTRA] == "").all()          # every handling header was recognised
    warnings = pd.read_csv(tmp_path / "run" / "ingest_warnings.csv", encoding="utf-8-sig", dtype=str)
    problems = dict(zip(warnings[schema.LETTER_ID], warnings[schema.COLUMN]))
    assert problems == {"A3": schema.STATUS, "A4": schema.CLOSED_AT}

    plain = tmp_path / "plain.csv"
    pd.DataFrame(rows, columns=headers).iloc[:, :4].to_csv(plain, index=False, encoding="utf-8-sig")
    assert cli("ingest", plain, "--run", tmp_path / "plain")[0] == 0
    untracked = pd.read_parquet(tmp_path / "plain" / "ingested.parquet")
    assert (untracked[schema.STATUS] == "").all() and untracked[schema.CLOSED_AT].isna().all()


# --- two dumps through nightly: status over time and 回流 -------------------------------------

def dump(path, rows):
    """Hand-written letters (tests.test_dedupe) with handling columns: rows of (id, status,
    closing date, handling body, reply)."""
    return write_dump(path, [BY_ID[letter] + tuple(rest) for letter, *rest in rows], COLUMNS + HANDLING)


@pytest.fixture(scope="module")
def two_nights(tmp_path_factory, config):
    """A home after two nightly runs: L1 closed on 2024-03-10 in the first dump; in the
    second, L6 (2024-03-20) on L1's matter, L4 (2024-04-20) after L6 (still open), L8 on L7's
    open matter, and L9 re-exported, now closed."""
    from pipeline.nightly import run_nightly
    base = tmp_path_factory.mktemp("nights")
    first = dump(base / "first.csv", [("L1", "已办结", "2024-03-10", "柳溪镇人民政府", "已补发"),
                                      ("L7", "办理中", "", "城管局", ""),
                                      ("L9", "受理", "", "人社局", "")])
    second = dump(base / "second.csv", [("L4", "", "", "", ""), ("L8", "", "", "", ""),
                                        ("L9", "已办结", "2024-04-01", "人社局", "已支付"),
                                        ("L6", "", "", "柳溪镇人民政府", "")])
    home = base / "home"
    runs = [run_nightly([path], home, config, today=day) for path, day in ((first, "2024-03-16"),
                                                                            (second, "2024-04-21"))]
    return home, runs


def test_a_new_letter_on_a_closed_matter_is_reopened(two_nights):
    home, (first, second) = two_nights
    letters = pd.read_parquet(second / "deduped.parquet").set_index(schema.LETTER_ID)
    assert letters.at["L6", schema.CASE_ID] == letters.at["L4", schema.CASE_ID] == "L1"
    assert letters[schema.REOPENED].to_dict() == {"L4": False, "L8": False, "L9": False, "L6": True}
    cases = pd.read_csv(second / "cases.csv", encoding="utf-8-sig", dtype=str).set_index(schema.CASE_ID)
    assert cases.at["L1", schema.CASE_STATUS] == schema.CASE_REOPENED
    assert cases.at["L7", schema.CASE_STATUS] == schema.CASE_CONTINUES
    summary = json.loads((second / "summary.json").read_text(encoding="utf-8"))
    assert [v for k, v in summary.items() if k.startswith("回流")] == [1]
    assert not pd.read_parquet(first / "deduped.parquet")[schema.REOPENED].any()
    reopened = read_sheet(second / "report.xlsx", "回流（已办结事项再次来信）")[1]
    assert reopened[["事项编号", "本期回流件次"]].fillna("").values.tolist() == [["L1", 1], ["", 1]]
    assert "回流）1件，涉及1个事项" in (second / "report.md").read_text(encoding="utf-8")


def test_a_letter_exported_again_with_a_new_status_counts_once(two_nights):
    home, (first, second) = two_nights
    history = pd.read_parquet(home / "archive" / "status.parquet")
    l9 = history[history[schema.LETTER_ID] == "L9"]
    assert l9[schema.STATUS].tolist() == [schema.ACCEPTED, schema.CLOSED]
    assert l9[schema.STATUS_RUN].tolist() == [first.name, second.name]
    # a letter seen once, and the second dump's letters without a change, have one row each
    assert history.groupby(schema.LETTER_ID).size().drop("L9").eq(1).all()
    # the report of March 2024 counts L9 once, received 2024-03-15, open at the month's end
    # (closed on 2024-04-01): of L1 L6 L7 L8 L9, only L1 is closed
    figures = handling_sheet(second / "report.xlsx")
    assert (figures["本期受理件次"], figures["其中：有办理信息的"], figures["已办结"]) == (5, 5, 1)
    assert figures["办结率(%)"] == 20.0
    overview = read_sheet(second / "report.xlsx", "总体情况")[1].set_index("指标")
    assert overview.at["受理件次", "本期"] == 5


def test_a_dump_without_changes_adds_no_history(two_nights, tmp_path):
    from pipeline.status import StatusHistory
    home, (_, second) = two_nights
    history = StatusHistory.of_home(home)
    again = pd.read_parquet(second / "deduped.parquet")
    copy = StatusHistory(tmp_path / "status.parquet")  # the home's file stays as the other tests read it
    copy.path.write_bytes(history.path.read_bytes())
    assert len(copy.record(again, np.zeros(len(again), bool), "again")) == 0
    changed = again.assign(**{schema.STATUS: np.where(again[schema.LETTER_ID] == "L8", schema.CLOSED,
                                                      again[schema.STATUS])})
    added = copy.record(changed, np.zeros(len(again), bool), "later")
    assert added[schema.LETTER_ID].tolist() == ["L8"] and copy.latest().at["L8", schema.STATUS] == schema.CLOSED


def test_tonight_lists_the_letters_on_earlier_matters(two_nights):
    _, (_, second) = two_nights
    note, sheet = read_sheet(second / "tonight.xlsx", "今晚的重复来信")
    assert sheet["信件编号"].tolist() == ["L6", "L4", "L8"]      # 回流 first, then by case and date
    assert sheet[REOPENED_COLUMN].tolist() == ["是", "否", "否"]
    row = sheet.set_index("信件编号").loc["L4"]
    assert row["关联来信编号"] == "L1" and row["事项累计件数"] == 3
    assert row[EARLIER_COLUMN].splitlines() == ["2024-03-01 L1 反映金鼎村征地补偿款被拖欠",
                                                "2024-03-20 L6 金鼎村村民联名反映补偿款去向"]
    assert "回流 1 件" in note


# --- report figures by hand --------------------------------------------------------------------

def with_handling(letters, seed=3):
    """``letters`` with statuses, closing and reply dates and handling bodies drawn at random;
    a tenth without any (an export without handling columns)."""
    rng = np.random.default_rng(seed)
    n = len(letters)
    status = rng.choice([schema.ACCEPTED, schema.IN_PROGRESS, schema.CLOSED, schema.NOT_ACCEPTED, schema.ANSWERED],
                        size=n, p=[0.2, 0.2, 0.45, 0.05, 0.1])
    received = letters[schema.RECEIVED_AT]
    closed_at = received + pd.to_timedelta(rng.integers(1, 45, n), unit="D")
    replied_at = received + pd.to_timedelta(rng.integers(1, 40, n), unit="D")
    replied = np.isin(status, [schema.CLOSED, schema.ANSWERED])
    untracked = rng.random(n) < 0.1
    status = np.where(untracked, "", status)
    return letters.assign(**{
        schema.STATUS: status,
        schema.CLOSED_AT: closed_at.where(status == schema.CLOSED),
        schema.REPLIED_AT: replied_at.where(replied & ~untracked),
        schema.REPLY: np.where(replied & ~untracked, "已答复", ""),
        schema.HANDLING_BODY: np.where(untracked, "", rng.choice(["城管局", "人社局", "柳溪镇人民政府"], size=n)),
        schema.SATISFACTION: ""})


@pytest.fixture(scope="module")
def handled(tmp_path_factory):
    from pipeline.cli import main
    letters = with_handling(synthetic_letters(n=1500, seed=11))
    run = tmp_path_factory.mktemp("handled")
    write_run(run, letters)
    assert main(["report", "--run", str(run), "--end", "2024-11-30"]) == 0
    return run, letters


def test_rates_and_backlog_equal_a_count_by_hand(handled):
    run, letters = handled
    end = pd.Timestamp("2024-12-01")
    tracked = letters[letters[schema.STATUS] != ""]
    now = tracked[tracked[schema.RECEIVED_AT] >= "2024-11-01"]
    now = now[now[schema.RECEIVED_AT] < end]
    closed = now[schema.CLOSED_AT] < end                        # every closed letter has its date
    refused = now[schema.STATUS] == schema.NOT_ACCEPTED
    answered = closed | now[schema.STATUS].isin([schema.ANSWERED, schema.NOT_ACCEPTED]) | (now[schema.REPLIED_AT] < end)
    figures = handling_sheet(run / "report.xlsx")
    assert figures["其中：有办理信息的"] == len(now) > 50
    assert figures["已办结"] == closed.sum() and figures["不予受理"] == refused.sum()
    assert figures["办结率(%)"] == round(100 * closed.sum() / (~refused).sum(), 1)
    assert figures["反馈率(%)"] == round(100 * answered.sum() / len(now), 1)
    shut = now[closed]
    assert len(shut) > 5 and figures["办结用时中位数（天）"] == round((shut[schema.CLOSED_AT] - shut[schema.RECEIVED_AT]).dt.days.median(), 1)

    before = tracked[tracked[schema.RECEIVED_AT] < end]
    still_open = before[~(before[schema.CLOSED_AT] < end) & (before[schema.STATUS] != schema.NOT_ACCEPTED)]
    age = (end - still_open[schema.RECEIVED_AT]).dt.days
    backlog = read_sheet(run / "report.xlsx", "积案与超期")[1].set_index("积案账龄（自登记起）")["件数"]
    assert backlog["不满30天"] == (age < 30).sum() and backlog["30–60天"] == ((age >= 30) & (age < 60)).sum()
    assert backlog["60–90天"] == ((age >= 60) & (age < 90)).sum() and backlog["90天及以上"] == (age >= 90).sum()
    assert backlog["超期（超过60天未办结）"] == (age > 60).sum() and backlog[f"积案{tables.TOTAL_MARK}"] == len(age)

    bodies = read_sheet(run / "report.xlsx", "责任单位办理情况（按超期件排名）")[1]
    overdue = still_open[age > 60].groupby(schema.HANDLING_BODY).size()
    assert set(bodies["责任单位"]) == set(tracked[schema.HANDLING_BODY])
    assert dict(zip(bodies["责任单位"], bodies["超期"])) == {body: overdue.get(body, 0) for body in bodies["责任单位"]}
    assert bodies["超期"].is_monotonic_decreasing and bodies["排名"].tolist() == list(range(1, len(bodies) + 1))
    text = (run / "report.md").read_text(encoding="utf-8")
    assert f"办结率{figures['办结率(%)']:.1f}%" in text and f"超期件{(age > 60).sum()}件" in text


def test_without_handling_columns_each_section_says_so_in_one_line(tmp_path, cli):
    write_run(tmp_path / "run", synthetic_letters(n=300, seed=2))
    assert cli("report", "--run", tmp_path / "run", "--end", "2024-11-30")[0] == 0
    for title in ("办理情况（办结率、反馈率）", "积案与超期", "责任单位办理情况（按超期件排名）"):
        note, frame = read_sheet(tmp_path / "run" / "report.xlsx", title)
        assert frame.values.tolist() == [[tables.NO_STATUS]] and note == tables.NO_STATUS
    assert read_sheet(tmp_path / "run" / "report.xlsx", "回流（已办结事项再次来信）")[1].values.tolist() == [[tables.NO_CLOSING]]
    assert tables.NO_STATUS in (tmp_path / "run" / "report.md").read_text(encoding="utf-8")


# --- the board: its messages with reply dates generated for the test -----------------------

def test_board_report_shows_reply_rate_and_days(board, tmp_path, cli):
    messages = pd.read_excel(board / "messages.xlsx", engine="openpyxl", dtype=str).head(1200)
    assert "答复时间" not in messages.columns     # this export has none: generate them
    rng = np.random.default_rng(5)
    received = pd.to_datetime(messages["留言时间"], format="mixed")
    replied = received + pd.to_timedelta(rng.integers(0, 60, len(messages)), unit="D")
    messages["答复时间"] = replied.dt.strftime("%Y/%m/%d %H:%M").where(rng.random(len(messages)) < 0.7, "")
    dump = tmp_path / "board.csv"
    messages.to_csv(dump, index=False, encoding="utf-8-sig")
    code, out, err = cli("nightly", dump, "--home", tmp_path / "home", "--channel", "online", "--period", "year")
    assert code == 0, err
    run = next((tmp_path / "home").glob("*/report.xlsx")).parent
    letters = pd.read_parquet(run / "deduped.parquet")
    period = report_period(letters[schema.RECEIVED_AT], "year")
    start, end = period.start, period.end
    now = letters[(letters[schema.RECEIVED_AT] >= start) & (letters[schema.RECEIVED_AT] < end)]
    answered = now[now[schema.REPLIED_AT] < end]
    figures = handling_sheet(run / "report.xlsx")
    assert figures["其中：有办理信息的"] == len(now) > 500
    assert figures["反馈率(%)"] == round(100 * len(answered) / len(now), 1)
    days = (answered[schema.REPLIED_AT] - answered[schema.RECEIVED_AT]).dt.days.median()
    assert figures["答复用时中位数（天）"] == round(days, 1)
    assert figures["办结率(%)"] == tables.NO_CLOSING_RATE       # replies alone say nothing of closing
    text = (run / "report.md").read_text(encoding="utf-8")
    assert f"反馈率{figures['反馈率(%)']:.1f}%" in text and f"答复用时中位数{days:.1f}天" in text


# --- the clerk's sheet of the bundled sample, row by row against links.csv ------------------------

def test_tonight_rows_match_links_and_cases(tmp_path_factory):
    run, _, _, kind = pipeline_run(tmp_path_factory)
    if kind == "synthetic":
        pytest.skip("the bundled sample is not there: no dedupe run to check")
    deduped = pd.read_parquet(run / "deduped.parquet")
    links = pd.read_csv(run / "links.csv", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    cases = pd.read_csv(run / "cases.csv", encoding="utf-8-sig", dtype={schema.CASE_ID: str, schema.CASE_LABEL: str},
                        keep_default_na=False).set_index(schema.CASE_ID)
    _, sheet = read_sheet(run / "tonight.xlsx", "今晚的重复来信")
    joining = deduped[deduped[schema.DUPLICATE_OF] != ""].set_index(schema.LETTER_ID)
    assert sorted(sheet["信件编号"]) == sorted(joining.index) and len(sheet) > 100
    pairs = {frozenset(p) for p in zip(links[schema.LETTER_A], links[schema.LETTER_B], links[schema.RELATION])}
    linked = 0
    for row in sheet.itertuples(index=False):
        letter, earlier = row[4], row[9]
        assert earlier == joining.at[letter, schema.DUPLICATE_OF] and row[1] == joining.at[letter, schema.CASE_ID]
        assert row[3] == cases.at[row[1], schema.CASE_LETTERS] and (row[2] or "") == cases.at[row[1], schema.CASE_LABEL]
        relation = joining.at[letter, schema.RELATION]
        assert row[8] == RELATION_ZH[relation]
        # every relation but same_matter is a link; a same_matter letter may be joined by the
        # case's mean P over its scored pairs instead (dedup.cases.assign_cases)
        if frozenset((letter, earlier, relation)) in pairs:
            linked += 1
        else:
            assert relation in (schema.SAME_MATTER, schema.DECIDED_SAME), (letter, earlier, relation)
        # the case's first letter is among the earlier ones (the linked one may have come later)
        assert f" {row[1]} " in f"\n{row[10]}\n".replace("\n", " ")
    assert linked > len(sheet) / 2      # most letters join their matter through a link of their own
    assert set(sheet[REOPENED_COLUMN]) == {"否"}          # the sample carries no handling columns
    order = sheet.assign(first=sheet["事项编号"].map(pd.to_datetime(cases[schema.CASE_FIRST_DATE])))
    assert order["first"].is_monotonic_increasing


def test_titles_are_masked_alike_in_forked_workers(config):
    """Case labels and the clerk's titles, masked in two forked workers, are those one process
    masks, in the same order: the bundled sample's titles, with its registered names."""
    from pipeline.dedup.cases import Labeler, raw_names
    from pipeline.dedupe import masked_titles
    dump = pd.read_csv(sample_path(), encoding="utf-8-sig", dtype=str, keep_default_na=False)
    titles = pd.DataFrame({schema.LETTER_ID: dump["信件编号"], schema.TITLE: dump["标题"],
                           schema.PETITIONER_NAME: dump["信访人"]})
    dates = pd.to_datetime(dump["来信日期"], format="mixed", errors="coerce")
    letters = titles.assign(**{schema.CASE_ID: [f"C{i // 3}" for i in range(len(titles))], schema.RECEIVED_AT: dates})
    labeler, everyone = Labeler.from_config(config), raw_names(titles[schema.PETITIONER_NAME])
    labels = labeler.labels(letters, everyone, processes=2)
    assert labels == labeler.labels(letters, everyone) and list(labels) == sorted(set(letters[schema.CASE_ID]))
    masked = masked_titles(titles, labeler, processes=2)
    assert masked.equals(masked_titles(titles, labeler))
    named = [(name, title) for name, title in zip(titles[schema.PETITIONER_NAME], masked[schema.TITLE])
             if re.fullmatch(r"[\u4e00-\u9fff]{2,4}", name) and name in title]
    assert len(titles) > 1000 and not named


def test_tonight_cells_are_text_and_titles_masked(tmp_path, config):
    from pipeline.dedup.cases import Labeler
    from pipeline.dedupe import masked_titles
    from pipeline.reporting.tonight import tonight_table, write_tonight
    titles = pd.DataFrame({schema.LETTER_ID: ["=A1", "B2"], schema.PETITIONER_NAME: ["张三丰", "李四"],
                           schema.TITLE: ["=HYPERLINK(\"http://x\",\"看\")张三丰反映", "我叫李四光，电话13800001234"]})
    masked = masked_titles(titles, Labeler.from_config(config))
    assert masked[schema.TITLE].tolist()[1].startswith("我叫李某") and "13800001234" not in masked[schema.TITLE][1]
    letters = pd.DataFrame({schema.LETTER_ID: ["=A1", "B2"], schema.RECEIVED_AT: pd.to_datetime(["2024-01-01", "2024-01-05"]),
                            schema.ADDRESSEE: ["+青山县信访局", "青山县信访局"], schema.CASE_ID: ["=A1", "=A1"],
                            schema.DUPLICATE_OF: ["", "=A1"], schema.RELATION: ["", schema.REPEAT_PETITION],
                            schema.REOPENED: [False, True]})
    table = tonight_table(letters, letters[[schema.LETTER_ID, schema.RECEIVED_AT, schema.CASE_ID]],
                          dict(zip(masked[schema.LETTER_ID], masked[schema.TITLE])), {"=A1": "@label"})
    path = write_tonight(table, tmp_path / "tonight.xlsx")
    sheet = openpyxl.load_workbook(path)["今晚的重复来信"]
    cells = [cell for row in sheet.iter_rows(min_row=5) for cell in row if cell.value is not None]
    hostile = [cell for cell in cells if str(cell.value)[:1] in "=+@"]
    assert len(hostile) == 3 and all(cell.data_type == "s" and cell.quotePrefix for cell in hostile)
    text = "\n".join(str(cell.value) for cell in cells)
    assert "张三丰" not in text and "李四光" not in text and "13800001234" not in text
    assert "2024-01-01 =A1 =HYPERLINK" in text        # the earlier letter, by date, id and masked title
