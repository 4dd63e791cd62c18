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
# # Classifier review: low-confidence letters, confusion matrix, corrections
#
# 1. The letters of a run the classifier was least sure about (`needs_review`, or confidence
#    under `PETITION_REVIEW_BELOW`), with their candidate topics.
# 2. Where true labels are known (`PETITION_LABELS`: a CSV with `letter_id` and a `label` or
#    `topic` column; default: the bundled sample's truth file when the run is the sample), the
#    confusion matrix of true against predicted topic.
# 3. Corrections: write the right topic code for any reviewed letter in `corrections` below;
#    they are saved as a CSV with columns `text,label` (`PETITION_CORRECTIONS`, default
#    `<run>/corrections.csv`) that `petition train --data FILE --text-col text --label-col label`
#    takes (add them to the office's labelled archive and retrain).
#
# Privacy: text is shown and saved with petitioners' names, addresses, ID and phone numbers
# replaced; people appear only as pseudonyms.

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from pipeline import explore, schema
from pipeline.config import PROJECT_ROOT
from pipeline.rundir import write_csv

RUN = explore.find_run()
LABELS = os.environ.get("PETITION_LABELS", "")
REVIEW_BELOW = os.environ.get("PETITION_REVIEW_BELOW", "")   # empty: the classifier's needs_review
OUT = Path(os.environ.get("PETITION_CORRECTIONS", "") or RUN / "corrections.csv")
SHOW = int(os.environ.get("PETITION_REVIEW_ROWS", "30"))

letters = explore.load(RUN, with_history=False)   # tonight's letters only
names = explore.topic_names()
# names and addresses to hide are gathered from every letter, the history included
letters["text"] = explore.redact_frame(letters, reference=explore.load(RUN, os.environ.get("PETITION_HISTORY")))
display(Markdown(f"Run `{RUN}`: {len(letters)} letters; {int(letters[schema.NEEDS_REVIEW].sum())} flagged "
                 f"needs_review by the classifier."))

# %% [markdown]
# ## Confidence
# The distribution of the top topic's calibrated probability; the review set is on the left.

# %%
if REVIEW_BELOW:
    review = letters[letters[schema.TOPIC_CONFIDENCE] < float(REVIEW_BELOW)]
else:
    review = letters[letters[schema.NEEDS_REVIEW]]
review = review.sort_values(schema.TOPIC_CONFIDENCE, kind="stable")
fig, ax = plt.subplots(figsize=(8, 3))
ax.hist(letters[schema.TOPIC_CONFIDENCE].dropna(), bins=40, color="#9aa5b1", label="all letters")
ax.hist(review[schema.TOPIC_CONFIDENCE].dropna(), bins=40, color="#c0392b", label="to review")
ax.set_xlabel("topic_confidence")
ax.set_ylabel("letters")
ax.legend()
plt.show()

# %% [markdown]
# ## Letters to review
# Least confident first. `top3` lists the candidate topics with their probabilities.

# %%
def candidates(top3):
    import json
    try:
        return "；".join(f"{names.get(c, c)} {p:.2f}" for c, p in json.loads(top3))
    except (TypeError, ValueError):
        return ""


table = pd.DataFrame({
    "letter_id": review[schema.LETTER_ID],
    "predicted": review[schema.TOPIC].map(lambda c: f"{names.get(c, c)} ({c})"),
    "confidence": review[schema.TOPIC_CONFIDENCE].round(3),
    "candidates": review[schema.TOP3].map(candidates),
    "text": review["text"].str.replace("\n", " ").str.slice(0, 160),
})
display(Markdown(f"{len(review)} letters to review; the first {min(SHOW, len(review))}:"))
table.head(SHOW)

# %% [markdown]
# ## Confusion matrix
# True topic (rows) against predicted topic (columns) for the letters whose true label is known.

# %%
def load_labels(path):
    """{letter_id: label} from a CSV/Parquet with letter_id and label (or topic) columns."""
    path = Path(path)
    frame = (pd.read_parquet(path) if path.suffix == ".parquet"
             else pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig"))
    column = next((c for c in ("label", "topic", "true_topic", "topics") if c in frame.columns), None)
    if schema.LETTER_ID not in frame.columns or column is None:
        raise ValueError(f"{path}: needs a letter_id column and a label or topic column")
    labels = explore.topic_labels(frame[column].astype(str).str.split("|").str[0])  # codes → taxonomy labels
    return dict(zip(frame[schema.LETTER_ID].astype(str), labels))


labels_path = LABELS or next((p for p in [PROJECT_ROOT / "corpora" / "sample" / "truth_letters.csv"] if p.exists()), "")
labels = load_labels(labels_path) if labels_path else {}
known = letters[letters[schema.LETTER_ID].isin(labels)]
if len(known):
    truth = known[schema.LETTER_ID].map(labels)
    matrix = pd.crosstab(truth.rename("true"), known[schema.TOPIC].rename("predicted"))
    codes = sorted(set(matrix.index) | set(matrix.columns))
    matrix = matrix.reindex(index=codes, columns=codes, fill_value=0)
    accuracy = (truth == known[schema.TOPIC]).mean()
    recall = pd.Series({c: matrix.at[c, c] / matrix.loc[c].sum() for c in codes if matrix.loc[c].sum()})
    display(Markdown(f"Labels from `{labels_path}`: {len(known)} of {len(letters)} letters; "
                     f"accuracy {accuracy:.3f}; lowest recall: "
                     + "、".join(f"{names.get(c, c)} {r:.2f}" for c, r in recall.sort_values().head(3).items())))
    display(matrix.rename(index=lambda c: names.get(c, c), columns=lambda c: names.get(c, c)))
    label = (lambda c: names.get(c, c)) if explore.use_cjk_font() else (lambda c: c)
    fig, ax = plt.subplots(figsize=(9, 8))
    ax.imshow(matrix.values, cmap="Reds")
    ax.set_xticks(range(len(codes)), [label(c) for c in codes], rotation=90, fontsize=8)
    ax.set_yticks(range(len(codes)), [label(c) for c in codes], fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), n in pd.DataFrame(matrix.values).stack().items():
        if n:
            ax.text(j, i, int(n), ha="center", va="center", fontsize=7)
    fig.tight_layout()
    plt.show()
    # topics are paths 一级/二级: the first level alone is what most offices count
    first = truth.str.split("/").str[0], known[schema.TOPIC].str.split("/").str[0]
    display(Markdown(f"First level (一级类别) accuracy {(first[0] == first[1]).mean():.3f}:"))
    display(pd.crosstab(first[0].rename("true"), first[1].rename("predicted")))
else:
    display(Markdown("No true labels for this run's letters: set `PETITION_LABELS` to a CSV with "
                     "`letter_id` and `label` columns to see the confusion matrix."))

# %% [markdown]
# ## Corrections
# Write the right topic for reviewed letters here, `"letter_id": "一级/二级"` (or a topic code). When this
# dictionary is empty and true labels are known (above), the reviewed letters get their known
# labels, so the saved file shows what a review produces.

# %%
corrections = {
    # "L000123": "国土资源/征地拆迁",
}

# %%
if not corrections and labels:
    corrections = {i: labels[i] for i in review[schema.LETTER_ID] if i in labels}
corrections = dict(zip(corrections, explore.topic_labels(corrections.values())))
valid = set(names) | set(labels.values())
unknown = {i: c for i, c in corrections.items() if c not in valid}
if unknown:
    raise ValueError(f"unknown topic codes in corrections: {unknown}; use one of {sorted(valid)}")
missing = set(corrections) - set(letters[schema.LETTER_ID])
if missing:
    raise ValueError(f"letters not in this run: {sorted(missing)}")
chosen = letters.set_index(schema.LETTER_ID).loc[list(corrections)]
saved = pd.DataFrame({"text": chosen["text"].values, "label": list(corrections.values())})
write_csv(saved, OUT)
changed = sum(corrections[i] != chosen.at[i, schema.TOPIC] for i in corrections)
display(Markdown(f"Saved {len(saved)} corrections ({changed} differ from the classifier) to `{OUT}`.\n\n"
                 f"Retrain with them added to the labelled archive, e.g.:\n\n"
                 f"`petition train --data {OUT} --text-col text --label-col label --model models/office`"))
saved.head()
