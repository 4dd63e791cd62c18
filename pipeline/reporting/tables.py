"""The report's tables: figures laid out as DataFrames with Chinese headings, titles and notes.

:func:`build_tables` turns the output of ``figures.compute_figures`` into {key: :class:`Table`},
in the order the report shows them. Nothing is counted here: every cell is a figure or a
label of one.
"""
import dataclasses

import numpy as np
import pandas as pd

from pipeline import schema
from pipeline.reporting.figures import UNKNOWN_TOWNSHIP

CHANNEL_ZH = {schema.LETTER: "来信", schema.VISIT: "来访", schema.PHONE: "来电", schema.ONLINE: "网上信访",
              schema.MAILBOX: "领导信箱", "": "未注明"}
LEVEL_ZH = {**dict(zip(schema.LEVELS, ("乡镇（街道）", "县级", "市级", "省级", "国家级"))), "": "未注明"}
PERIOD_ZH = {"month": "月度", "quarter": "季度", "half": "半年", "year": "年度"}
OVERVIEW_ZH = {"items": "受理件次", "matters": "纯件数（不同事项）", schema.LETTER: "来信（件）",
               "visit_batches": "来访（批）", "visit_persons": "来访（人次）", schema.PHONE: "来电（件）",
               schema.ONLINE: "网上信访（件）", schema.MAILBOX: "领导信箱（件）", "consultation": "咨询类（件）",
               "petitioners": "信访人（去重，按化名）"}
# {figure: (row heading, definition)} of the features table
FEATURES_ZH = {
    "repeat": ("重复件（重信重访）", "该事项此前已有来信（duplicate_of 非空），即不是该事项的首件"),
    "repeat_petition": ("其中：同一信访人重复信访", "relation = repeat_petition：同一信访人再次反映同一事项"),
    "joint_or_collective": ("联名或集体", "联名信或集体访（任一）"),
    "joint": ("其中：联名信", "有两个及以上署名人"),
    "collective": ("其中：集体访", "5人及以上"),
    "anonymous": ("匿名", "未署名或署名为匿名"),
    "skip_level": ("越级", "受理机关层级高于事项所属层级"),
    "law_litigation": ("涉法涉诉", "应导入法律程序的"),
    "multi_topic": ("涉及多个类别", "分别计入各类别"),
    "needs_review": ("需人工复核", "分类置信度低于模型复核阈值"),
}
TOTAL_MARK = "合计"      # a row whose label holds it is a total row (bold in HTML)
# Column headings shared by several tables.
COUNT, SHARE, BASE = "件次", "占比(%)", "分母(本期件次)"
SMALL_BASE = "基数过小"   # a change (%) not given: the base compared with is below report.min_change_base
CASE_COLUMNS = ["事项编号", "事项名称", "摘要（首件，已脱敏）", "累计件次", "本期件次", "信访人数", "信访人（化名）", "首次来信", "最近来信",
                "主要类别", "受理单位数"]


@dataclasses.dataclass
class Table:
    """One table of the report: a sheet in report.xlsx, a section in report.html.

    ``chart`` says how HTML draws it: {"kind": "hbar"|"months", "label": column, "value":
    column, "share"/"compare": column, "skip_last": bool, "exclude": label}; None for no chart.
    """

    key: str
    title: str
    frame: pd.DataFrame
    note: str = ""
    chart: dict = None


def cell_text(value):
    """A table cell as report.html and its charts show it: "—" for none, 是/否, one or two decimals."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "—"
    if isinstance(value, (bool, np.bool_)):
        return "是" if value else "否"
    if isinstance(value, (float, np.floating)):
        return f"{value:.1f}" if round(value, 1) == value else f"{value:.2f}"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value)


def rate_cell(rate, base, min_base):
    """A 同比/环比 (%) cell: the rate; 基数过小 when the base has items but fewer than ``min_base``;
    None ("—") when there is no base."""
    if base and base < min_base:
        return SMALL_BASE
    return rate


def _short_date(value):
    return "" if pd.isna(value) else f"{pd.Timestamp(value):%Y-%m-%d}"


def _hbar(label):
    return {"label": label, "value": COUNT, "share": SHARE, "kind": "hbar"}


def _columns(rows, columns):
    """A frame of ``rows`` with ``columns`` {heading: figure key}, also when there is no row."""
    return pd.DataFrame({heading: [row[key] for row in rows] for heading, key in columns.items()})


def overview(figures):
    periods = figures["periods"]
    now, year_ago, previous = periods["now"], periods["year_ago"], periods["previous"]
    least = figures["min_change_base"]
    rows = [{"指标": OVERVIEW_ZH[name], "本期": f["now"], "上年同期": f["year_ago"], "同比增减": f["vs_year_ago"],
             "同比(%)": rate_cell(f["vs_year_ago_pct"], f["year_ago"], least), "上期": f["previous"],
             "环比增减": f["vs_previous"], "环比(%)": rate_cell(f["vs_previous_pct"], f["previous"], least)}
            for name, f in figures["overview"].items()]
    return Table("overview", "总体情况", pd.DataFrame(rows),
                 f"本期：{now.label}（{now.span}）；上年同期：{year_ago.label}；"
                 f"上期：{previous.label}。件次为受理的全部来信、来访、来电和网上信访；纯件数为其中"
                 "不同事项（case_id）的个数；来访按批次和人次计（未登记人数的按1人计）。"
                 "同比、环比为相对上年同期、上期的增减百分比，对比期为0时不计算；对比期不足"
                 f"{least}件次的不计算百分比，标为“{SMALL_BASE}”（配置 report.min_change_base）。")


def channels(figures):
    items = figures["items"]
    frame = pd.DataFrame([{"渠道": CHANNEL_ZH[row["channel"]], COUNT: row["items"], SHARE: row["share"],
                           "来访人次": row["persons"], BASE: items} for row in figures["channels"]])
    frame["来访人次"] = frame["来访人次"].astype("Int64")
    return Table("channels", "渠道构成", frame, f"占比以本期受理件次 {items} 为分母；来访的件次即批次。",
                 _hbar("渠道"))


def _topic_row(figures, code, name, f):
    return {"代码": code, "类别": name, COUNT: f["items"], SHARE: f["share"], "上年同期": f["year_ago"],
            "同比(%)": rate_cell(f["vs_year_ago_pct"], f["year_ago"], figures["min_change_base"]),
            BASE: figures["items"]}


def topics(figures):
    items, topic_figures = figures["items"], figures["topics"]
    total, multi = topic_figures["total"], topic_figures["multi_topic"]
    frame = pd.concat([pd.DataFrame([_topic_row(figures, r["code"], r["name"], r) for r in topic_figures["rows"]]),
                       pd.DataFrame([_topic_row(figures, "", f"各类别{TOTAL_MARK}（多类别重复计入）", total)])],
                      ignore_index=True)
    return Table("topics", "问题类别", frame,
                 f"占比以本期受理件次 {items} 为分母。一件涉及多个类别的，分别计入各个类别"
                 f"（本期 {multi} 件涉及两个及以上类别），因此各类别合计 {total['items']} 件次，占比之和可超过100%。",
                 {**_hbar("类别"), "skip_last": True})


def topics_level1(figures):
    frame = pd.DataFrame([_topic_row(figures, r["code"], r["name"], r) for r in figures["topics_level1"]["rows"]])
    return Table("topics_level1", "一级类别", frame.drop(columns="代码"),
                 f"按全国信访内容分类的一级类别计数：一件涉及同一一级类别下多个二级类别的只计一次；"
                 f"占比以本期受理件次 {figures['items']} 为分母。", _hbar("类别"))


def nature(figures):
    items = figures["items"]
    frame = pd.DataFrame([{"性质": row["nature"], COUNT: row["items"], SHARE: row["share"], BASE: items}
                          for row in figures["nature"]])
    return Table("nature", "信访性质", frame,
                 f"每件一个性质（申诉、举报控告、求决、咨询、意见建议）；占比以本期受理件次 {items} 为分母。",
                 _hbar("性质"))


def scope(figures):
    items, f = figures["items"], figures["scope"]
    names = "、".join(f["out_of_scope_topics"])
    rows = [("属于受理范围", f["in_scope"], "其余各件"),
            ("不属于受理范围", f["out_of_scope"], f"所涉类别均为：{names}"),
            ("涉法涉诉", f["law_litigation"], "依法导入诉讼、复议、仲裁等法律程序（与上两行交叉）")]
    frame = pd.DataFrame([{"范围": name, COUNT: row["items"], SHARE: row["share"], BASE: items, "口径": rule}
                          for name, row, rule in rows])
    return Table("scope", "受理范围", frame,
                 f"不属于受理范围：一件所涉的全部类别都在配置 report.out_of_scope_topics"
                 f"（{names}）之中。涉法涉诉单列，不从受理范围中扣除。")


def features(figures):
    items, f = figures["items"], figures["features"]
    frame = pd.DataFrame([{"指标": name, COUNT: f[key]["items"], SHARE: f[key]["share"], BASE: items, "口径": rule}
                          for key, (name, rule) in FEATURES_ZH.items()])
    visits = f["collective_visits"]
    frame = pd.concat([frame, pd.DataFrame([
        {"指标": "集体访（来访批次）", COUNT: visits["items"], SHARE: visits["share"], BASE: items,
         "口径": f"来访渠道的集体访，共 {visits['persons']} 人次"}])], ignore_index=True)
    return Table("features", "重复、联名集体、匿名、越级", frame,
                 f"占比以本期受理件次 {items} 为分母；各项可交叉，不可相加。")


def townships(figures):
    items, rows = figures["items"], figures["townships"]
    frame = _columns(rows, {"乡镇（街道）": "township", COUNT: "items", SHARE: "share", "纯件数": "matters",
                            "集体访": "collective", "来访人次": "visit_persons", "取自住址": "from_address",
                            "取自正文": "from_text"})
    frame[BASE] = items
    from_address, from_text = (sum(row[key] for row in rows) for key in ("from_address", "from_text"))
    unknown = sum(row["items"] for row in rows if row["township"] == UNKNOWN_TOWNSHIP)
    return Table("townships", "乡镇（街道）分布", frame,
                 "乡镇（街道）取自信访人住址（配置 report.township_pattern），住址中没有的从来信正文中查找"
                 "已知乡镇名（住址中出现的、正文中按 report.township_text_patterns 找到的、分词词典中以"
                 f"街道/镇/乡结尾的）；都没有的计为“{UNKNOWN_TOWNSHIP}”。本期取自住址 {from_address} 件次，"
                 f"取自正文 {from_text} 件次，{UNKNOWN_TOWNSHIP} {unknown} 件次。占比以本期受理件次 {items} 为分母。",
                 {**_hbar("乡镇（街道）"), "exclude": UNKNOWN_TOWNSHIP})


def units(figures):
    items = figures["items"]
    rows = [{**row, "level": LEVEL_ZH.get(row["level"], row["level"])} for row in figures["units"]]
    frame = _columns(rows, {"受理单位": "unit", "层级": "level", COUNT: "items", SHARE: "share",
                            "来访（批）": "visit_batches", "集体访": "collective", "越级": "skip_level"})
    frame[BASE] = items
    return Table("units", "受理单位", frame,
                 "按来信的受理机关（addressee）统计；集体访列可用于按集体访排名。"
                 f"占比以本期受理件次 {items} 为分母。", _hbar("受理单位"))


def levels(figures):
    items = figures["items"]
    frame = pd.DataFrame([{"受理层级": LEVEL_ZH[row["level"]], COUNT: row["items"], SHARE: row["share"],
                           "来访（批）": row["visit_batches"], "来访（人次）": row["visit_persons"], BASE: items}
                          for row in figures["levels"]])
    return Table("levels", "受理层级", frame, "按受理机关层级（到乡镇、县、市、省、进京）统计。", _hbar("受理层级"))


def months(figures):
    rows = figures["months"]
    frame = pd.DataFrame([{"月份": row["month"], COUNT: row["items"], "纯件数": row["matters"],
                           "来访人次": row["visit_persons"], "上年同月": row["year_ago"],
                           "同比(%)": rate_cell(row["vs_year_ago_pct"], row["year_ago"], figures["min_change_base"]),
                           "本期": "是" if row["in_period"] else ""}
                          for row in rows])
    return Table("months", "月度趋势", frame,
                 f"截至本期末的 {len(rows)} 个月，每月件次与上年同月对比（上年同月不足"
                 f"{figures['min_change_base']}件次的标为“{SMALL_BASE}”）；“本期”列标出统计周期内的月份。",
                 {"label": "月份", "value": COUNT, "compare": "上年同月", "kind": "months"})


def cases(figures):
    f = figures["cases"]
    rows = [{"事项编号": row["case_id"], "事项名称": row["label"], "摘要（首件，已脱敏）": row["excerpt"],
             "累计件次": row["letters"], "本期件次": row["letters_in_period"],
             "信访人数": len(row["petitioner_keys"]),
             "信访人（化名）": "、".join(row["petitioner_keys"][:3]) + ("等" if len(row["petitioner_keys"]) > 3 else ""),
             "首次来信": _short_date(row["first"]), "最近来信": _short_date(row["last"]),
             "主要类别": row["topic_name"], "受理单位数": row["addressees"]} for row in f["rows"]]
    return Table("cases", "重复信访较多的事项", pd.DataFrame(rows, columns=CASE_COLUMNS),
                 f"本期有来信、累计两件及以上的事项，按累计件次排序，前 {f['top']} 个。"
                 "事项名称为其最早一件来信的标题（无标题的取各件共有的地名、单位名），身份证号、电话等已遮盖；"
                 "信访人只以化名（petitioner_key，加密哈希）列出；信访人数按化名去重，匿名件不计。")


def review(figures):
    rows = [{**row, "received_at": _short_date(row["received_at"]),
             "channel": CHANNEL_ZH.get(row["channel"], row["channel"]),
             "candidates": "；".join(f"{name} {p:.2f}" for name, p in row["candidates"])} for row in figures["review"]]
    frame = _columns(rows, {"信件编号": "letter_id", "日期": "received_at", "渠道": "channel", "类别": "topic_name",
                            "置信度": "confidence", "候选类别": "candidates", "受理单位": "addressee",
                            "事项编号": "case_id", "事项名称": "label", "摘要（已脱敏）": "excerpt"})
    return Table("review", "需人工复核的来信", frame,
                 f"本期分类置信度低于复核阈值的来信共 {len(frame)} 件，按置信度从低到高排列；"
                 "在 classifier_review 笔记本中复核并保存更正。")


# One line instead of a table of zeros when the letters lack what a handling table needs.
NO_STATUS = "本期数据没有办理状态、办结或答复列（办理状态、办结日期、答复意见、答复时间等），不统计办结率、反馈率和积案。"
NO_BODIES = "本期数据没有责任单位列（责任单位、交办单位、承办单位），不按责任单位统计。"
NO_CLOSING = "本期数据没有办结信息（办理状态、办结日期），无法判断回流。"
NO_CLOSING_RATE = "无办结信息，不统计"
NO_CLOSING_BACKLOG = "本期数据没有办结信息（办理状态、办结日期），不统计积案和超期。"
NO_DATES = "无{}列"
NOTE = "说明"


def _one_line(key, title, line):
    """A table that says in one line why it has no figures."""
    return Table(key, title, pd.DataFrame({NOTE: [line]}), line)


def _days(value, available, column):
    return value if available else NO_DATES.format(column)


def handling(figures):
    f = figures["handling"]
    title = "办理情况（办结率、反馈率）"
    if not f["available"]["status"]:
        return _one_line("handling", title, NO_STATUS)
    now, has = f["period"], f["available"]
    rows = [("本期受理件次", now["items"], "本期登记的全部来信"),
            ("其中：有办理信息的", now["tracked"], "来信导出时带有办理状态、办结日期、答复意见或答复时间")]
    if has["closing"]:
        rows += [("已办结", now["closed"], "办理状态为办结，或有办结日期（截至期末）"),
                 ("不予受理", now["not_accepted"], "办理状态为不予受理"),
                 ("办结率(%)", now["closed_rate"], "已办结 ÷（有办理信息的件次 − 不予受理）"),
                 ("办结用时中位数（天）", _days(now["days_to_close"], has["close_dates"], "办结日期"),
                  "办结日期减登记日期，取中位数")]
    else:
        rows.append(("办结率(%)", NO_CLOSING_RATE, "需要办理状态或办结日期列"))
    rows += [("已答复（反馈）", now["answered"], "已办结、已答复、不予受理（已告知），或有答复意见、答复时间（截至期末）"),
             ("反馈率(%)", now["answered_rate"], "已答复 ÷ 有办理信息的件次"),
             ("答复用时中位数（天）", _days(now["days_to_reply"], has["reply_dates"], "答复时间"),
              "答复时间减登记日期，取中位数")]
    frame = pd.DataFrame(rows, columns=["指标", "数值", "口径"])
    return Table("handling", title, frame,
                 f"统计本期（{figures['periods']['now'].label}）登记、带有办理信息的来信，办理状态截至期末"
                 f"（{_short_date(f['limits']['as_of'])}）。办理状态的写法见配置 status.values；"
                 "只有答复、没有办理状态的计为已答复。")


def _band(row):
    if row["to"] is None:
        return f"{row['from']}天及以上"
    return f"不满{row['to']}天" if row["from"] == 0 else f"{row['from']}–{row['to']}天"


def backlog(figures):
    f = figures["handling"]
    title = "积案与超期"
    if not f["available"]["status"]:
        return _one_line("backlog", title, NO_STATUS)
    if not f["available"]["closing"]:
        return _one_line("backlog", title, NO_CLOSING_BACKLOG)
    limits, b = f["limits"], f["backlog"]
    rows = [{"积案账龄（自登记起）": _band(row), "件数": row["items"]} for row in b["bands"]]
    rows += [{"积案账龄（自登记起）": f"积案{TOTAL_MARK}", "件数": b["open"]},
             {"积案账龄（自登记起）": f"超期（超过{limits['time_limit_days']}天未办结）", "件数": b["overdue"]},
             {"积案账龄（自登记起）": f"其中：超过{limits['extended_limit_days']}天（延期后仍超期）",
              "件数": b["overdue_extended"]}]
    return Table("backlog", title, pd.DataFrame(rows),
                 f"截至期末（{_short_date(limits['as_of'])}）仍未办结的全部来信（有办理信息、不含不予受理，"
                 "不限于本期登记的），按登记以来的天数分段（配置 status.age_bands）。办理时限为"
                 f"{limits['time_limit_days']}天，延长后不超过{limits['extended_limit_days']}天"
                 "（配置 status.time_limit_days、status.extended_limit_days）。")


def bodies(figures):
    f = figures["handling"]
    title = "责任单位办理情况（按超期件排名）"
    if not f["available"]["status"]:
        return _one_line("bodies", title, NO_STATUS)
    if not f["available"]["bodies"]:
        return _one_line("bodies", title, NO_BODIES)
    closing = f["available"]["closing"]
    columns = {"排名": "rank", "责任单位": "body", "本期件次": "items", "已办结": "closed", "办结率(%)": "closed_rate",
               "已答复": "answered", "反馈率(%)": "answered_rate", "办结用时中位数（天）": "days_to_close",
               "积案": "open", "超期": "overdue", "超过延期时限": "overdue_extended"}
    if not closing:
        columns = {k: v for k, v in columns.items() if v in ("rank", "body", "items", "answered", "answered_rate")}
    frame = _columns(f["bodies"], columns)
    for column in ("办结率(%)", "反馈率(%)", "办结用时中位数（天）"):
        if column in frame:
            frame[column] = frame[column].astype(float)
    return Table("bodies", title, frame,
                 "按交办/承办的责任单位统计：本期件次、办结率、反馈率口径同“办理情况”；积案、超期截至期末，"
                 "口径同“积案与超期”。按超期件数排名，相同的按积案件数。" if closing else
                 "按交办/承办的责任单位统计，口径同“办理情况”。" + NO_CLOSING_BACKLOG)


def reopened(figures):
    f = figures["handling"]
    title = "回流（已办结事项再次来信）"
    if not f["available"]["closing"]:
        return _one_line("reopened", title, NO_CLOSING)
    back = f["reopened"]
    rows = [{"事项编号": row["case_id"], "事项名称": row["label"], "本期回流件次": row["items"]} for row in back["matters"]]
    rows.append({"事项编号": "", "事项名称": f"{TOTAL_MARK}（{len(back['matters'])}个事项）",
                 "本期回流件次": back["items"]})
    return Table("reopened", title, pd.DataFrame(rows),
                 "回流：本期来信所属事项的此前各件来信，在它到达之前都已办结（按办结日期；没有日期的，以更早一次"
                 "导入时已是办结状态为准）。由 dedupe 在来信入库时标记（deduped.parquet 的 reopened 列、"
                 "cases.csv 的 status = reopened）。")


def meta(figures):
    periods, f = figures["periods"], figures["meta"]
    now, year_ago, previous = periods["now"], periods["year_ago"], periods["previous"]
    rows = [("统计周期", f"{now.label}（{now.span}）"),
            ("上年同期", f"{year_ago.label}（{year_ago.span}）"),
            ("上期", f"{previous.label}（{previous.span}）"),
            ("统计口径", f"{PERIOD_ZH[now.kind]}；按登记日期（received_at）"),
            ("数据来源", f["source"]),
            ("来信总数（全部历史）", f["letters"]),
            ("无日期未计入", f["undated"]),
            ("生成时间", f["generated"]),
            ("程序版本", f"petition {f['version']}")]
    return Table("meta", "报告说明", pd.DataFrame(rows, columns=["项目", "内容"]), "")


TABLES = (overview, channels, topics, topics_level1, nature, scope, features, townships, units, levels, months,
          cases, handling, backlog, bodies, reopened, review, meta)


def build_tables(figures):
    """{key: Table} of every table, in report order, from ``figures`` (``compute_figures``)."""
    return {table.key: table for table in (make(figures) for make in TABLES)}
