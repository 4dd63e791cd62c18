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
# # Case explorer: one matter, its letters side by side
#
# Pick a case (`case_id` from dedupe; `PETITION_CASE`, default: the case with the most letters
# in the run), see every letter of it side by side, with the specific names the letters share
# (villages, estates, roads, companies, masked people such as 张某) highlighted: those names are
# what make reworded letters one matter.
#
# Privacy: petitioners appear only as their pseudonym (`petitioner_key`, a keyed hash). Their
# names in the text are replaced by 〔信访人<pseudonym>〕, addresses by 〔住址〕, ID and phone
# numbers by masks, signatory lists by 〔联名人名单已隐去〕.

# %%
import os

import pandas as pd
from IPython.display import HTML, Markdown, display

from pipeline import explore, schema
from pipeline.reporting.tables import CHANNEL_ZH

RUN = explore.find_run()
HISTORY = os.environ.get("PETITION_HISTORY")
CASE = os.environ.get("PETITION_CASE", "")       # empty: the case with the most letters in the run
MAX_SIDE_BY_SIDE = int(os.environ.get("PETITION_SIDE_BY_SIDE", "4"))  # letters per row
MAX_LETTERS = int(os.environ.get("PETITION_CASE_LETTERS", "12"))        # letters shown in full

letters = explore.load(RUN, HISTORY)
run_ids = set(pd.read_parquet(RUN / "deduped.parquet", columns=[schema.LETTER_ID])[schema.LETTER_ID])
names = explore.topic_names()
display(Markdown(f"Run `{RUN}`: {len(run_ids)} letters tonight, {len(letters)} with the history."))

# %% [markdown]
# ## The largest cases touched by this run
# Letters (件次) and petitioners (by pseudonym) of each case over the whole history.

# %%
touched = letters[letters[schema.CASE_ID].isin(letters.loc[letters[schema.LETTER_ID].isin(run_ids), schema.CASE_ID])]
sizes = (touched.groupby(schema.CASE_ID)
         .agg(letters=(schema.LETTER_ID, "size"),
              petitioners=(schema.PETITIONER_KEY, lambda k: k[k != ""].nunique()),
              first=(schema.RECEIVED_AT, "min"), last=(schema.RECEIVED_AT, "max"),
              topic=(schema.TOPIC, lambda t: names.get(t.mode().iloc[0], t.mode().iloc[0]) if len(t) else ""),
              addressees=(schema.ADDRESSEE, "nunique"))
         .sort_values(["letters", "petitioners"], ascending=False))
sizes.head(15)

# %%
case_id = CASE or sizes.index[0]
if case_id not in set(letters[schema.CASE_ID]):
    raise ValueError(f"case {case_id!r} not found in {RUN}")
case = letters[letters[schema.CASE_ID] == case_id].sort_values(schema.RECEIVED_AT, kind="stable")
display(Markdown(f"## Case {explore.markdown_code(case_id)}: {len(case)} letters, "
                 f"{case[schema.PETITIONER_KEY].replace('', pd.NA).nunique()} petitioners (pseudonyms)"))
overview = explore.public_columns(case)[[schema.LETTER_ID, schema.RECEIVED_AT, schema.CHANNEL, schema.ADDRESSEE,
                                         schema.PETITIONER_KEY, schema.TOPIC, schema.NATURE, schema.RELATION,
                                         schema.DUPLICATE_OF]]
overview = overview.assign(**{schema.PETITIONER_KEY: overview[schema.PETITIONER_KEY].map(explore.pseudonym),
                              schema.TOPIC: overview[schema.TOPIC].map(lambda c: names.get(c, c)),
                              schema.CHANNEL: overview[schema.CHANNEL].map(lambda c: CHANNEL_ZH.get(c, c))})
overview.reset_index(drop=True)

# %% [markdown]
# ## Names the letters share
# Specific names (villages, estates, roads, companies, masked people) and in how many of the
# case's letters each occurs.

# %%
texts = explore.redact_frame(case, reference=letters)
counts = pd.Series(explore.name_counts(texts), dtype=int).sort_values(ascending=False)
counts[counts >= 2].head(30).rename("letters").to_frame()

# %% [markdown]
# ## Letters side by side, shared names highlighted
# In groups of `PETITION_SIDE_BY_SIDE` letters (first ones of the case, up to
# `PETITION_CASE_LETTERS`); in each group the names found in at least two of its letters are
# marked.

# %%
shown = case.head(MAX_LETTERS)
for start in range(0, len(shown), MAX_SIDE_BY_SIDE):
    display(HTML(explore.side_by_side(shown.iloc[start:], texts.iloc[start:len(shown)], None, MAX_SIDE_BY_SIDE)))
if len(case) > MAX_LETTERS:
    display(Markdown(f"({len(case) - MAX_LETTERS} more letters not shown; set `PETITION_CASE_LETTERS`.)"))

# %% [markdown]
# ## Links dedupe found inside this case
# From `links.csv` when the run has it: which letter was linked to which, why, how strongly, and
# the specific names both letters hold (`shared_names`, redacted like the texts).

# %%
links_path = RUN / "links.csv"
if links_path.exists():
    links = pd.read_csv(links_path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    display(explore.case_links(links, case))
else:
    display(Markdown("This run has no `links.csv`."))
