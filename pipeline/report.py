"""Report: the figures petition offices publish, for one period, with same-period comparisons.

``petition report --run RUN_DIR [--period month|quarter|half|year] [--end YYYY-MM-DD]
[--history PATH]`` reads every letter (the history plus the run's ``deduped.parquet``),
takes the last *complete* period ending on ``--end`` (default: the latest ``received_at``),
compares it with the same period a year before (同比) and with the previous period (环比),
and writes into the run directory:

``report.xlsx``
    one sheet per table (title and note above the table);
``report.html``
    the narrative, every table and inline SVG charts: one self-contained file that opens
    offline (no scripts, fonts or images fetched) and renders Chinese with the browser's
    CJK fonts;
``report.md``
    the narrative and the definitions (口径说明) as Markdown.

Definitions (printed in the report as well):

* 件次 items: letters received in the period, every channel; 纯件数 unique matters: distinct
  ``case_id`` among them.
* Visits (来访) are counted in batches (批: one registered visit) and person-visits (人次: the
  sum of ``visitors``, a visit without a head count counting one person).
* Topic shares use the period's items as denominator. A letter touching several topics
  (``topics``) is counted under each, so topic counts add up to more than the items; the
  report prints that total.
* Out of scope (不属于受理范围): every topic of the letter is listed in
  ``report.out_of_scope_topics`` (default ``consultation_other``). 涉法涉诉 letters are
  counted on their own row: they are steered into legal procedure.
* Repeat items (重复件): the matter already had an earlier letter (``duplicate_of`` set);
  among them 重复信访 are the same petitioner again (``relation`` = ``repeat_petition``).
* Township: the first match of ``report.township_pattern`` in the address; for letters
  without one, the first township name (among those found in addresses) in the text.

Privacy: no petitioner name, ID number, phone or address is written; people appear only as
their ``petitioner_key`` pseudonym.
"""
import dataclasses
import datetime as dt
import html
import json
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import __version__, schema
from pipeline.config import PROJECT_ROOT
from pipeline.errors import PetitionError
from pipeline.taxonomy import Taxonomy

PERIOD_MONTHS = {"month": 1, "quarter": 3, "half": 6, "year": 12}
PERIOD_ZH = {"month": "月度", "quarter": "季度", "half": "半年", "year": "年度"}
CHANNEL_ZH = {"letter": "来信", "visit": "来访", "phone": "来电", "online": "网上信访",
              "mailbox": "领导信箱", "": "未注明"}
LEVEL_ZH = {"township": "乡镇（街道）", "county": "县级", "city": "市级", "province": "省级",
            "national": "国家级", "": "未注明"}
NATURES = ("申诉", "举报控告", "求决", "咨询", "意见建议")
FLAG_COLUMNS = (schema.ANONYMOUS, schema.JOINT, schema.COLLECTIVE, schema.SKIP_LEVEL,
                schema.LAW_LITIGATION, schema.NEEDS_REVIEW)
REQUIRED_COLUMNS = (schema.LETTER_ID, schema.RECEIVED_AT, schema.CHANNEL, schema.VISITORS,
                    schema.ADDRESS, schema.ADDRESSEE, schema.ADDRESSEE_LEVEL, schema.CLEAN_TEXT,
                    schema.PETITIONER_KEY, schema.TOPIC, schema.TOPIC_CONFIDENCE, schema.TOPICS,
                    schema.TOP3, schema.NATURE, *FLAG_COLUMNS, schema.CASE_ID,
                    schema.DUPLICATE_OF, schema.RELATION)
UNKNOWN_TOWNSHIP = "未识别"
OUTPUTS = ("report.xlsx", "report.html", "report.md")
CN_DIGITS = "〇一二三四五六七八九"

# Column headings shared by several tables.
COUNT, SHARE, BASE = "件次", "占比(%)", "分母(本期件次)"


# --- Periods ---------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Period:
    """A calendar period: ``months`` months from ``start`` (month, quarter, half or year)."""

    kind: str
    start: pd.Timestamp

    @property
    def months(self):
        return PERIOD_MONTHS[self.kind]

    @property
    def end(self):
        """First day after the period."""
        return self.start + pd.DateOffset(months=self.months)

    @property
    def last_day(self):
        return self.end - pd.Timedelta(days=1)

    def shift(self, periods):
        return Period(self.kind, self.start + pd.DateOffset(months=periods * self.months))

    def year_before(self):
        return Period(self.kind, self.start - pd.DateOffset(years=1))

    @property
    def label(self):
        year, month = self.start.year, self.start.month
        if self.kind == "month":
            return f"{year}年{month}月"
        if self.kind == "quarter":
            return f"{year}年第{CN_DIGITS[(month - 1) // 3 + 1]}季度"
        if self.kind == "half":
            return f"{year}年{'上' if month == 1 else '下'}半年"
        return f"{year}年"

    @property
    def span(self):
        return f"{self.start:%Y-%m-%d}至{self.last_day:%Y-%m-%d}"

    def mask(self, dates):
        return (dates >= self.start) & (dates < self.end)


def last_complete_period(kind, end_date):
    """The latest ``kind`` period whose last day is on or before ``end_date``.

    Periods are calendar-aligned: months, quarters (Jan/Apr/Jul/Oct), halves (Jan/Jul), years.
    ``end_date`` 2024-03-31 gives March 2024; 2024-03-15 gives February 2024.
    """
    if kind not in PERIOD_MONTHS:
        raise PetitionError(f"unknown period {kind!r}; use one of {', '.join(PERIOD_MONTHS)}")
    after = pd.Timestamp(end_date).normalize() + pd.Timedelta(days=1)
    months = PERIOD_MONTHS[kind]
    current = pd.Timestamp(year=after.year, month=(after.month - 1) // months * months + 1, day=1)
    # Whether `after` is the first day of a period or falls inside one, the last complete
    # period is the one before the period containing `after`.
    return Period(kind, current - pd.DateOffset(months=months))


# --- Reading letters ---------------------------------------------------------------------------

def read_parquet_tree(path):
    """Read a Parquet file, or every ``*.parquet`` file under a folder (sorted by path)."""
    path = Path(path)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.rglob("*.parquet") if not p.name.startswith("."))
    else:
        raise PetitionError(f"{path}: history not found (a Parquet file or a folder of them)")
    frames = []
    for file in files:
        try:
            frames.append(pd.read_parquet(file))
        except Exception as exc:  # pyarrow raises several types for damaged files
            raise PetitionError(f"{file}: unreadable Parquet ({exc})") from exc
    return frames


def _as_bool(series):
    if series.dtype == bool:
        return series
    truthy = {"true", "1", "yes", "y", "t", "是"}
    return series.map(lambda v: (str(v).strip().lower() in truthy) if isinstance(v, str)
                      else (False if pd.isna(v) else bool(v))).astype(bool)


def _as_text(series):
    return series.astype(object).where(series.notna(), "").astype(str).str.strip()


def prepare(letters):
    """Check the columns and coerce types: dates, flags, text, visitors."""
    missing = [c for c in REQUIRED_COLUMNS if c not in letters.columns]
    if missing:
        raise PetitionError(f"letters lack columns {missing}: the report needs the output of "
                            "`petition classify` and `petition dedupe`")
    letters = letters.copy()
    letters[schema.RECEIVED_AT] = pd.to_datetime(letters[schema.RECEIVED_AT], errors="coerce")
    for column in FLAG_COLUMNS:
        letters[column] = _as_bool(letters[column])
    for column in (schema.LETTER_ID, schema.CHANNEL, schema.ADDRESS, schema.ADDRESSEE,
                   schema.ADDRESSEE_LEVEL, schema.CLEAN_TEXT, schema.PETITIONER_KEY, schema.TOPIC,
                   schema.TOPICS, schema.TOP3, schema.NATURE, schema.CASE_ID, schema.DUPLICATE_OF,
                   schema.RELATION):
        letters[column] = _as_text(letters[column])
    visitors = pd.to_numeric(letters[schema.VISITORS], errors="coerce")
    letters["_persons"] = visitors.where(visitors >= 1, 1).fillna(1).astype(int)
    letters[schema.TOPIC_CONFIDENCE] = pd.to_numeric(letters[schema.TOPIC_CONFIDENCE], errors="coerce")
    topics = letters[schema.TOPICS].where(letters[schema.TOPICS] != "", letters[schema.TOPIC])
    letters["_topics"] = topics.map(lambda s: [t for t in dict.fromkeys(s.split("|")) if t])
    # A letter with no case_id is a matter of its own.
    letters[schema.CASE_ID] = letters[schema.CASE_ID].where(letters[schema.CASE_ID] != "",
                                                            "letter:" + letters[schema.LETTER_ID])
    return letters


def load_letters(run, history=None):
    """Every letter the report counts: the history plus the run's deduped letters.

    ``history`` defaults to ``<run>/../archive/letters`` when that exists. A letter in both
    (same ``letter_id``) is taken once, from the latest source (the run).

    Returns
    -------
    letters : DataFrame
    source : str
        What was read, for the report's notes.
    """
    frames, sources = [], []
    default_history = run.path.parent / "archive" / "letters"
    history_path = Path(history) if history else (default_history if default_history.exists() else None)
    if history_path is not None:
        frames += read_parquet_tree(history_path)
        sources.append(str(history_path))
    frames.append(run.read("dedupe"))
    sources.append(str(run.output_path("dedupe")))
    frames = [f for f in frames if len(f.columns)]
    letters = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if schema.LETTER_ID in letters.columns:
        letters = letters.drop_duplicates(schema.LETTER_ID, keep="last").reset_index(drop=True)
    return prepare(letters), " + ".join(sources)


def load_topic_names(path):
    """{code: Chinese name} from a taxonomy YAML; empty when the file is missing."""
    if not Path(path).exists():
        return {}
    return {code: topic.zh for code, topic in Taxonomy.load(path).topics.items()}


# --- Townships ---------------------------------------------------------------------------------

def find_townships(letters, pattern, text_fallback=True):
    """The township (乡镇/街道) of each letter.

    The first match (group 1) of ``pattern`` in the address; for letters without one, the
    first name found in the clean text among the townships that addresses name. Letters with
    neither get ``UNKNOWN_TOWNSHIP``.
    """
    regex = re.compile(pattern)
    if regex.groups < 1:
        raise PetitionError(f"report.township_pattern needs a group for the name: {pattern!r}")
    addresses = letters[schema.ADDRESS]
    unique = pd.Series(addresses.unique())
    found = dict(zip(unique, unique.str.extract(regex, expand=False)[0] if regex.groups > 1
                     else unique.str.extract(regex, expand=False)))
    result = addresses.map(found)
    if text_fallback:
        known = sorted({t for t in found.values() if isinstance(t, str) and t}, key=len, reverse=True)
        missing = result.isna()
        if known and missing.any():
            names = re.compile("(" + "|".join(map(re.escape, known)) + ")")
            result[missing] = letters.loc[missing, schema.CLEAN_TEXT].str.extract(names, expand=False)
    return result.fillna(UNKNOWN_TOWNSHIP).replace("", UNKNOWN_TOWNSHIP)


# --- Tables ------------------------------------------------------------------------------------

@dataclasses.dataclass
class Table:
    """One table of the report: a sheet in report.xlsx, a section in report.html."""

    key: str
    title: str
    frame: pd.DataFrame
    note: str = ""
    chart: dict = None   # {"label": column, "value": column, "kind": "hbar"|"months", ...}


def pct(part, whole):
    """Share in percent, one decimal; None when the whole is 0."""
    return None if not whole else round(100.0 * part / whole, 1)


def change(now, before):
    """Relative change in percent, one decimal; None when there is nothing to compare with."""
    return None if not before else round(100.0 * (now - before) / before, 1)


def _count_topics(frame):
    exploded = frame["_topics"].explode().dropna()
    return exploded.value_counts()


def _short_date(value):
    return "" if pd.isna(value) else f"{pd.Timestamp(value):%Y-%m-%d}"


class ReportBuilder:
    """Compute every table and the narrative from prepared letters.

    Parameters
    ----------
    letters : DataFrame
        Output of :func:`prepare` (all letters: history and the run).
    period : Period
    settings : ReportConfig
    topic_names : dict
        {topic code: Chinese name}.
    """

    def __init__(self, letters, period, settings, topic_names):
        self.letters, self.period, self.settings = letters, period, settings
        self.topic_names = topic_names
        dates = letters[schema.RECEIVED_AT]
        self.previous, self.year_ago = period.shift(-1), period.year_before()
        self.now = letters[period.mask(dates)]
        self.prev = letters[self.previous.mask(dates)]
        self.ago = letters[self.year_ago.mask(dates)]
        self.items = len(self.now)
        self.tables = {}

    def topic_name(self, code):
        return self.topic_names.get(code, code or "未分类")

    def add(self, table):
        self.tables[table.key] = table
        return table

    # Volume ------------------------------------------------------------------------------
    @staticmethod
    def volume(frame):
        visits = frame[frame[schema.CHANNEL] == "visit"]
        row = {"受理件次": len(frame), "纯件数（不同事项）": frame[schema.CASE_ID].nunique()}
        for channel, name in CHANNEL_ZH.items():
            if not channel:
                continue
            if channel == "visit":
                row["来访（批）"] = len(visits)
                row["来访（人次）"] = int(visits["_persons"].sum())
            else:
                row[f"{name}（件）"] = int((frame[schema.CHANNEL] == channel).sum())
        row["咨询类（件）"] = int((frame[schema.NATURE] == "咨询").sum())
        keys = frame[schema.PETITIONER_KEY]
        row["信访人（去重，按化名）"] = keys[keys != ""].nunique()
        return row

    def overview(self):
        now, ago, prev = self.volume(self.now), self.volume(self.ago), self.volume(self.prev)
        rows = [{"指标": name, "本期": now[name], "上年同期": ago[name],
                 "同比增减": now[name] - ago[name], "同比(%)": change(now[name], ago[name]),
                 "上期": prev[name], "环比增减": now[name] - prev[name],
                 "环比(%)": change(now[name], prev[name])} for name in now]
        return self.add(Table(
            "overview", "总体情况", pd.DataFrame(rows),
            f"本期：{self.period.label}（{self.period.span}）；上年同期：{self.year_ago.label}；"
            f"上期：{self.previous.label}。件次为受理的全部来信、来访、来电和网上信访；纯件数为其中"
            "不同事项（case_id）的个数；来访按批次和人次计（未登记人数的按1人计）。"
            "同比、环比为相对上年同期、上期的增减百分比，对比期为0时不计算。"))

    def channels(self):
        frame = self.now
        rows = []
        for channel, name in CHANNEL_ZH.items():
            chosen = frame[frame[schema.CHANNEL] == channel]
            if not channel and chosen.empty:
                continue
            rows.append({"渠道": name, COUNT: len(chosen), SHARE: pct(len(chosen), self.items),
                         "来访人次": int(chosen["_persons"].sum()) if channel == "visit" else None,
                         BASE: self.items})
        rows = pd.DataFrame(rows)
        rows["来访人次"] = rows["来访人次"].astype("Int64")
        return self.add(Table("channels", "渠道构成", rows,
                              f"占比以本期受理件次 {self.items} 为分母；来访的件次即批次。",
                              {"label": "渠道", "value": COUNT, "share": SHARE, "kind": "hbar"}))

    # Topics -------------------------------------------------------------------------------
    def topics(self):
        counts, before = _count_topics(self.now), _count_topics(self.ago)
        codes = list(self.topic_names) + sorted(set(counts.index) - set(self.topic_names))
        rows = [{"代码": code, "类别": self.topic_name(code), COUNT: int(counts.get(code, 0)),
                 SHARE: pct(counts.get(code, 0), self.items), "上年同期": int(before.get(code, 0)),
                 "同比(%)": change(counts.get(code, 0), before.get(code, 0)), BASE: self.items}
                for code in codes]
        frame = pd.DataFrame(rows).sort_values(COUNT, ascending=False, kind="stable")
        total = int(counts.sum())
        multi = int((self.now["_topics"].map(len) > 1).sum())
        frame = pd.concat([frame, pd.DataFrame([{
            "代码": "", "类别": "各类别合计（多类别重复计入）", COUNT: total,
            SHARE: pct(total, self.items), "上年同期": int(before.sum()),
            "同比(%)": change(total, int(before.sum())), BASE: self.items}])], ignore_index=True)
        self.multi_topic = multi
        return self.add(Table(
            "topics", "问题类别", frame,
            f"占比以本期受理件次 {self.items} 为分母。一件涉及多个类别的，分别计入各个类别"
            f"（本期 {multi} 件涉及两个及以上类别），因此各类别合计 {total} 件次，占比之和可超过100%。",
            {"label": "类别", "value": COUNT, "share": SHARE, "kind": "hbar", "skip_last": True}))

    def nature(self):
        counts = self.now[schema.NATURE].replace("", "未标注").value_counts()
        order = list(NATURES) + sorted(set(counts.index) - set(NATURES))
        rows = [{"性质": name, COUNT: int(counts.get(name, 0)), SHARE: pct(counts.get(name, 0), self.items),
                 BASE: self.items} for name in order if name in NATURES or counts.get(name, 0)]
        return self.add(Table("nature", "信访性质", pd.DataFrame(rows),
                              f"每件一个性质（申诉、举报控告、求决、咨询、意见建议）；占比以本期受理件次 "
                              f"{self.items} 为分母。",
                              {"label": "性质", "value": COUNT, "share": SHARE, "kind": "hbar"}))

    def out_of_scope_mask(self, frame):
        out = set(self.settings.out_of_scope_topics)
        return frame["_topics"].map(lambda topics: bool(topics) and set(topics) <= out)

    def scope(self):
        out = int(self.out_of_scope_mask(self.now).sum())
        law = int(self.now[schema.LAW_LITIGATION].sum())
        names = "、".join(self.topic_name(c) for c in self.settings.out_of_scope_topics)
        rows = [{"范围": "属于受理范围", COUNT: self.items - out, SHARE: pct(self.items - out, self.items),
                 BASE: self.items, "口径": "其余各件"},
                {"范围": "不属于受理范围", COUNT: out, SHARE: pct(out, self.items), BASE: self.items,
                 "口径": f"所涉类别均为：{names}"},
                {"范围": "涉法涉诉", COUNT: law, SHARE: pct(law, self.items), BASE: self.items,
                 "口径": "依法导入诉讼、复议、仲裁等法律程序（与上两行交叉）"}]
        return self.add(Table("scope", "受理范围", pd.DataFrame(rows),
                              f"不属于受理范围：一件所涉的全部类别都在配置 report.out_of_scope_topics"
                              f"（{names}）之中。涉法涉诉单列，不从受理范围中扣除。"))

    # Repeat, joint, collective, anonymous, skip-level ---------------------------------------
    def features(self):
        now = self.now
        repeat = now[schema.DUPLICATE_OF] != ""
        same_person = now[schema.RELATION] == "repeat_petition"
        joint_or_collective = now[schema.JOINT] | now[schema.COLLECTIVE]
        collective_visits = now[now[schema.COLLECTIVE] & (now[schema.CHANNEL] == "visit")]
        rows = [
            ("重复件（重信重访）", repeat, "该事项此前已有来信（duplicate_of 非空），即不是该事项的首件"),
            ("其中：同一信访人重复信访", same_person, "relation = repeat_petition：同一信访人再次反映同一事项"),
            ("联名或集体", joint_or_collective, "联名信或集体访（任一）"),
            ("其中：联名信", now[schema.JOINT], "有两个及以上署名人"),
            ("其中：集体访", now[schema.COLLECTIVE], "5人及以上"),
            ("匿名", now[schema.ANONYMOUS], "未署名或署名为匿名"),
            ("越级", now[schema.SKIP_LEVEL], "受理机关层级高于事项所属层级"),
            ("涉法涉诉", now[schema.LAW_LITIGATION], "应导入法律程序的"),
            ("涉及多个类别", now["_topics"].map(len) > 1, "分别计入各类别"),
            ("需人工复核", now[schema.NEEDS_REVIEW], "分类置信度低于模型复核阈值"),
        ]
        frame = pd.DataFrame([{"指标": name, COUNT: int(mask.sum()), SHARE: pct(int(mask.sum()), self.items),
                               BASE: self.items, "口径": rule} for name, mask, rule in rows])
        self.collective_persons = int(collective_visits["_persons"].sum())
        self.collective_batches = len(collective_visits)
        frame = pd.concat([frame, pd.DataFrame([
            {"指标": "集体访（来访批次）", COUNT: self.collective_batches,
             SHARE: pct(self.collective_batches, self.items), BASE: self.items,
             "口径": f"来访渠道的集体访，共 {self.collective_persons} 人次"}])], ignore_index=True)
        return self.add(Table("features", "重复、联名集体、匿名、越级", frame,
                              f"占比以本期受理件次 {self.items} 为分母；各项可交叉，不可相加。"))

    # Where ---------------------------------------------------------------------------------
    def townships(self):
        now = self.now.assign(_township=find_townships(self.now, self.settings.township_pattern,
                                                  self.settings.township_text_fallback))
        grouped = now.groupby("_township", sort=False)
        frame = pd.DataFrame({
            "乡镇（街道）": grouped.size().index,
            COUNT: grouped.size().values,
            "纯件数": grouped[schema.CASE_ID].nunique().values,
            "集体访": grouped[schema.COLLECTIVE].sum().astype(int).values,
        })
        visits = now[now[schema.CHANNEL] == "visit"].groupby("_township")["_persons"].sum()
        frame["来访人次"] = visits.reindex(frame["乡镇（街道）"]).fillna(0).astype(int).values
        frame[SHARE] = [pct(n, self.items) for n in frame[COUNT]]
        frame[BASE] = self.items
        known = frame[frame["乡镇（街道）"] != UNKNOWN_TOWNSHIP].sort_values(COUNT, ascending=False, kind="stable")
        frame = pd.concat([known, frame[frame["乡镇（街道）"] == UNKNOWN_TOWNSHIP]], ignore_index=True)
        frame = frame[["乡镇（街道）", COUNT, SHARE, "纯件数", "集体访", "来访人次", BASE]]
        return self.add(Table(
            "townships", "乡镇（街道）分布", frame,
            "乡镇（街道）取自信访人住址（配置 report.township_pattern），住址中没有的从来信正文中查找"
            f"已知乡镇名；都没有的计为“{UNKNOWN_TOWNSHIP}”。占比以本期受理件次 {self.items} 为分母。",
            {"label": "乡镇（街道）", "value": COUNT, "share": SHARE, "kind": "hbar",
             "exclude": UNKNOWN_TOWNSHIP}))

    def units(self):
        now = self.now.assign(_unit=self.now[schema.ADDRESSEE].replace("", "未注明"))
        grouped = now.groupby("_unit", sort=False)
        levels = grouped[schema.ADDRESSEE_LEVEL].agg(lambda s: s.mode().iloc[0] if len(s.mode()) else "")
        frame = pd.DataFrame({
            "受理单位": grouped.size().index,
            "层级": [LEVEL_ZH.get(v, v) for v in levels.reindex(grouped.size().index).values],
            COUNT: grouped.size().values,
            "来访（批）": grouped[schema.CHANNEL].agg(lambda s: int((s == "visit").sum())).values,
            "集体访": grouped[schema.COLLECTIVE].sum().astype(int).values,
            "越级": grouped[schema.SKIP_LEVEL].sum().astype(int).values,
        })
        frame.insert(3, SHARE, [pct(n, self.items) for n in frame[COUNT]])
        frame[BASE] = self.items
        frame = frame.sort_values([COUNT, "集体访"], ascending=False, kind="stable").reset_index(drop=True)
        return self.add(Table("units", "受理单位", frame,
                              "按来信的受理机关（addressee）统计；集体访列可用于按集体访排名。"
                              f"占比以本期受理件次 {self.items} 为分母。",
                              {"label": "受理单位", "value": COUNT, "share": SHARE, "kind": "hbar"}))

    def levels(self):
        rows = []
        for level, name in LEVEL_ZH.items():
            chosen = self.now[self.now[schema.ADDRESSEE_LEVEL] == level]
            if not level and chosen.empty:
                continue
            visits = chosen[chosen[schema.CHANNEL] == "visit"]
            rows.append({"受理层级": name, COUNT: len(chosen), SHARE: pct(len(chosen), self.items),
                         "来访（批）": len(visits), "来访（人次）": int(visits["_persons"].sum()),
                         BASE: self.items})
        return self.add(Table("levels", "受理层级", pd.DataFrame(rows),
                              "按受理机关层级（到乡镇、县、市、省、进京）统计。",
                              {"label": "受理层级", "value": COUNT, "share": SHARE, "kind": "hbar"}))

    # When ----------------------------------------------------------------------------------
    def months(self):
        count = max(self.settings.trend_months, self.period.months)
        first = self.period.end - pd.DateOffset(months=count)
        dates = self.letters[schema.RECEIVED_AT]
        month = dates.dt.to_period("M")
        rows = []
        for i in range(count):
            start = first + pd.DateOffset(months=i)
            this = self.letters[month == pd.Period(start, "M")]
            before = int((month == pd.Period(start - pd.DateOffset(years=1), "M")).sum())
            rows.append({"月份": f"{start:%Y-%m}", COUNT: len(this), "纯件数": this[schema.CASE_ID].nunique(),
                         "来访人次": int(this.loc[this[schema.CHANNEL] == "visit", "_persons"].sum()),
                         "上年同月": before, "同比(%)": change(len(this), before),
                         "本期": "是" if self.period.mask(pd.Series([start])).iloc[0] else ""})
        return self.add(Table("months", "月度趋势", pd.DataFrame(rows),
                              f"截至本期末的 {count} 个月，每月件次与上年同月对比；“本期”列标出统计周期内的月份。",
                              {"label": "月份", "value": COUNT, "compare": "上年同月", "kind": "months"}))

    # Cases and review ----------------------------------------------------------------------
    def repeat_cases(self):
        active = self.now[schema.CASE_ID].unique()
        letters = self.letters[self.letters[schema.CASE_ID].isin(active)]
        grouped = letters.groupby(schema.CASE_ID)
        size = grouped.size()
        size = size[size >= 2]
        columns = ["事项编号", "累计件次", "本期件次", "信访人数", "信访人（化名）", "首次来信", "最近来信",
                   "主要类别", "受理单位数"]
        if size.empty:
            frame = pd.DataFrame(columns=columns)
        else:
            in_period = self.now.groupby(schema.CASE_ID).size()
            chosen = pd.DataFrame({"n": size, "now": in_period.reindex(size.index).fillna(0).astype(int)})
            chosen = chosen.sort_values(["n", "now"], ascending=False, kind="stable").head(self.settings.top_cases)
            rows = []
            for case_id in chosen.index:
                case = grouped.get_group(case_id)
                keys = [k for k in dict.fromkeys(case[schema.PETITIONER_KEY]) if k]
                topic = case[schema.TOPIC].replace("", np.nan).dropna()
                rows.append({
                    "事项编号": case_id, "累计件次": int(chosen.at[case_id, "n"]),
                    "本期件次": int(chosen.at[case_id, "now"]), "信访人数": len(keys),
                    "信访人（化名）": "、".join(keys[:3]) + ("等" if len(keys) > 3 else ""),
                    "首次来信": _short_date(case[schema.RECEIVED_AT].min()),
                    "最近来信": _short_date(case[schema.RECEIVED_AT].max()),
                    "主要类别": self.topic_name(topic.mode().iloc[0]) if len(topic) else "",
                    "受理单位数": case[schema.ADDRESSEE].replace("", np.nan).nunique()})
            frame = pd.DataFrame(rows, columns=columns)
        return self.add(Table("cases", "重复信访较多的事项", frame,
                              f"本期有来信、累计两件及以上的事项，按累计件次排序，前 {self.settings.top_cases} 个。"
                              "信访人只以化名（petitioner_key，加密哈希）列出；信访人数按化名去重，匿名件不计。"))

    def review(self):
        chosen = self.now[self.now[schema.NEEDS_REVIEW]].sort_values(schema.TOPIC_CONFIDENCE, kind="stable")

        def candidates(top3):
            try:
                pairs = json.loads(top3) if top3 else []
                return "；".join(f"{self.topic_name(str(c))} {float(p):.2f}" for c, p in pairs)
            except (TypeError, ValueError):
                return ""
        frame = pd.DataFrame({
            "信件编号": chosen[schema.LETTER_ID].values,
            "日期": chosen[schema.RECEIVED_AT].map(_short_date).values,
            "渠道": chosen[schema.CHANNEL].map(lambda c: CHANNEL_ZH.get(c, c)).values,
            "类别": chosen[schema.TOPIC].map(self.topic_name).values,
            "置信度": chosen[schema.TOPIC_CONFIDENCE].round(2).values,
            "候选类别": chosen[schema.TOP3].map(candidates).values,
            "受理单位": chosen[schema.ADDRESSEE].values,
            "事项编号": chosen[schema.CASE_ID].values,
        })
        return self.add(Table("review", "需人工复核的来信", frame,
                              f"本期分类置信度低于复核阈值的来信共 {len(frame)} 件，按置信度从低到高排列；"
                              "在 classifier_review 笔记本中复核并保存更正。"))

    def meta(self, source, undated):
        rows = [("统计周期", f"{self.period.label}（{self.period.span}）"),
                ("上年同期", f"{self.year_ago.label}（{self.year_ago.span}）"),
                ("上期", f"{self.previous.label}（{self.previous.span}）"),
                ("统计口径", f"{PERIOD_ZH[self.period.kind]}；按登记日期（received_at）"),
                ("数据来源", source),
                ("来信总数（全部历史）", len(self.letters)),
                ("无日期未计入", undated),
                ("生成时间", time.strftime("%Y-%m-%d %H:%M")),
                ("程序版本", f"petition {__version__}")]
        return self.add(Table("meta", "报告说明", pd.DataFrame(rows, columns=["项目", "内容"]), ""))

    def build(self, source=""):
        undated = int(self.letters[schema.RECEIVED_AT].isna().sum())
        for step in (self.overview, self.channels, self.topics, self.nature, self.scope, self.features,
                     self.townships, self.units, self.levels, self.months, self.repeat_cases, self.review):
            step()
        self.meta(source, undated)
        return Report(self.period, self.tables, narrative(self.tables, self.period))


# --- Narrative ---------------------------------------------------------------------------------

def _fmt(value):
    """A number as the narrative writes it (same as the HTML table cells)."""
    if isinstance(value, (float, np.floating)):
        return f"{value:.1f}"
    return str(int(value))


def _trend(rate, word="同比"):
    if rate is None or pd.isna(rate):
        return f"{word}无可比数据"
    if rate == 0:
        return f"{word}持平"
    return f"{word}{'上升' if rate > 0 else '下降'}{_fmt(abs(rate))}%"


def narrative(tables, period):
    """The office-style summary, every number taken from ``tables``. Returns paragraphs."""
    ov = tables["overview"].frame.set_index("指标")
    total = ov.at["受理件次", "本期"]
    if total == 0:
        return [f"{period.label}，未受理信访事项（上年同期{_fmt(ov.at['受理件次', '上年同期'])}件次）。"]
    paragraphs = []

    def compared(name, word, column, base_column):
        rate, base = ov.at[name, column], ov.at[name, base_column]
        if not base:
            return f"{base_column}无{'来信记录' if name == '受理件次' else '可比数据'}"
        return f"{_trend(rate, word)}（{base_column}{_fmt(base)}件次）" if name == "受理件次" else _trend(rate, word)

    text = (f"{period.label}，共受理信访事项{_fmt(total)}件次，{compared('受理件次', '同比', '同比(%)', '上年同期')}，"
            f"{compared('受理件次', '环比', '环比(%)', '上期')}；"
            f"涉及不同事项（纯件数）{_fmt(ov.at['纯件数（不同事项）', '本期'])}件。")
    parts = []
    channels = tables["channels"].frame
    for _, row in channels.iterrows():
        if row[COUNT] == 0:
            continue
        if row["渠道"] == "来访":
            part = f"来访{_fmt(row[COUNT])}批{_fmt(row['来访人次'])}人次，占{_fmt(row[SHARE])}%"
            if ov.at["来访（批）", "上年同期"]:
                part += "，批次" + compared("来访（批）", "同比", "同比(%)", "上年同期")
        else:
            part = f"{row['渠道']}{_fmt(row[COUNT])}件次，占{_fmt(row[SHARE])}%"
            if row["渠道"] == "来信" and ov.at["来信（件）", "上年同期"]:
                part += "，" + compared("来信（件）", "同比", "同比(%)", "上年同期")
        parts.append(part)
    text += "其中" + "；".join(parts) + "。"
    paragraphs.append(text)

    topics = tables["topics"].frame
    real = topics[topics["代码"] != ""]
    top = real[real[COUNT] > 0].head(3)
    total_row = topics[topics["代码"] == ""].iloc[0]
    ranking = "；".join(f"{r['类别']}{_fmt(r[COUNT])}件次，占{_fmt(r[SHARE])}%" for _, r in top.iterrows())
    text = (f"从问题类别看，排在前{CN_DIGITS[len(top)]}位的是：{ranking}。"
            f"（占比以本期{_fmt(total)}件次为分母；一件涉及多个类别的分别计入各类别，"
            f"各类别合计{_fmt(total_row[COUNT])}件次。）")
    rising = real[(real["同比(%)"].notna()) & (real["同比(%)"] > 0) & (real[COUNT] >= 5)]
    if len(rising):
        r = rising.sort_values("同比(%)", ascending=False).iloc[0]
        text += f"增幅较大的是{r['类别']}，同比上升{_fmt(r['同比(%)'])}%。"
    absent = real[real[COUNT] == 0]["类别"].tolist()
    if absent:
        text += f"本期未收到{'、'.join(absent[:3])}{'等' if len(absent) > 3 else ''}方面的信访。"
    paragraphs.append(text)

    nature = tables["nature"].frame
    shown = nature[nature[COUNT] > 0].sort_values(COUNT, ascending=False, kind="stable")
    if len(shown):
        paragraphs.append("从信访性质看，" + "；".join(
            f"{r['性质']}类{_fmt(r[COUNT])}件次，占{_fmt(r[SHARE])}%" for _, r in shown.iterrows()) + "。")

    f = tables["features"].frame.set_index("指标")
    scope = tables["scope"].frame.set_index("范围")

    def said(name, frame=f):
        return f"{_fmt(frame.at[name, COUNT])}件次，占{_fmt(frame.at[name, SHARE])}%"
    paragraphs.append(
        f"重复件（该事项此前已有来信）{said('重复件（重信重访）')}，其中同一信访人重复信访"
        f"{_fmt(f.at['其中：同一信访人重复信访', COUNT])}件次；联名或集体{said('联名或集体')}；"
        f"匿名{said('匿名')}；越级{said('越级')}。不属于受理范围{said('不属于受理范围', scope)}；"
        f"涉法涉诉{said('涉法涉诉', scope)}。")

    towns = tables["townships"].frame
    towns = towns[(towns["乡镇（街道）"] != UNKNOWN_TOWNSHIP) & (towns[COUNT] > 0)].head(3)
    units = tables["units"].frame
    text = ""
    if len(towns):
        text += "从地域看，信访量居前的乡镇（街道）是" + "、".join(
            f"{r['乡镇（街道）']}（{_fmt(r[COUNT])}件次）" for _, r in towns.iterrows()) + "。"
    if len(units):
        u = units.iloc[0]
        text += f"受理单位中，{u['受理单位']}受理最多，{_fmt(u[COUNT])}件次，占{_fmt(u[SHARE])}%。"
    if text:
        paragraphs.append(text)

    cases = tables["cases"].frame
    review = f.at["需人工复核", COUNT]
    text = ""
    if len(cases):
        c = cases.iloc[0]
        text += (f"累计来信最多的事项为{c['事项编号']}（{c['主要类别']}），累计{_fmt(c['累计件次'])}件次，"
                 f"信访人{_fmt(c['信访人数'])}人。")
    text += f"分类置信度较低、需人工复核的来信{_fmt(review)}件。"
    paragraphs.append(text)
    return paragraphs


# --- Output ------------------------------------------------------------------------------------

@dataclasses.dataclass
class Report:
    period: Period
    tables: dict
    narrative: list

    @property
    def title(self):
        return f"信访情况分析报告（{self.period.label}）"


def _cell(value):
    """A table cell as HTML shows it."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "—"
    if isinstance(value, (bool, np.bool_)):
        return "是" if value else "否"
    if isinstance(value, (float, np.floating)):
        return f"{value:.1f}" if round(value, 1) == value else f"{value:.2f}"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value)


def write_xlsx(report, path):
    """One sheet per table: title in A1, note in A2, the table from row 4."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    from pipeline.rundir import atomic_path

    workbook = Workbook()
    workbook.remove(workbook.active)
    summary = workbook.create_sheet("综述")
    summary["A1"] = report.title
    summary["A1"].font = Font(bold=True, size=14)
    for i, paragraph in enumerate(report.narrative, start=3):
        summary.cell(row=i, column=1, value=paragraph).alignment = Alignment(wrap_text=True, vertical="top")
    summary.column_dimensions["A"].width = 120
    header_fill = PatternFill("solid", fgColor="DDE4EE")
    for table in report.tables.values():
        sheet = workbook.create_sheet(re.sub(r"[\[\]:*?/\\]", "", table.title)[:31])
        sheet["A1"] = table.title
        sheet["A1"].font = Font(bold=True, size=13)
        sheet["A2"] = table.note
        for j, column in enumerate(table.frame.columns, start=1):
            cell = sheet.cell(row=4, column=j, value=str(column))
            cell.font, cell.fill = Font(bold=True), header_fill
            width = max([len(str(column))] + [len(_cell(v)) for v in table.frame[column].head(200)])
            sheet.column_dimensions[get_column_letter(j)].width = min(60, 4 + 1.8 * width)
        for i, row in enumerate(table.frame.itertuples(index=False), start=5):
            for j, value in enumerate(row, start=1):
                if value is None or (not isinstance(value, str) and pd.isna(value)):
                    continue
                if isinstance(value, np.generic):
                    value = value.item()
                cell = sheet.cell(row=i, column=j, value=value)
                if isinstance(value, float):
                    cell.number_format = "0.0"
        sheet.freeze_panes = "A5"
    with atomic_path(path) as tmp:
        workbook.save(tmp)


# Fonts: the browser picks the first CJK font it has (Debian: fonts-noto-cjk).
FONT_STACK = ('"Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Source Han Sans CN", '
              '"PingFang SC", "Hiragino Sans GB", "Microsoft YaHei", "WenQuanYi Micro Hei", '
              '"WenQuanYi Zen Hei", "SimHei", "Noto Serif CJK SC", sans-serif')
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
BAR, BAR_COMPARE = "#c0392b", "#9aa5b1"


def _text_width(text, size):
    """Rough rendered width of ``text``: CJK characters one em, others 0.6 em."""
    return sum(size if ord(ch) > 0x2E7F else 0.6 * size for ch in str(text))


def svg_hbar(labels, values, shares=None, title="", max_rows=15):
    """A horizontal bar chart as inline SVG; labels are drawn as text (browser fonts)."""
    labels, values = list(labels)[:max_rows], [float(v) for v in list(values)[:max_rows]]
    shares = list(shares)[:max_rows] if shares is not None else [None] * len(values)
    size, row, bar_w = 13, 24, 420
    label_w = int(max([_text_width(l, size) for l in labels] + [40])) + 12
    width, height = label_w + bar_w + 130, row * len(labels) + 16
    top = max(values + [1.0])
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart-svg" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}"><title>{html.escape(title)}</title>']
    for i, (label, value, share) in enumerate(zip(labels, values, shares)):
        y = 8 + i * row
        w = bar_w * value / top
        value_text = _cell(int(value)) + (f"（{_cell(share)}%）" if share is not None and not pd.isna(share) else "")
        parts.append(f'<text x="{label_w - 8}" y="{y + 16}" font-size="{size}" text-anchor="end">'
                     f'{html.escape(str(label))}</text>'
                     f'<rect class="bar" x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 7}" fill="{BAR}"/>'
                     f'<text x="{label_w + w + 6:.1f}" y="{y + 16}" font-size="{size - 1}" fill="#333">'
                     f'{html.escape(value_text)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def svg_months(labels, values, compare, title="", highlight=()):
    """Monthly bars (red) with the same months a year before (grey) beside them."""
    labels, values, compare = list(labels), [float(v) for v in values], [float(v) for v in compare]
    size, group, bars, left, top_margin = 12, 56, 220, 44, 22
    base = top_margin + bars                      # y of the axis
    width, height = left + group * len(labels) + 20, base + 62
    top = max(values + compare + [1.0])
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart-svg" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}"><title>{html.escape(title)}</title>',
             f'<line x1="{left}" y1="{base}" x2="{width - 10}" y2="{base}" stroke="#666"/>']
    for tick in (0.5, 1.0):
        y = base - bars * tick
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="{size - 1}" text-anchor="end">'
                     f'{int(round(top * tick))}</text>'
                     f'<line x1="{left}" y1="{y:.1f}" x2="{width - 10}" y2="{y:.1f}" stroke="#ddd"/>')
    for i, (label, value, before) in enumerate(zip(labels, values, compare)):
        x = left + 8 + i * group
        for offset, v, colour in ((0, before, BAR_COMPARE), (20, value, BAR)):
            h = bars * v / top
            parts.append(f'<rect class="bar" x="{x + offset}" y="{base - h:.1f}" width="18" '
                         f'height="{h:.1f}" fill="{colour}"/>')
        h = bars * value / top
        parts.append(f'<text x="{x + 29}" y="{base - h - 4:.1f}" font-size="{size - 2}" '
                     f'text-anchor="middle">{int(value)}</text>')
        weight = ' font-weight="bold"' if label in highlight else ""
        parts.append(f'<text x="{x + 19}" y="{base + 18}" font-size="{size - 1}" '
                     f'text-anchor="middle"{weight}>{html.escape(label[2:])}</text>')
    legend_y = base + 44
    parts.append(f'<rect x="{left}" y="{legend_y - 10}" width="12" height="12" fill="{BAR}"/>'
                 f'<text x="{left + 16}" y="{legend_y}" font-size="{size}">当月件次</text>'
                 f'<rect x="{left + 100}" y="{legend_y - 10}" width="12" height="12" fill="{BAR_COMPARE}"/>'
                 f'<text x="{left + 116}" y="{legend_y}" font-size="{size}">上年同月</text></svg>')
    return "".join(parts)


def chart_svg(table, max_rows):
    spec, frame = table.chart, table.frame
    if not spec or frame.empty:
        return ""
    if spec["kind"] == "months":
        highlight = set(frame.loc[frame["本期"] == "是", "月份"])
        return svg_months(frame[spec["label"]], frame[spec["value"]], frame[spec["compare"]],
                          table.title, highlight)
    if spec.get("skip_last"):
        frame = frame.iloc[:-1]
    if spec.get("exclude"):
        frame = frame[frame[spec["label"]] != spec["exclude"]]
    frame = frame[frame[spec["value"]] > 0]
    if frame.empty:
        return ""
    return svg_hbar(frame[spec["label"]], frame[spec["value"]], frame.get(spec.get("share")),
                    table.title, max_rows)


def table_html(table, max_rows=None):
    frame = table.frame if max_rows is None else table.frame.head(max_rows)
    numeric = {c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])}
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        total = any(isinstance(v, str) and "合计" in v for v in row)
        cells = "".join(f'<td class="num">{_cell(v)}</td>' if c in numeric else
                        f'<td class="{"wrap" if len(_cell(v)) > 24 else "text"}">{html.escape(_cell(v))}</td>'
                        for c, v in zip(frame.columns, row))
        body.append(f'<tr class="total">{cells}</tr>' if total else f"<tr>{cells}</tr>")
    more = ""
    if max_rows is not None and len(table.frame) > max_rows:
        more = f'<p class="note">（仅显示前 {max_rows} 行，共 {len(table.frame)} 行，全部见 report.xlsx。）</p>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{more}"


def render_html(report, settings):
    sections, toc = [], []
    for table in report.tables.values():
        chart = chart_svg(table, settings.chart_rows)
        figure = (f'<figure class="chart" data-chart="{table.key}">{chart}'
                  f"<figcaption>图：{html.escape(table.title)}</figcaption></figure>") if chart else ""
        rows = settings.html_max_rows if table.key in ("review", "units", "townships") else None
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
    lines = [f"# {report.title}", "", "## 综述", ""]
    for paragraph in report.narrative:
        lines += [paragraph, ""]
    lines += ["## 口径说明", ""]
    for table in report.tables.values():
        if table.note:
            lines.append(f"- **{table.title}**：{table.note}")
    return "\n".join(lines) + "\n"


def write_report(report, directory, settings):
    from pipeline.rundir import atomic_path

    directory = Path(directory)
    write_xlsx(report, directory / "report.xlsx")
    for name, text in (("report.html", render_html(report, settings)), ("report.md", render_markdown(report))):
        with atomic_path(directory / name) as tmp:
            tmp.write_text(text, encoding="utf-8")
    return [directory / name for name in OUTPUTS]


def make_report(letters, kind, end, settings, topic_names, source=""):
    """Build the report for the last complete ``kind`` period ending on ``end``.

    ``end`` defaults to the latest ``received_at`` in ``letters`` (already prepared).
    """
    if end is None:
        latest = letters[schema.RECEIVED_AT].max()
        if pd.isna(latest):
            raise PetitionError("no letter has a date; pass --end YYYY-MM-DD")
        end = latest
    period = last_complete_period(kind, end)
    return ReportBuilder(letters, period, settings, topic_names).build(source)


# --- CLI ---------------------------------------------------------------------------------------

def _date(text):
    try:
        return pd.Timestamp(dt.date.fromisoformat(text))
    except ValueError:
        raise PetitionError(f"--end: expected a date YYYY-MM-DD, got {text!r}") from None


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "report", help="office report: totals, topics, repeats, places, months (xlsx, html, md)",
        description="Read deduped.parquet (and the history of earlier letters), write report.xlsx, "
                    "report.html and report.md for the last complete period.")
    parser.add_argument("--run", required=True, help="run directory")
    parser.add_argument("--period", choices=tuple(PERIOD_MONTHS),
                        help="month, quarter, half or year (default: configuration report.period)")
    parser.add_argument("--end", help="report the last complete period ending on this date, YYYY-MM-DD "
                                      "(default: the latest received_at)")
    parser.add_argument("--history", help="Parquet file or folder of every earlier letter with the classify "
                                          "and dedupe columns (default: RUN/../archive/letters if it exists)")
    parser.set_defaults(func=run_cli)


def run_cli(args, config):
    from pipeline.rundir import RunDir, stage

    run = RunDir(args.run)
    settings = config.report
    end = _date(args.end) if args.end else None
    with stage(run, "report") as result:
        letters, source = load_letters(run, args.history)
        report = make_report(letters, args.period or settings.period, end, settings,
                             load_topic_names(PROJECT_ROOT / settings.taxonomy), source)
        paths = write_report(report, run.path, settings)
        overview = report.tables["overview"].frame.set_index("指标")
        result.rows_in = result.rows_out = len(letters)
        result.notes = {"period": f"{report.period.label} ({report.period.span})",
                        "items in period": int(overview.at["受理件次", "本期"]),
                        "unique matters": int(overview.at["纯件数（不同事项）", "本期"]),
                        "outputs": [str(p) for p in paths]}
