"""Letters as the report, the notebooks and the review workbench read them.

:func:`load_letters` reads every letter of a run together with its history (the archive of
earlier runs' letters), takes each ``letter_id`` once and hands them to :func:`prepare`,
which checks that the classify and dedupe columns are there and coerces their types: dates
parsed, flags boolean, text columns stripped strings, plus two derived columns
(``schema.PERSONS``: head count of a visit, at least 1; ``schema.TOPIC_LIST``: the letter's
topic labels as a list). :func:`topic_names` reads the topic labels from the taxonomy.
"""
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from pipeline import schema
from pipeline.classifier.taxonomy import Taxonomy
from pipeline.errors import PetitionError
from pipeline.rundir import concat_frames, read_parquet, read_rows
from pipeline.status import StatusHistory, with_handling, with_latest

FLAG_COLUMNS = (schema.ANONYMOUS, schema.JOINT, schema.COLLECTIVE, schema.SKIP_LEVEL,
                schema.LAW_LITIGATION, schema.NEEDS_REVIEW)
TEXT_COLUMNS = (schema.LETTER_ID, schema.CHANNEL, schema.ADDRESS, schema.ADDRESSEE,
                schema.ADDRESSEE_LEVEL, schema.CLEAN_TEXT, schema.PETITIONER_KEY, schema.TOPIC,
                schema.TOPICS, schema.TOP3, schema.NATURE, schema.CASE_ID, schema.DUPLICATE_OF,
                schema.RELATION)
REQUIRED_COLUMNS = (schema.LETTER_ID, schema.RECEIVED_AT, schema.CHANNEL, schema.VISITORS,
                    schema.ADDRESS, schema.ADDRESSEE, schema.ADDRESSEE_LEVEL, schema.CLEAN_TEXT,
                    schema.PETITIONER_KEY, schema.TOPIC, schema.TOPIC_CONFIDENCE, schema.TOPICS,
                    schema.TOP3, schema.NATURE, *FLAG_COLUMNS, schema.CASE_ID,
                    schema.DUPLICATE_OF, schema.RELATION)
# what the report does not read: raw texts and words, several GB for an archive of a million letters
REPORT_UNUSED = (schema.CONTENT, schema.ORIGINAL_TEXT, schema.TOKENS, schema.EXTRA, schema.MASKED_NAMES)
TRUTHY = frozenset({"true", "1", "yes", "y", "t", "是"})


def parquet_files(path, skip=None):
    """The Parquet file ``path``, or every ``*.parquet`` file under the folder ``path`` (sorted
    by path) but the one named ``skip`` + ``.parquet``.

    Raises ``PetitionError`` for a missing path.
    """
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.rglob("*.parquet") if not p.name.startswith(".") and p.stem != skip)
    raise PetitionError(f"{path}: history not found (a Parquet file or a folder of them)")


def read_history(file, leave_out=()):
    """One Parquet file of the history without the columns ``leave_out``; ``PetitionError``
    when it cannot be read."""
    try:
        return read_parquet(file, leave_out=leave_out)
    except Exception as exc:  # pyarrow raises several types for damaged files
        raise PetitionError(f"{file}: unreadable Parquet ({exc})") from exc


def _as_bool(series):
    if series.dtype == bool:
        return series
    return series.map(lambda v: (str(v).strip().lower() in TRUTHY) if isinstance(v, str)
                      else (False if pd.isna(v) else bool(v))).astype(bool)


def _as_text(series):
    if isinstance(series.dtype, pd.StringDtype):  # Arrow strings: filled and trimmed in C, no Python str per row
        return series.fillna("").str.strip()
    return series.astype(object).where(series.notna(), "").astype(str).str.strip()


def prepare(letters):
    """A copy of ``letters`` checked and typed for counting.

    Raises ``PetitionError`` naming the missing columns when ``letters`` lack any of
    ``REQUIRED_COLUMNS``. Returns the letters with ``received_at`` as datetimes (NaT when
    unreadable), ``FLAG_COLUMNS`` boolean, ``TEXT_COLUMNS`` stripped strings, ``case_id``
    filled (a letter without one is a matter of its own), the handling columns typed
    (``status.with_handling``: empty when the letters have none) and ``reopened`` boolean
    (False when dedupe did not mark it), and the derived columns ``schema.PERSONS`` and
    ``schema.TOPIC_LIST``.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in letters.columns]
    if missing:
        raise PetitionError(f"letters lack columns {missing}: the report needs the output of "
                            "`petition classify` and `petition dedupe`")
    letters = with_handling(letters)
    letters[schema.RECEIVED_AT] = pd.to_datetime(letters[schema.RECEIVED_AT], errors="coerce")
    if schema.REOPENED not in letters:
        letters[schema.REOPENED] = False
    for column in (*FLAG_COLUMNS, schema.REOPENED):
        letters[column] = _as_bool(letters[column])
    for column in TEXT_COLUMNS:
        letters[column] = _as_text(letters[column])
    visitors = pd.to_numeric(letters[schema.VISITORS], errors="coerce")
    letters[schema.PERSONS] = visitors.where(visitors >= 1, 1).fillna(1).astype(int)
    letters[schema.TOPIC_CONFIDENCE] = pd.to_numeric(letters[schema.TOPIC_CONFIDENCE], errors="coerce")
    topics = letters[schema.TOPICS].where(letters[schema.TOPICS] != "", letters[schema.TOPIC])
    letters[schema.TOPIC_LIST] = topic_lists(topics)
    letters[schema.CASE_ID] = letters[schema.CASE_ID].where(letters[schema.CASE_ID] != "",
                                                            "letter:" + letters[schema.LETTER_ID])
    return letters


def topic_lists(topics):
    """Each "|"-joined topics string as the list of its distinct topics, in order. A list is
    made once per distinct string (a million letters hold a few hundred) and shared by its
    letters: read, never changed."""
    codes, distinct = pd.factorize(topics, use_na_sentinel=False)
    lists = np.empty(len(distinct), dtype=object)
    for number, joined in enumerate(distinct):
        lists[number] = [t for t in dict.fromkeys(str(joined).split("|")) if t]
    return pd.Series(lists[codes], index=topics.index)


def load_letters(run, history=None, leave_out=(), texts_for=None):
    """Every letter the report counts: the history plus the run's deduped letters, prepared.

    Parameters
    ----------
    run : RunDir
    history : str or Path, optional
        A Parquet file or a folder of them; defaults to ``<run>/../archive/letters`` when that
        exists. A letter in both (same ``letter_id``) is taken once, from the run. Its
        handling is the latest the status history (``<run>/../archive/status.parquet``, when
        it exists: ``status.StatusHistory``) holds: a letter closed in a later dump is closed.
    leave_out : tuple of str
        Columns not read (e.g. ``REPORT_UNUSED``: an archive of a million letters' raw texts
        and words is several GB).
    texts_for : callable, optional
        Given the prepared letters with ``clean_text`` empty, says (a boolean array) whose
        ``clean_text`` is read; the others' stays empty. An archive of a million letters holds
        about a GB of texts and the report shows those of one period; by default every text
        is read.

    Returns
    -------
    letters : DataFrame
        Output of :func:`prepare`.
    source : str
        What was read, for the report's notes.
    """
    default_history = run.path.parent / "archive" / "letters"
    history_path = Path(history) if history else (default_history if default_history.exists() else None)
    # the archive's copy of this run's letters (nightly) is read from the run
    files = parquet_files(history_path, skip=run.path.name) if history_path is not None else []
    later = (schema.CLEAN_TEXT,) if texts_for else ()
    frames = [read_history(file, (*leave_out, *later)) for file in files]
    files.append(run.output_path("dedupe"))
    frames.append(run.read("dedupe", leave_out=(*leave_out, *later)))
    sources = ([str(history_path)] if history_path is not None else []) + [str(files[-1])]
    read = [number for number, frame in enumerate(frames) if len(frame.columns)]
    # where each letter was read from: its file and row there
    origin = np.concatenate([np.full(len(frames[n]), n) for n in read])
    row = np.concatenate([np.arange(len(frames[n])) for n in read])
    letters = concat_frames([frames[n] for n in read])
    del frames
    if schema.LETTER_ID in letters.columns:
        kept = ~letters.duplicated(schema.LETTER_ID, keep="last").to_numpy()
        letters, origin, row = letters[kept].reset_index(drop=True), origin[kept], row[kept]
    statuses = StatusHistory.of_home(run.path.parent)
    if statuses.path.exists() and schema.LETTER_ID in letters.columns:
        letters = with_latest(letters, statuses.latest())
        sources.append(str(statuses.path))
    holding = [n for n in read if schema.CLEAN_TEXT in pq.read_schema(files[n]).names] if later else []
    if holding:
        letters[schema.CLEAN_TEXT] = ""
    letters = prepare(letters)
    if holding:
        wanted = np.flatnonzero(np.asarray(texts_for(letters), dtype=bool) & np.isin(origin, holding))
        texts = np.full(len(letters), None, dtype=object)
        for number in np.unique(origin[wanted]).tolist():
            chosen = wanted[origin[wanted] == number]
            chosen = chosen[np.argsort(row[chosen])]
            texts[chosen] = read_rows(files[number], row[chosen], schema.CLEAN_TEXT)
        letters[schema.CLEAN_TEXT] = _as_text(pd.Series(pd.array(texts, dtype="str"), index=letters.index))
    return letters, " + ".join(sources)


def topic_names(path):
    """{topic label: the name reports show} from the taxonomy YAML at ``path``, in its order;
    empty when it is missing. Labels are Chinese paths (城乡建设, 国土资源/征地拆迁): shown as they are."""
    if not Path(path).exists():
        return {}
    return {label: label for label in Taxonomy.load(path).topics}
