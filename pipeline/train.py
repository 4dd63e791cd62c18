"""Train: fit the letter classifier on a labelled archive and write it with its model card.

``petition train --data FILE --text-col C [--text-col C2] --label-col L [--label-sep S]
--model DIR`` reads CSV, XLSX or JSONL (``intake.readers.read_table``: format and encoding are
detected). Several text columns (title, body) are joined with a newline. Labels may live in
a second file (``--labels FILE``), joined on the letter id (any header the schema knows as
``letter_id``, e.g. 信件编号). With ``--label-sep`` a cell holds several labels, primary first,
and the model is multi-label. A label is a taxonomy path (``城乡建设/住房保障与房地产``) or a
first-level class; two label columns (first level, second level) make the path. With
``--with-decisions`` the analysts' topic corrections (``petition decide topic``) replace the
archive's labels of the letters they name.

The model card records the data's hash, rows and label counts, cross-validated metrics, the
per-label thresholds for ``topics``, the review threshold for ``needs_review``, library
versions, the date and the command.
"""
import dataclasses
import shlex
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline import ingest, schema
from pipeline.intake import fields, readers
from pipeline.classifier import textmodel
from pipeline.classifier.confusion import write_confusion
from pipeline.classifier.hierarchy import best_leaves, label_array, leaf_labels, matches
from pipeline.classifier.taxonomy import LEVEL_SEP, Taxonomy
from pipeline.decisions import DecisionStore
from pipeline.errors import PetitionError


def _column(frame, name, path):
    if name not in frame.columns:
        raise PetitionError(f"{path}: no column {name!r}; columns are {[c for c in frame.columns if c != schema.SOURCE_ROW]}")
    return fields.as_text(frame[name])


def _id_column(frame, path):
    mapping, _ = schema.map_columns(c for c in frame.columns if c != schema.SOURCE_ROW)
    for source, column in mapping.items():
        if column == schema.LETTER_ID:
            return source
    raise PetitionError(f"{path}: no letter id column to join the labels on; need one of "
                        f"{schema.ALIASES[schema.LETTER_ID]}")


def _labels(frame, label_col, path):
    """The label cells: one column, or a first-level and a second-level column joined as a path."""
    columns = [label_col] if isinstance(label_col, str) else list(label_col)
    if len(columns) > 2:
        raise PetitionError(f"{path}: at most two label columns (first level, second level), got {columns}")
    labels = _column(frame, columns[0], path).str.strip()
    if len(columns) == 2:
        second = _column(frame, columns[1], path).str.strip()
        labels = labels.where((second == "") | (labels == ""), labels + LEVEL_SEP + second)
    return labels


def read_labelled(data, text_cols, label_col, label_sep=None, labels_file=None, corrections=None):
    """Read a labelled archive.

    Parameters
    ----------
    data : path
        CSV, XLSX or JSONL with the text columns (and the label column unless ``labels_file``).
    text_cols : list of str
        Joined with a newline into one text per row.
    label_col : str, or list of one or two str
        The label column, or a first-level and a second-level column (a path when both are
        filled; then ``label_sep`` is not allowed).
    label_sep : str, optional
        Separator of several labels in one cell (primary first).
    labels_file : path, optional
        Table with the label column, joined to ``data`` on the letter id.
    corrections : dict, optional
        {letter id: list of labels} replacing the labels of those letters (joined on the
        letter id of ``data``): analysts' topic decisions.

    Returns
    -------
    texts : list of str
    label_sets : list of list of str
        Labels of each text, primary first.
    notes : list of str
        Rows skipped and why.
    """
    if label_sep and not isinstance(label_col, str) and len(label_col) > 1:
        raise PetitionError("--label-sep splits one label column; with two (first and second level) leave it out")
    frame = readers.read_table(data).frame
    texts = _column(frame, text_cols[0], data)
    for name in text_cols[1:]:
        texts = texts + "\n" + _column(frame, name, data)
    if labels_file:
        labels_frame = readers.read_table(labels_file).frame
        pairs = pd.DataFrame({"id": _column(labels_frame, _id_column(labels_frame, labels_file), labels_file),
                              "label": _labels(labels_frame, label_col, labels_file)}).drop_duplicates()
        # an id given two different labels (a reused letter number) labels no row
        by_id = dict(pairs.drop_duplicates("id", keep=False).itertuples(index=False, name=None))
        labels = _column(frame, _id_column(frame, data), data).map(lambda key: by_id.get(key, ""))
    else:
        labels = _labels(frame, label_col, data)
    label_sets = [[part.strip() for part in (cell.split(label_sep) if label_sep else [cell]) if part.strip()]
                  for cell in labels]
    corrected = []
    if corrections is not None:  # even with no decisions yet: an archive without ids could never take any
        ids = _column(frame, _id_column(frame, data), data).str.strip()
        corrected = [i for i, key in enumerate(ids) if key in corrections]
        for i in corrected:
            label_sets[i] = list(corrections[ids.iloc[i]])
    has_text = texts.str.replace("\n", "").str.strip() != ""
    has_label = pd.Series([bool(s) for s in label_sets], index=texts.index)
    notes = [f"skipped {int(n)} rows {why} (rows {', '.join(map(str, frame.loc[mask, schema.SOURCE_ROW][:5]))}"
             f"{' ...' if n > 5 else ''})"
             for mask, why in ((~has_text, "with empty text"), (has_text & ~has_label, "without a label"))
             if (n := mask.sum())]
    if corrections is not None:
        notes.append(f"{len(corrected)} rows labelled by analysts' topic decisions "
                     f"({len(corrections)} letters decided)")
    keep = has_text & has_label
    if not keep.any():
        raise PetitionError(f"{data}: no row has both text (columns {text_cols}) and a label ({label_col})")
    return texts[keep].tolist(), [s for s, k in zip(label_sets, keep) if k], notes


def check_labels(label_sets, taxonomy=None):
    """Map labels onto taxonomy labels (paths) when a taxonomy is given; every label needs two
    examples.

    Returns the label sets and {label: count}, most frequent first.
    """
    if taxonomy:
        unknown = sorted({label for labels in label_sets for label in labels if taxonomy.code_for(label) is None})
        if unknown:
            raise PetitionError(f"labels not in the taxonomy: {', '.join(unknown[:10])}"
                                f"{' ...' if len(unknown) > 10 else ''}; labels are paths under the first-level classes "
                                f"{', '.join(taxonomy.level1())} (一级/二级), or codes")
        label_sets = [list(dict.fromkeys(taxonomy.code_for(label) for label in labels)) for labels in label_sets]
    counts = Counter(label for labels in label_sets for label in labels)
    rare = [f"{label} ({count})" for label, count in counts.items() if count < 2]
    if rare:
        raise PetitionError(f"labels with fewer than 2 examples: {', '.join(rare)}; "
                            "add examples or merge them into another label")
    if len(counts) < 2:
        raise PetitionError(f"only one label ({next(iter(counts))}): a classifier needs at least two")
    return label_sets, dict(counts.most_common())


def train_model(texts, label_sets, settings, text_step, multilabel=False, processes=1, final_fit=True,
                progress=None):
    """Cross-validate, choose thresholds, then fit on everything (unless not ``final_fit``).

    Parameters
    ----------
    texts : list of str
    label_sets : list of list of str
        Primary label first; labels are paths (``一级/二级``) or first-level classes.
    settings : config.ClassifyConfig
    text_step : textmodel.LetterText
    multilabel : bool
    processes : int
        Cross-validation folds run in this many processes.
    final_fit : bool
        False: cross-validation only (the model returned is None).
    progress : callable, optional
        Called with 1 after each cross-validation fold.

    Returns
    -------
    model : fitted Pipeline
    summary : dict
        labels (the model's leaves), cross-validation metrics at the first level and, when the
        data have second-level labels, at the second (``cross_validation_level2``), topic
        thresholds, review threshold.
    """
    labels = leaf_labels(label_sets)
    primary = np.array([labels_of[0] for labels_of in label_sets])
    y = label_array(label_sets)
    counts = Counter(label for labels_of in label_sets for label in labels_of)
    folds = min(settings.cv_folds, min(counts.values()))
    model = textmodel.build_model(text_step, settings, multilabel)
    proba = textmodel.cross_validated_proba(model, texts, y, labels, primary, folds, settings.seed, processes,
                                            progress)
    thresholds = textmodel.label_thresholds(proba, label_sets, labels)
    best = best_leaves(proba, labels)
    predicted = textmodel.topic_sets(proba, labels, thresholds) if multilabel else [[labels[j]] for j in best]
    correct = np.array([matches(labels[j], truth) for j, truth in zip(best, label_sets)])
    cv = {"folds": folds, "seed": settings.seed, "stratified_on": "primary label"}
    summary = {
        "labels": labels,
        "cross_validation": cv | textmodel.level_metrics(label_sets, predicted, 1, labels),
        "topic_thresholds": thresholds,
        "review": textmodel.review_threshold(proba[np.arange(len(best)), best], correct, settings.target_precision),
    }
    if any(LEVEL_SEP in label for label in labels):
        summary["cross_validation_level2"] = cv | textmodel.level_metrics(label_sets, predicted, 2, labels)
    return (textmodel.fit_model(model, texts, y) if final_fit else None), summary


def command_line(*, data, text_cols, label_col, model, label_sep=None, labels=None, taxonomy=None, dicts=(),
                 note="", decisions_home=None):
    """The ``petition train`` command line that trains this model again."""
    label_cols = [label_col] if isinstance(label_col, str) else label_col
    options = [("--data", data), *(("--text-col", c) for c in text_cols), *(("--label-col", c) for c in label_cols),
               ("--label-sep", label_sep), ("--labels", labels), ("--model", model),
               ("--taxonomy", taxonomy), *(("--dict", d) for d in dicts), ("--note", note or None),
               ("--with-decisions", decisions_home)]
    return shlex.join(["petition", "train"] + [str(part) for option, value in options if value is not None
                                                for part in (option, value)])


def train_command(config, *, data, text_cols, label_col, model, label_sep=None, labels=None, taxonomy=None,
                  dicts=(), note="", decisions=None):
    """Train the classifier on a labelled archive and write it with its model card.

    Parameters
    ----------
    config : Config
        ``config.classify`` holds the hyperparameters and the default taxonomy.
    data, text_cols, label_col, label_sep, labels : see ``read_labelled``
    model : path
        Output model directory.
    taxonomy : path, optional
        Topics the labels must belong to (codes or Chinese names); without it labels are
        taken as they come and responsible bodies come from ``classify.taxonomy``.
    dicts : list of path
        Extra jieba user dictionaries, stored in the model.
    note : str
        Description stored in the model card.
    decisions : path or DecisionStore, optional
        A home directory (its ``decisions.sqlite``) or a decision store: its topic corrections
        replace the archive's labels of the letters they name (``data`` needs a letter id).
    """
    settings = config.classify
    start = time.perf_counter()
    store = decisions if isinstance(decisions, DecisionStore) or decisions is None else DecisionStore.for_home(decisions)
    corrections = store.effective().topics if store else None
    texts, label_sets, notes = read_labelled(data, text_cols, label_col, label_sep, labels, corrections)
    for line in notes:
        print(f"train: {line}", file=sys.stderr)
    known_topics = Taxonomy.load(taxonomy or settings.taxonomy)
    label_sets, counts = check_labels(label_sets, known_topics if taxonomy else None)
    text_step = textmodel.LetterText.from_config(config, extra_dicts=dicts)
    print(f"train: {len(texts)} letters, {len(counts)} labels", file=sys.stderr)
    with tqdm(total=min(settings.cv_folds, min(counts.values())), desc="cross-validate", unit="fold",
              disable=None) as bar:
        fitted, summary = train_model(texts, label_sets, settings, text_step, bool(label_sep),
                                      settings.processes, progress=bar.update)
    data_files = [data] + ([labels] if labels else [])
    card = {
        "description": note,
        "created": time.strftime("%Y-%m-%d"),
        "train_command": command_line(data=data, text_cols=text_cols, label_col=label_col, model=model,
                                      label_sep=label_sep, labels=labels, taxonomy=taxonomy, dicts=dicts,
                                      note=note, decisions_home=store and str(store.path.parent)),
        "data": {"files": [{"path": str(path), "sha256": ingest.file_sha256(path)} for path in data_files],
                 "rows": len(texts), "text_columns": text_cols, "label_column": label_col,
                 "label_separator": label_sep, "skipped": notes,
                 "decisions": str(store.path) if store else None},
        "multilabel": bool(label_sep),
        "label_counts": counts,
        **summary,
        "taxonomy": known_topics.describe(summary["labels"]),
        "parameters": {key: value for key, value in dataclasses.asdict(settings).items()
                       if key not in ("model_dir", "taxonomy", "attributes", "processes", "chunk_size")},
        "versions": textmodel.library_versions(),
        "train_seconds": round(time.perf_counter() - start, 1),
    }
    textmodel.save_model(fitted, card, model)
    written = write_confusion(summary["cross_validation"]["confusion"], Path(model) / "cv_confusion")
    cv, cv2 = summary["cross_validation"], summary.get("cross_validation_level2")
    second = (f"; level 2 ({cv2['rows']} letters): accuracy {cv2['accuracy']:.3f}, macro-F1 {cv2['macro_f1']:.3f}"
              if cv2 else "")
    print(f"train: wrote {model} ({card['train_seconds']} s); {cv['folds']}-fold CV level 1: accuracy "
          f"{cv['accuracy']:.3f}, macro-F1 {cv['macro_f1']:.3f}{second}; review below confidence {summary['review']['threshold']} "
          f"(CV precision {summary['review']['precision']} on {summary['review']['coverage']:.0%} of letters); "
          f"confusion matrix: {', '.join(map(str, written))}")
