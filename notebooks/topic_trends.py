# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Topic trends: counts and shares over time
#
# Which topics are rising, which are fading? Counts per month and per quarter for every topic,
# and each topic's share of the items of that month (the denominator is printed in every table).
# A letter touching two topics is counted under each, so a month's topic counts can add up to
# more than its items.
#
# Input: a run directory (`PETITION_RUN`, default: the newest run under `runs/`) and the history
# of earlier letters that `petition report` reads (`<run>/../archive/letters`, or
# `PETITION_HISTORY`). People appear nowhere in this notebook: only counts.

# %%
import os

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from pipeline import explore, schema

RUN = explore.find_run()
HISTORY = os.environ.get("PETITION_HISTORY")  # None: <run>/../archive/letters when it exists
TOP = int(os.environ.get("PETITION_TOP_TOPICS", "6"))  # topics drawn in the charts

letters = explore.load(RUN, HISTORY)
names = explore.topic_names()
cjk = explore.use_cjk_font()  # Chinese labels in charts when a CJK font is installed
label = (lambda code: names.get(code, code)) if cjk else (lambda code: code)
dated = letters[letters[schema.RECEIVED_AT].notna()]
display(Markdown(f"Run `{RUN}`: {len(letters)} letters, {len(dated)} dated, "
                 f"{dated[schema.RECEIVED_AT].min():%Y-%m-%d} to {dated[schema.RECEIVED_AT].max():%Y-%m-%d}."))

# %% [markdown]
# ## Counts per month
# One row per month, one column per topic (Chinese names), plus the month's items (件次): the
# denominator of the shares below.

# %%
exploded = dated[[schema.RECEIVED_AT, schema.TOPIC_LIST]].explode(schema.TOPIC_LIST).dropna(subset=[schema.TOPIC_LIST])
exploded["month"] = exploded[schema.RECEIVED_AT].dt.to_period("M")
counts = exploded.pivot_table(index="month", columns=schema.TOPIC_LIST, values=schema.RECEIVED_AT,
                              aggfunc="count", fill_value=0)
items = dated.groupby(dated[schema.RECEIVED_AT].dt.to_period("M")).size().rename("件次（分母）")
counts = counts.reindex(items.index, fill_value=0)
order = counts.sum().sort_values(ascending=False).index
counts = counts[order]
table = counts.rename(columns=names).join(items)
table.tail(12)

# %% [markdown]
# ## First-level classes per month
# Topics are paths (一级/二级); the same counts by first-level class (一级类别), a letter counted
# once per class.

# %%
first_level = (exploded.assign(level1=exploded[schema.TOPIC_LIST].str.split("/").str[0])
               .reset_index().drop_duplicates(["index", "level1"]))
level1_counts = first_level.pivot_table(index="month", columns="level1", values="index", aggfunc="count",
                                        fill_value=0).reindex(items.index, fill_value=0)
level1_counts[level1_counts.sum().sort_values(ascending=False).index].join(items).tail(12)

# %% [markdown]
# ## Shares per month (%)
# Share = the topic's letters in the month ÷ the month's items (last column), in percent.

# %%
shares = (counts.div(items, axis=0) * 100).round(1)
shares.rename(columns=names).join(items).tail(12)

# %%
top = list(order[:TOP])
fig, axes = plt.subplots(2, 1, figsize=(11, 8), sharex=True)
months = counts.index.to_timestamp()
for code in top:
    axes[0].plot(months, counts[code], marker="o", label=label(code))
    axes[1].plot(months, shares[code], marker="o", label=label(code))
axes[0].set_ylabel("letters" if not cjk else "件次")
axes[1].set_ylabel("share of items (%)" if not cjk else "占当月件次(%)")
axes[0].legend(loc="upper left", fontsize=8, ncol=2)
axes[0].set_title(f"Top {TOP} topics by month" if not cjk else f"前{TOP}个类别的月度件次与占比")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Quarters, with the change from the same quarter a year before (同比)

# %%
quarterly = (exploded.groupby([exploded[schema.RECEIVED_AT].dt.to_period("Q"), schema.TOPIC_LIST]).size()
             .unstack(fill_value=0))
quarterly = quarterly.reindex(columns=order, fill_value=0)
quarter_items = dated.groupby(dated[schema.RECEIVED_AT].dt.to_period("Q")).size()
latest = quarterly.index.max()
year_ago = latest - 4
compare = pd.DataFrame({
    "code": order,
    "类别": [names.get(c, c) for c in order],
    f"{latest} 件次": quarterly.loc[latest].values,
    f"{latest} 占比(%)": (quarterly.loc[latest] / quarter_items[latest] * 100).round(1).values,
    f"{year_ago} 件次": (quarterly.loc[year_ago].values if year_ago in quarterly.index else 0),
})
before = compare[f"{year_ago} 件次"].where(compare[f"{year_ago} 件次"] > 0)  # no change from 0
compare["同比(%)"] = ((compare[f"{latest} 件次"] - before) / before * 100).round(1)
display(Markdown(f"Denominator of the shares: {quarter_items[latest]} items in {latest} "
                 f"(note: {latest} may be incomplete)."))
compare

# %% [markdown]
# ## Rising and falling
# Topics whose share in the last three months differs most from the three months before.

# %%
recent, earlier = counts.tail(3).sum(), counts.tail(6).head(3).sum()
recent_items, earlier_items = items.tail(3).sum(), items.tail(6).head(3).sum()
movement = pd.DataFrame({
    "类别": [names.get(c, c) for c in order],
    "近三个月占比(%)": (recent / max(recent_items, 1) * 100).round(1).values,
    "此前三个月占比(%)": (earlier / max(earlier_items, 1) * 100).round(1).values,
}, index=order)
movement["变化(百分点)"] = (movement["近三个月占比(%)"] - movement["此前三个月占比(%)"]).round(1)
display(Markdown(f"Denominators: {recent_items} items in the last three months, {earlier_items} before."))
movement.sort_values("变化(百分点)", ascending=False)

# %% [markdown]
# ## Handling per month: 办结率 and 反馈率
# Over the letters whose export had a status, closing or reply column (`pipeline.status`), each
# month's items as they stand at the latest date in the data: 办结率 = closed ÷ (tracked − 不予受理),
# 反馈率 = answered ÷ tracked (a reply without a status is an answer). The report gives the
# same figures for its period, as of the period's end, with the backlog (积案) by age.

# %%
from pipeline.status import answered_by, closed_by, has_closing, is_tracked

tracked = dated[is_tracked(dated)]
if tracked.empty:
    display(Markdown("These letters have no status, closing or reply column: no 办结率 or 反馈率."))
else:
    as_of = tracked[schema.RECEIVED_AT].max().normalize() + pd.Timedelta(days=1)
    by_month = tracked.assign(
        month=tracked[schema.RECEIVED_AT].dt.to_period("M"), closed=closed_by(tracked, as_of),
        answered=answered_by(tracked, as_of), refused=tracked[schema.STATUS] == schema.NOT_ACCEPTED,
    ).groupby("month").agg(tracked=("closed", "size"), closed=("closed", "sum"), answered=("answered", "sum"),
                           refused=("refused", "sum"))
    by_month["办结率(%)"] = (by_month["closed"] / (by_month["tracked"] - by_month["refused"]) * 100).round(1)
    by_month["反馈率(%)"] = (by_month["answered"] / by_month["tracked"] * 100).round(1)
    note = f"As of {as_of:%Y-%m-%d}; denominators in the `tracked` column."
    if not has_closing(tracked):   # replies alone: nothing says whether an item is closed
        by_month = by_month.drop(columns=["closed", "refused", "办结率(%)"])
        note += " No status or closing column: no 办结率."
    display(Markdown(note))
    display(by_month.tail(12))
