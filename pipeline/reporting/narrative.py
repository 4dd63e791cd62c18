"""The report's summary in office Chinese, written from the figures (never from table cells).

``narrative(figures)`` returns the paragraphs; every number in them is a figure that a table
also shows, formatted as the table cells are.
"""
import numpy as np
import pandas as pd

from pipeline import schema
from pipeline.reporting.figures import UNKNOWN_TOWNSHIP, UNNAMED_UNIT
from pipeline.reporting.periods import CN_DIGITS
from pipeline.reporting.tables import CHANNEL_ZH, NO_CLOSING_BACKLOG, NO_STATUS, SMALL_BASE


def _fmt(value):
    """A number as the narrative writes it (same as the HTML table cells)."""
    if isinstance(value, (float, np.floating)):
        return f"{value:.1f}"
    return str(int(value))


def _trend(rate, word):
    if rate is None or pd.isna(rate):
        return f"{word}无可比数据"
    if rate == 0:
        return f"{word}持平"
    return f"{word}{'上升' if rate > 0 else '下降'}{_fmt(abs(rate))}%"


def _compared(measure, word, least, is_total=False):
    """``measure``'s change against the year before (同比) or the previous period (环比); the
    counts instead of a percentage when the base is below ``least`` (report.min_change_base)."""
    rate, base, base_name = ((measure["vs_year_ago_pct"], measure["year_ago"], "上年同期") if word == "同比"
                             else (measure["vs_previous_pct"], measure["previous"], "上期"))
    if not base:
        return f"{base_name}无{'来信记录' if is_total else '可比数据'}"
    if base < least:
        return f"{base_name}仅{_fmt(base)}件次，{SMALL_BASE}，不计{word}增减幅度"
    return f"{_trend(rate, word)}（{base_name}{_fmt(base)}件次）" if is_total else _trend(rate, word)


def _said(figure):
    return f"{_fmt(figure['items'])}件次，占{_fmt(figure['share'])}%"


def _volume(figures):
    overview, period, least = figures["overview"], figures["periods"]["now"], figures["min_change_base"]
    items = overview["items"]
    text = (f"{period.label}，共受理信访事项{_fmt(items['now'])}件次，{_compared(items, '同比', least, True)}，"
            f"{_compared(items, '环比', least, True)}；涉及不同事项（纯件数）{_fmt(overview['matters']['now'])}件。")
    parts = []
    for row in figures["channels"]:
        if row["items"] == 0:
            continue
        name = CHANNEL_ZH[row["channel"]]
        if row["channel"] == schema.VISIT:
            part = f"来访{_fmt(row['items'])}批{_fmt(row['persons'])}人次，占{_fmt(row['share'])}%"
            if overview["visit_batches"]["year_ago"]:
                part += "，批次" + _compared(overview["visit_batches"], "同比", least)
        else:
            part = f"{name}{_fmt(row['items'])}件次，占{_fmt(row['share'])}%"
            if row["channel"] == schema.LETTER and overview[schema.LETTER]["year_ago"]:
                part += "，" + _compared(overview[schema.LETTER], "同比", least)
        parts.append(part)
    return text + "其中" + "；".join(parts) + "。"


def _topics(figures):
    rows, total = figures["topics"]["rows"], figures["topics"]["total"]
    top = [row for row in rows if row["items"] > 0][:3]
    ranking = "；".join(f"{row['name']}{_said(row)}" for row in top)
    text = (f"从问题类别看，排在前{CN_DIGITS[len(top)]}位的是：{ranking}。"
            f"（占比以本期{_fmt(figures['items'])}件次为分母；一件涉及多个类别的分别计入各类别，"
            f"各类别合计{_fmt(total['items'])}件次。）")
    rising = [row for row in rows if row["vs_year_ago_pct"] is not None and not pd.isna(row["vs_year_ago_pct"])
              and row["vs_year_ago_pct"] > 0 and row["items"] >= 5]
    if rising:
        fastest = max(rising, key=lambda row: row["vs_year_ago_pct"])   # the first of equal rises
        text += f"增幅较大的是{fastest['name']}，同比上升{_fmt(fastest['vs_year_ago_pct'])}%。"
    absent = [row["name"] for row in rows if row["items"] == 0]
    if absent:
        text += f"本期未收到{'、'.join(absent[:3])}{'等' if len(absent) > 3 else ''}方面的信访。"
    return text


def _nature(figures):
    shown = sorted((row for row in figures["nature"] if row["items"] > 0), key=lambda row: -row["items"])
    if not shown:
        return None
    return "从信访性质看，" + "；".join(f"{row['nature']}类{_said(row)}" for row in shown) + "。"


def _features(figures):
    f, scope = figures["features"], figures["scope"]
    return (f"重复件（该事项此前已有来信）{_said(f['repeat'])}，其中同一信访人重复信访"
            f"{_fmt(f['repeat_petition']['items'])}件次；联名或集体{_said(f['joint_or_collective'])}；"
            f"匿名{_said(f['anonymous'])}；越级{_said(f['skip_level'])}。"
            f"不属于受理范围{_said(scope['out_of_scope'])}；涉法涉诉{_said(scope['law_litigation'])}。")


def _places(figures):
    towns = [row for row in figures["townships"] if row["township"] != UNKNOWN_TOWNSHIP and row["items"] > 0][:3]
    text = ""
    if towns:
        text += "从地域看，信访量居前的乡镇（街道）是" + "、".join(
            f"{row['township']}（{_fmt(row['items'])}件次）" for row in towns) + "。"
    named = [unit for unit in figures["units"] if unit["unit"] != UNNAMED_UNIT]
    if named:
        text += f"受理单位中，{named[0]['unit']}受理最多，{_said(named[0])}。"
    elif figures["units"]:
        text += f"受理单位均未注明（{_said(figures['units'][0])}）。"
    return text or None


def _cases(figures):
    text = ""
    if figures["cases"]["rows"]:
        case = figures["cases"]["rows"][0]
        name = (f"「{case['label']}」（{case['case_id']}，{case['topic_name']}）" if case["label"]
                else f"{case['case_id']}（{case['topic_name']}）")
        text += (f"累计来信最多的事项为{name}，累计{_fmt(case['letters'])}件次，"
                 f"信访人{_fmt(len(case['petitioner_keys']))}人。")
    return text + f"分类置信度较低、需人工复核的来信{_fmt(figures['features']['needs_review']['items'])}件。"


def _handling(figures):
    """办结率, 反馈率, days, 积案 and 超期, the body with most overdue items, 回流; one line
    saying they are not counted when the letters carry no handling columns."""
    f = figures["handling"]
    if not f["available"]["status"]:
        return NO_STATUS
    now, backlog, limits, closing = f["period"], f["backlog"], f["limits"], f["available"]["closing"]
    rates = []
    if closing:
        rates.append(f"已办结{_fmt(now['closed'])}件次" + (f"，办结率{_fmt(now['closed_rate'])}%"
                                                        if now["closed_rate"] is not None else ""))
    rates.append(f"已答复{_fmt(now['answered'])}件次" + (f"，反馈率{_fmt(now['answered_rate'])}%"
                                                      if now["answered_rate"] is not None else ""))
    for key, word in (("days_to_reply", "答复"), ("days_to_close", "办结")):
        if now[key] is not None:
            rates.append(f"{word}用时中位数{_fmt(now[key])}天")
    text = f"从办理情况看，本期有办理信息的{_fmt(now['tracked'])}件次中，" + "；".join(rates) + "。"
    if not closing:
        return text + NO_CLOSING_BACKLOG
    text += (f"截至期末，未办结的积案{_fmt(backlog['open'])}件，其中超过{limits['time_limit_days']}天的超期件"
             f"{_fmt(backlog['overdue'])}件（超过{limits['extended_limit_days']}天的{_fmt(backlog['overdue_extended'])}件）。")
    late = [row for row in f["bodies"] if row["overdue"] and row["body"] != UNNAMED_UNIT]
    if f["available"]["bodies"] and late:
        text += f"超期件最多的责任单位是{late[0]['body']}（{_fmt(late[0]['overdue'])}件）。"
    back = f["reopened"]
    return text + (f"已办结事项再次来信（回流）{_fmt(back['items'])}件，涉及{_fmt(len(back['matters']))}个事项。"
                   if back["items"] else "本期没有回流件。")


def narrative(figures):
    """The office-style summary of ``figures`` (``compute_figures``), a list of paragraphs."""
    items, period = figures["overview"]["items"], figures["periods"]["now"]
    if items["now"] == 0:
        return [f"{period.label}，未受理信访事项（上年同期{_fmt(items['year_ago'])}件次）。"]
    paragraphs = [_volume(figures), _topics(figures), _nature(figures), _features(figures), _places(figures),
                  _cases(figures), _handling(figures)]
    return [paragraph for paragraph in paragraphs if paragraph]


def model_paragraphs(generated_notice):
    """A closing paragraph when classify used a model trained on generated letters
    (``generated_notice``, classify's note, or None): its topics are a first sorting."""
    if not generated_notice:
        return []
    return ["说明：本期来信的分类由通用模型完成，该模型以生成的模拟来信训练，未使用本单位的历史来信，"
            "分类结果仅作初步分拣，需人工复核。可用本单位已分类的历史来信重新训练模型"
            "（petition train，见使用说明“petition train, evaluate, classify”一节）。"]
