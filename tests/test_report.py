"""Report: periods, figures, narrative backed by the tables, outputs, privacy, a real browser."""
import dataclasses
import re
import shutil
import subprocess

import openpyxl
import pandas as pd
import pytest

from pipeline import schema
from pipeline.reporting.figures import find_townships
from pipeline.reporting.periods import last_complete_period
from pipeline.reporting.render import OUTPUTS
from report_fixtures import pipeline_run, raw_identifiers, synthetic_letters, write_run


@pytest.fixture(scope="module")
def letters():
    return synthetic_letters(n=1500, seed=11)


@pytest.fixture(scope="module")
def built(letters, tmp_path_factory):
    """A run with the synthetic letters, reported for November 2024 through the CLI."""
    from pipeline.cli import main
    run = tmp_path_factory.mktemp("report_run")
    write_run(run, letters)
    assert main(["report", "--run", str(run), "--end", "2024-11-30"]) == 0
    return run


def period_rows(letters, start, end):
    dates = letters[schema.RECEIVED_AT]
    return letters[(dates >= pd.Timestamp(start)) & (dates < pd.Timestamp(end))]


def read_sheet(path, title):
    """A report.xlsx sheet as (title, note, DataFrame)."""
    sheet = openpyxl.load_workbook(path, read_only=True)[title]
    rows = list(sheet.iter_rows(values_only=True))
    header = [c for c in rows[3] if c is not None]
    frame = pd.DataFrame([r[:len(header)] for r in rows[4:]], columns=header)
    return rows[0][0], rows[1][0], frame


# --- Periods -------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, end, start, label", [
    ("month", "2024-03-31", "2024-03-01", "2024年3月"),
    ("month", "2024-03-15", "2024-02-01", "2024年2月"),
    ("month", "2024-01-10", "2023-12-01", "2023年12月"),
    ("quarter", "2024-06-30", "2024-04-01", "2024年第二季度"),
    ("quarter", "2024-06-29", "2024-01-01", "2024年第一季度"),
    ("half", "2024-12-31", "2024-07-01", "2024年下半年"),
    ("half", "2024-12-30", "2024-01-01", "2024年上半年"),
    ("year", "2024-12-31", "2024-01-01", "2024年"),
    ("year", "2024-12-30 23:59", "2023-01-01", "2023年"),
])
def test_last_complete_period(kind, end, start, label):
    period = last_complete_period(kind, pd.Timestamp(end))
    assert period.start == pd.Timestamp(start) and period.label == label
    assert period.year_before().start == pd.Timestamp(start) - pd.DateOffset(years=1)
    assert period.shift(-1).end == period.start


# --- Figures ---------------------------------------------------------------------------------

def test_outputs_and_sheets(built, capsys):
    for name in OUTPUTS:
        assert (built / name).stat().st_size > 0
    names = openpyxl.load_workbook(built / "report.xlsx", read_only=True).sheetnames
    assert names[0] == "综述"
    for title in ("总体情况", "渠道构成", "问题类别", "信访性质", "受理范围", "重复、联名集体、匿名、越级",
                  "乡镇（街道）分布", "受理单位", "受理层级", "月度趋势", "重复信访较多的事项", "需人工复核的来信"):
        assert title in names
    manifest = (built / "manifest.json").read_text(encoding="utf-8")
    assert '"report"' in manifest and '"rows_in": 1500' in manifest


def test_totals_and_same_period_change(built, letters):
    _, note, overview = read_sheet(built / "report.xlsx", "总体情况")
    overview = overview.set_index("指标")
    now = period_rows(letters, "2024-11-01", "2024-12-01")
    ago = period_rows(letters, "2023-11-01", "2023-12-01")
    prev = period_rows(letters, "2024-10-01", "2024-11-01")
    assert overview.at["受理件次", "本期"] == len(now)
    assert overview.at["受理件次", "上年同期"] == len(ago)
    assert overview.at["受理件次", "上期"] == len(prev)
    assert overview.at["受理件次", "同比(%)"] == round(100 * (len(now) - len(ago)) / len(ago), 1)
    assert overview.at["纯件数（不同事项）", "本期"] == now[schema.CASE_ID].nunique()
    visits = now[now[schema.CHANNEL] == schema.VISIT]
    assert overview.at["来访（批）", "本期"] == len(visits)
    assert overview.at["来访（人次）", "本期"] == int(visits[schema.VISITORS].fillna(1).sum())
    assert "2024年11月" in note and "2023年11月" in note and "2024年10月" in note


def test_topics_count_each_topic_and_print_the_denominator(built, letters):
    _, note, topics = read_sheet(built / "report.xlsx", "问题类别")
    now = period_rows(letters, "2024-11-01", "2024-12-01")
    exploded = now[schema.TOPICS].str.split("|").explode()
    multi = int((now[schema.TOPICS].str.contains("|", regex=False)).sum())
    assert multi > 0
    rows = topics[topics["代码"].notna()].set_index("代码")
    for code, count in exploded.value_counts().items():
        assert rows.at[code, "件次"] == count
        assert rows.at[code, "占比(%)"] == round(100 * count / len(now), 1)
    assert (topics["分母(本期件次)"] == len(now)).all()
    total = topics[topics["类别"].str.startswith("各类别合计")].iloc[0]
    assert total["件次"] == len(exploded) == len(now) + multi
    assert f"本期 {multi} 件涉及两个及以上类别" in note and "分母" in note


def test_scope_repeat_and_flags(built, letters):
    now = period_rows(letters, "2024-11-01", "2024-12-01")
    _, _, scope = read_sheet(built / "report.xlsx", "受理范围")
    scope = scope.set_index("范围")
    out = int((now[schema.TOPICS] == "党务政务/咨询及其他").sum())
    assert scope.at["不属于受理范围", "件次"] == out
    assert scope.at["属于受理范围", "件次"] == len(now) - out
    _, _, features = read_sheet(built / "report.xlsx", "重复、联名集体、匿名、越级")
    features = features.set_index("指标")
    assert features.at["重复件（重信重访）", "件次"] == int((now[schema.DUPLICATE_OF] != "").sum())
    assert features.at["其中：同一信访人重复信访", "件次"] == int((now[schema.RELATION] == schema.REPEAT_PETITION).sum())
    assert features.at["联名或集体", "件次"] == int((now[schema.JOINT] | now[schema.COLLECTIVE]).sum())
    for name, column in (("匿名", schema.ANONYMOUS), ("越级", schema.SKIP_LEVEL), ("需人工复核", schema.NEEDS_REVIEW)):
        assert features.at[name, "件次"] == int(now[column].sum())
        assert features.at[name, "分母(本期件次)"] == len(now)
    assert features["口径"].str.contains("duplicate_of").any()


def test_townships_units_months_cases(built, letters):
    now = period_rows(letters, "2024-11-01", "2024-12-01")
    _, _, towns = read_sheet(built / "report.xlsx", "乡镇（街道）分布")
    assert towns["件次"].sum() == len(now)
    assert set(towns["乡镇（街道）"]) <= {"城关街道", "东城街道", "柳溪镇", "桃源镇", "青石镇", "黄土岭乡", "杉木乡", "未识别"}
    expected = now[schema.ADDRESS].str.extract(r"青山县(.+?(?:街道|镇|乡))")[0].value_counts()
    counted = towns.set_index("乡镇（街道）")["件次"]
    for town, count in expected.items():   # the text fallback may add letters without an address
        assert counted[town] >= count
    _, _, units = read_sheet(built / "report.xlsx", "受理单位")
    assert units["件次"].sum() == len(now) and units["件次"].is_monotonic_decreasing
    _, _, months = read_sheet(built / "report.xlsx", "月度趋势")
    assert list(months["月份"])[-1] == "2024-11" and len(months) == 12
    assert months.set_index("月份").at["2024-11", "件次"] == len(now)
    _, _, cases = read_sheet(built / "report.xlsx", "重复信访较多的事项")
    assert len(cases) and cases["累计件次"].is_monotonic_decreasing
    top = cases.iloc[0]
    all_letters = letters[letters[schema.CASE_ID] == top["事项编号"]]
    assert top["累计件次"] == len(all_letters)
    keys = set(all_letters[schema.PETITIONER_KEY]) - {""}
    assert top["信访人数"] == len(keys)
    assert top["首次来信"] == f"{all_letters[schema.RECEIVED_AT].min():%Y-%m-%d}"
    _, _, review = read_sheet(built / "report.xlsx", "需人工复核的来信")
    assert len(review) == int(now[schema.NEEDS_REVIEW].sum())


# --- Narrative -------------------------------------------------------------------------------

NUMBER = re.compile(r"\d+(?:\.\d+)?")


def table_numbers(path):
    """Every number in every cell of every table sheet (strings included)."""
    numbers = set()
    workbook = openpyxl.load_workbook(path, read_only=True)
    for name in workbook.sheetnames[1:]:      # not 综述, the narrative itself
        for row in list(workbook[name].iter_rows(values_only=True))[3:]:
            for value in row:
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    numbers.add(round(abs(float(value)), 1))
                elif isinstance(value, str):
                    numbers.update(round(float(n), 1) for n in NUMBER.findall(value))
    return numbers


def test_every_number_of_the_narrative_is_in_a_table(built):
    text = (built / "report.md").read_text(encoding="utf-8").split("## 口径说明")[0]
    assert "共受理信访事项" in text and "同比" in text and "占" in text
    found = table_numbers(built / "report.xlsx")
    said = [float(n) for n in NUMBER.findall(text)]
    assert len(said) > 20
    assert [n for n in said if round(n, 1) not in found] == []


def test_narrative_numbers_match_their_cells(built):
    text = (built / "report.md").read_text(encoding="utf-8")
    path = built / "report.xlsx"
    overview = read_sheet(path, "总体情况")[2].set_index("指标")
    assert int(re.search(r"共受理信访事项(\d+)件次", text)[1]) == overview.at["受理件次", "本期"]
    assert int(re.search(r"纯件数）(\d+)件", text)[1]) == overview.at["纯件数（不同事项）", "本期"]
    change = overview.at["受理件次", "同比(%)"]
    assert f"同比{'上升' if change > 0 else '下降'}{abs(change):.1f}%" in text
    batches, persons = map(int, re.search(r"来访(\d+)批(\d+)人次", text).groups())
    assert (batches, persons) == (overview.at["来访（批）", "本期"], overview.at["来访（人次）", "本期"])
    topics = read_sheet(path, "问题类别")[2]
    ranking = re.search(r"排在前.位的是：(.+?)。", text)[1]
    for name, count, share in re.findall(r"([^；：]+?)(\d+)件次，占([\d.]+)%", ranking):
        row = topics[topics["类别"] == name].iloc[0]
        assert (row["件次"], row["占比(%)"]) == (int(count), float(share))
    total = topics[topics["类别"].str.startswith("各类别合计")].iloc[0]["件次"]
    assert f"各类别合计{total}件次" in text
    features = read_sheet(path, "重复、联名集体、匿名、越级")[2].set_index("指标")
    repeat = re.search(r"重复件（该事项此前已有来信）(\d+)件次，占([\d.]+)%", text)
    assert (int(repeat[1]), float(repeat[2])) == (features.at["重复件（重信重访）", "件次"],
                                                  features.at["重复件（重信重访）", "占比(%)"])


# --- Privacy, history, bad input ---------------------------------------------------------------

def test_no_raw_identifiers_in_outputs(built, letters):
    texts = [(built / "report.html").read_text(encoding="utf-8"), (built / "report.md").read_text(encoding="utf-8")]
    workbook = openpyxl.load_workbook(built / "report.xlsx", read_only=True)
    texts.append("\n".join(str(v) for sheet in workbook for row in sheet.iter_rows(values_only=True)
                           for v in row if v is not None))
    raw = set()
    for column in (schema.PETITIONER_NAME, schema.PETITIONER_ID_NUMBER, schema.PETITIONER_PHONE, schema.ADDRESS):
        raw |= {v for v in letters[column] if isinstance(v, str) and len(v) >= 2}
    assert len(raw) > 100
    leaks = {v for v in raw for text in texts if v in text}
    assert leaks == set()
    assert any(key in texts[0] for key in set(letters[schema.PETITIONER_KEY]) - {""})  # pseudonyms instead


def test_history_is_read_and_letters_counted_once(letters, tmp_path, cli):
    home = tmp_path / "home"
    archive = home / "archive" / "letters"
    archive.mkdir(parents=True)
    old = letters[letters[schema.RECEIVED_AT] < "2024-06-01"]
    new = letters[letters[schema.RECEIVED_AT] >= "2024-05-01"]        # one month in both
    old.to_parquet(archive / "2024-05-31-aaaa.parquet")
    write_run(home / "run", new)
    code, out, err = cli("report", "--run", home / "run", "--period", "year", "--end", "2024-12-31")
    assert code == 0, err
    assert "2024年" in out and f"{len(letters)} rows in" in out
    overview = read_sheet(home / "run" / "report.xlsx", "总体情况")[2].set_index("指标")
    assert overview.at["受理件次", "本期"] == len(period_rows(letters, "2024-01-01", "2025-01-01"))
    assert overview.at["受理件次", "上年同期"] == len(period_rows(letters, "2023-01-01", "2024-01-01"))

    alone = tmp_path / "alone"
    write_run(alone, new)
    assert cli("report", "--run", alone, "--history", archive, "--period", "year", "--end", "2024-12-31")[0] == 0
    again = read_sheet(alone / "report.xlsx", "总体情况")[2].set_index("指标")
    assert again.at["受理件次", "上年同期"] == overview.at["受理件次", "上年同期"]


def test_texts_read_only_where_the_figures_show_them(letters, tmp_path, config):
    """The report reads the texts of the period's letters and of their cases' first letters
    only; its figures are those of every text read."""
    import json

    from pipeline.dedup.cases import Labeler
    from pipeline.letters import load_letters
    from pipeline.reporting.figures import compute_figures, letters_with_text
    from pipeline.reporting.periods import report_period

    home = tmp_path / "home"
    (home / "archive" / "letters").mkdir(parents=True)
    letters[letters[schema.RECEIVED_AT] < "2024-06-01"].to_parquet(home / "archive" / "letters" / "old.parquet")
    run = write_run(home / "run", letters[letters[schema.RECEIVED_AT] >= "2024-05-01"])

    def period_of(frame):
        return report_period(frame[schema.RECEIVED_AT], "quarter", "2024-09-30")
    everything, _ = load_letters(run)
    some, _ = load_letters(run, texts_for=lambda frame: letters_with_text(frame, period_of(frame)))
    assert some.drop(columns=schema.CLEAN_TEXT).equals(everything.drop(columns=schema.CLEAN_TEXT))
    shown = letters_with_text(everything, period_of(everything))
    assert 0 < shown.sum() < len(everything) / 2
    assert (some[schema.CLEAN_TEXT][shown] == everything[schema.CLEAN_TEXT][shown]).all()
    assert (some[schema.CLEAN_TEXT][~shown] == "").all() and (everything[schema.CLEAN_TEXT][~shown] != "").any()
    # a case's first letter before the period is read too
    assert (shown & ~period_of(everything).mask(everything[schema.RECEIVED_AT]).to_numpy()).any()

    def figures(frame):
        numbers = compute_figures(frame, period_of(frame), config.report, {}, Labeler.from_config(config))
        numbers["meta"].pop("generated")
        return json.dumps(numbers, default=str, ensure_ascii=False, sort_keys=True)
    assert figures(some) == figures(everything)


def test_without_history_only_the_run(letters, tmp_path, cli):
    write_run(tmp_path / "run", letters[letters[schema.RECEIVED_AT] >= "2024-01-01"])
    assert cli("report", "--run", tmp_path / "run", "--period", "quarter")[0] == 0
    overview = read_sheet(tmp_path / "run" / "report.xlsx", "总体情况")[2].set_index("指标")
    assert overview.at["受理件次", "上年同期"] == 0
    assert "上年同期无来信记录" in (tmp_path / "run" / "report.md").read_text(encoding="utf-8")


def test_township_pattern_and_text_fallback():
    frame = pd.DataFrame({schema.ADDRESS: ["江北市青山县柳溪镇白石村3组", "青山县城关街道锦绣花园2栋", "黄土岭乡茶园村",
                                           "", "", "江南省南平市安和县"],
                          schema.CLEAN_TEXT: ["", "", "", "我是柳溪镇村民，反映问题", "乡村振兴资金的问题", "县城"]})
    from pipeline.config import load_config
    settings = load_config().report
    got, source = find_townships(frame, settings)
    assert got.tolist() == ["柳溪镇", "城关街道", "黄土岭乡", "柳溪镇", "未识别", "未识别"]
    assert source.tolist() == ["address", "address", "address", "text", "", ""]
    no_text = dataclasses.replace(settings, township_text_fallback=False)
    assert find_townships(frame, no_text)[0].tolist()[3] == "未识别"


def test_empty_period_and_bad_input(letters, tmp_path, cli):
    write_run(tmp_path / "run", letters)
    code, out, err = cli("report", "--run", tmp_path / "run", "--end", "2020-05-31")
    assert code == 0, err
    assert "未受理信访事项" in (tmp_path / "run" / "report.md").read_text(encoding="utf-8")
    assert cli("report", "--run", tmp_path / "run", "--end", "31/05/2020")[2].count("YYYY-MM-DD") == 1
    code, _, err = cli("report", "--run", tmp_path / "run", "--history", tmp_path / "nowhere")
    assert code == 2 and "history not found" in err
    write_run(tmp_path / "partial", letters.drop(columns=[schema.CASE_ID, schema.TOPIC]))
    code, _, err = cli("report", "--run", tmp_path / "partial")
    assert code == 2 and "case_id" in err and "petition dedupe" in err
    code, _, err = cli("report", "--run", tmp_path / "empty")
    assert code == 2 and "no dedupe output" in err


# --- A real browser ------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]


def chromium(args, profile):
    return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=180, check=False)


@pytest.fixture(scope="module")
def session_run(tmp_path_factory):
    """The session's pipeline run: the real stages over the bundled sample when they exist."""
    return pipeline_run(tmp_path_factory)


def test_report_of_the_pipeline_run(session_run):
    run, letters, _, kind = session_run
    text = (run / "report.md").read_text(encoding="utf-8").split("## 口径说明")[0]
    said = [float(n) for n in NUMBER.findall(text)]
    assert said and [n for n in said if round(n, 1) not in table_numbers(run / "report.xlsx")] == []
    outputs = [(run / name).read_text(encoding="utf-8") for name in ("report.html", "report.md")]
    workbook = openpyxl.load_workbook(run / "report.xlsx", read_only=True)
    outputs.append("\n".join(str(v) for sheet in workbook for row in sheet.iter_rows(values_only=True)
                             for v in row if v is not None))
    raw = raw_identifiers(letters)
    assert len(raw) > 100
    assert {v for v in raw for out in outputs if v in out} == set()
    overview = read_sheet(run / "report.xlsx", "总体情况")[2].set_index("指标")
    assert overview.at["受理件次", "本期"] > 0
    assert overview.at["纯件数（不同事项）", "本期"] <= overview.at["受理件次", "本期"]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (`make test` installs Debian's "
                                             "chromium and fonts-noto-cjk when missing)")
def test_report_in_headless_chromium(session_run, tmp_path):
    """The pipeline run's report.html in a real browser: headings, charts, narrative; a
    screenshot is saved as report.png in the run directory."""
    run = session_run[0]
    page = (run / "report.html").as_uri()
    dom = chromium(["--dump-dom", page], tmp_path / "profile")
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert re.search(r"<h1>信访情况分析报告（\d{4}年\d{1,2}月）</h1>", html)
    for heading in ("综述", "总体情况", "问题类别", "渠道构成", "月度趋势", "乡镇（街道）分布", "重复信访较多的事项"):
        assert f"<h2>{heading}</h2>" in html, heading
    charts = re.findall(r'<figure class="chart" data-chart="(\w+)"><svg', html)
    assert {"channels", "topics", "nature", "townships", "months"} <= set(charts)
    assert html.count('class="bar"') > 40
    assert "共受理信访事项" in html
    assert not re.search(r"<(?:script|link)\b|src=\"http", html)        # nothing fetched: opens offline

    png = run / "report.png"
    shot = chromium([f"--screenshot={png}", "--window-size=1280,2600", page], tmp_path / "profile")
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 50_000
    print(f"screenshot: {png}")
