"""Dedupe stage: find copies, 一信多投, repeat petitions and letters about one matter, against
the history of every earlier letter, and group letters into cases (纯件).

Reads the run's ``classified.parquet`` (else ``segmented.parquet``); matches its letters
with each other and with the dedupe index, then adds them to it; writes ``deduped.parquet``
(the letters with ``case_id``, ``duplicate_of``, ``relation``), ``links.csv``, ``cases.csv``
and ``summary.json``. The work is done by the ``pipeline.dedup`` wing, step by step:
``features`` → ``candidates`` → ``scoring`` → ``cases``, over the ``index``. Cases honour
the analysts' decisions in force (``pipeline.decisions``, the file beside the index).
"""
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from pipeline import schema
from pipeline.dedup.arrays import arrow_strings, text_hashes
from pipeline.dedup.candidates import Pool
from pipeline.decisions import DecisionStore
from pipeline.engine import on_configured_engine
from pipeline.dedup.cases import (SAME_NOT_APPLIED, Labeler, assign_cases, case_table, decision_counts,
                                  raw_names, reopened_letters)
from pipeline.dedup.features import Featurizer, comparison_texts, featurize
from pipeline.dedup.index import DedupeIndex, IndexProblem, config_hash, file_digest, joined_ends, link_ends
from pipeline.dedup.scoring import find_links, within_pairs
from pipeline.errors import PetitionError
from pipeline.lookup import is_in
from pipeline.parallel import distributed, distributed_mapper, map_chunks, release_memory
from pipeline.reporting.tonight import FILE_NAME as TONIGHT, tonight_table, write_tonight
from pipeline.rundir import atomic_path, parquet_batches, stage, write_csv, write_json
from pipeline.status import StatusHistory, known_closed_at, with_handling

NEEDED_COLUMNS = (schema.LETTER_ID, schema.RECEIVED_AT, schema.ADDRESSEE, schema.PETITIONER_KEY,
                  schema.CLEAN_TEXT, schema.TOKENS)
TEXT_COLUMNS = (schema.CLEAN_TEXT, schema.TOKENS)
CASE_COLUMNS_ADDED = (schema.CASE_ID, schema.DUPLICATE_OF, schema.RELATION)
CLERK_SHEET = "clerk's spreadsheet (tonight's letters on earlier matters)"   # a summary key


def read_letters(run):
    """The run's letters from its latest stage output (classified, else segmented), without
    their texts (``text_chunks`` reads those). Returns (stage name, its path, letters)."""
    stage_name = "classify" if run.output_path("classify").exists() else "segment"
    path = run.output_path(stage_name)
    if not path.exists():
        raise PetitionError(f"{run.path}: no {path.name}; run `petition segment --run {run.path}` first")
    try:
        available = set(pq.read_schema(path).names)
    except Exception as exc:  # pyarrow raises several types for damaged files
        raise PetitionError(f"{path}: unreadable Parquet ({exc}); re-run `petition {stage_name}`") from exc
    missing = [c for c in NEEDED_COLUMNS if c not in available]
    if missing:
        raise PetitionError(f"{path}: missing columns {missing}; re-run normalize and segment")
    columns = [c for c in NEEDED_COLUMNS if c not in TEXT_COLUMNS] + [c for c in (schema.TOPICS, schema.MASKED_NAMES)
                                                                       if c in available]
    return stage_name, path, run.read(stage_name, columns=columns)


def text_chunks(path, rows, chunk_size):
    """(clean_texts, tokens) lists of the rows of Parquet ``path`` where ``rows`` (bool, in
    file order), ``chunk_size`` rows at a time, read batch by batch."""
    start = 0
    for batch in parquet_batches(path, chunk_size, list(TEXT_COLUMNS)):
        chosen = np.flatnonzero(rows[start:start + batch.num_rows])
        start += batch.num_rows
        if len(chosen):
            batch = batch.take(pa.array(chosen))
            yield batch.column(0).to_pylist(), batch.column(1).to_pylist()


def write_deduped(source, target, keep, cases):
    """Copy ``source`` Parquet rows where ``keep`` to ``target``, adding the case columns and
    ``reopened``, batch by batch (a million letters' text need not be in memory twice)."""
    added = {column: cases[column].to_numpy().astype(str) for column in CASE_COLUMNS_ADDED}
    added[schema.REOPENED] = cases[schema.REOPENED].to_numpy(dtype=bool)
    start = 0
    with atomic_path(target) as tmp:
        writer = None
        for batch in parquet_batches(source, 16384):  # small: it is written beside the case table
            table = pa.Table.from_batches([batch])
            mask = keep[start:start + len(table)]
            rows = np.flatnonzero(mask)
            table = table.take(rows)
            for column, values in added.items():
                table = table.append_column(column, pa.array(values[start:start + len(mask)][rows]))
            start += len(mask)
            writer = writer or pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
        if writer is None:  # no rows: write the schema with the new columns
            empty = pq.read_schema(source).empty_table()
            for column, values in added.items():
                empty = empty.append_column(column, pa.array(values[:0]))
            pq.write_table(empty, tmp)
        else:
            writer.close()


def read_handling(run, stage_name):
    """``letter_id`` and the handling columns (``schema.HANDLING_COLUMNS``) of the run's
    letters, typed (``status.with_handling``; a run ingested before they existed has them empty)."""
    path = run.output_path(stage_name)
    available = set(pq.read_schema(path).names)
    columns = [schema.LETTER_ID] + [c for c in schema.HANDLING_COLUMNS if c in available]
    handling = with_handling(run.read(stage_name, columns=columns))
    return handling.assign(**{schema.LETTER_ID: handling[schema.LETTER_ID].astype(str)})


def masked_titles(titles, labeler, processes=1):
    """``letter_id`` and ``title`` of ``titles`` (which has ``petitioner_name`` too), each title
    masked as case labels are (``Labeler.mask``: the letter's own name and every registered
    name of ``titles``) once per distinct (title, name), in ``processes`` forked workers: what
    the status history keeps for the clerk's sheet."""
    everyone = raw_names(titles[schema.PETITIONER_NAME])
    pairs = list(zip(titles[schema.TITLE].fillna(""), titles[schema.PETITIONER_NAME].fillna("")))
    distinct = list(set(pairs))
    masked = dict(zip(distinct, map_chunks(lambda chunk: [labeler.mask(title, [name], everyone)
                                                          for title, name in chunk], distinct, processes)))
    return pd.DataFrame({schema.LETTER_ID: titles[schema.LETTER_ID].astype(str).to_numpy(),
                         schema.TITLE: [masked[pair] for pair in pairs]})


def mark_reopened(everything, cases, before, latest, handling, wanted=None):
    """回流 of every indexed letter (bool array like ``everything``): for the letters new to the
    index (not ``before``) and ``wanted`` (bool array, default all), whether their case's earlier
    letters were all closed before they came (``cases.reopened_letters``; closing from this
    dump's ``handling`` and the status history's ``latest``), False for the other new ones; for
    the letters ``before``, what the history recorded when they came."""
    ids = everything[schema.LETTER_ID].astype(str)
    recorded = latest[schema.REOPENED].reindex(ids).fillna(False).to_numpy(dtype=bool)
    new = ~before if wanted is None else wanted & ~before
    case_ids = cases[schema.CASE_ID]
    rows = np.flatnonzero(is_in(case_ids, case_ids[new].unique()))  # only their cases' letters count
    closed = known_closed_at(ids.iloc[rows], latest, handling)
    reopened = np.zeros(len(everything), dtype=bool)
    reopened[rows] = reopened_letters(everything[[schema.RECEIVED_AT]].iloc[rows], case_ids.iloc[rows].to_frame(),
                                      closed)
    return np.where(before, recorded, reopened & new)


def changed_texts(index, letters, clean_texts, min_body_chars):
    """Positions in ``letters`` (already in ``index``, their ``clean_texts`` in order) whose
    comparison text is not the one they were indexed with."""
    hashes = text_hashes(comparison_texts(clean_texts, min_body_chars))
    stored = index.letters.set_index(schema.LETTER_ID)[schema.BODY_HASH]
    return np.flatnonzero(stored.loc[letters[schema.LETTER_ID].astype(str)].to_numpy() != hashes)


def written_shard(run, path, letters, index):
    """Where this run's letters are in ``index`` already, added by an earlier attempt of this
    stage on the same input (one that stopped after the index was written, or a re-run):
    (source, shard position or None), ``source`` being what ``DedupeIndex.add`` records."""
    source = {"run": str(run.path.resolve()), "input": f"{path.name} sha256:{file_digest(path)}"}
    position = index.shard_from(source)
    if position is not None:
        history = index.before(position)
        indexed = history.letters[schema.LETTER_ID] if len(history) else []
        ids = letters[schema.LETTER_ID].astype(str)
        if ids[~is_in(ids, indexed)].tolist() != index.shards[position].letters[schema.LETTER_ID].astype(str).tolist():
            raise IndexProblem(index.directory, f"shard {position + 1:06d} was added by {run.path} but does not "
                                                "hold its letters")
        print(f"dedupe: {run.path}'s letters were added to the index by an earlier attempt (shard "
              f"{position + 1:06d}); its links are read back")
    return source, position


def dedupe_run(run, index, config, processes=None, progress=None, decisions=None):
    """Match the run's letters against ``index`` and each other, add them to it, write the
    outputs. Returns (rows in, rows out, quarantine records, summary dict).

    Cases are assigned over every indexed letter (history included), honouring ``decisions``
    (the analysts' decisions in force, a ``decisions.Effective``; None: none).

    When an earlier attempt on the same input added the run's letters already
    (``written_shard``), they are matched as that attempt matched them: against the index
    as it was before, with the links it found; the outputs are the same."""
    settings = config.dedupe
    processes = processes or settings.processes
    stage_name, path, letters = read_letters(run)
    letters = letters.reset_index(drop=True)
    source, written = written_shard(run, path, letters, index)
    full, index = index, (index.before(written) if written is not None else index)
    indexed = index.letters[schema.LETTER_ID] if len(index) else []
    known = is_in(letters[schema.LETTER_ID].astype(str), indexed)
    if written is None:
        # staged: saved to the index with its sorted keys as it is made, read memory-mapped
        batch = featurize(letters[~known], text_chunks(path, ~known, settings.chunk_size),
                          Featurizer.from_config(config), index.staging_folder(), processes, progress)
        release_memory()
    else:
        batch = full.shards[written]
    # a known id must come with the text it was indexed with
    quarantine = []
    if known.any():
        again = letters[known]
        clean = [text for texts, _ in text_chunks(path, known, settings.chunk_size) for text in texts]
        changed = changed_texts(index, again, clean, settings.min_body_chars)
        quarantine = [{schema.SOURCE_FILE: str(path), schema.SOURCE_ROW: row + 1,
                       schema.COLUMN: schema.LETTER_ID, schema.RAW: letter_id,
                       schema.REASON: "letter_id already in the dedupe index with another text"}
                      for row, letter_id in zip(np.flatnonzero(known)[changed].tolist(),
                                                again[schema.LETTER_ID].astype(str).iloc[changed])]
    if written is None:
        from pipeline.dedup.matcher import Matcher  # scikit-learn: imported once the index is ours
        pool, matcher = Pool(index, batch, settings.tfidf_features), Matcher.load(settings.matcher)
        ids = arrow_strings(pool.letters[schema.LETTER_ID])
        links = find_links(pool, settings, matcher, workers=processes)
        # the links' letters located once, in the pool, where they stay once the batch is indexed
        night_ends = link_ends(links, ids)
        in_case = within_pairs(pool, [index.links, links], settings, matcher, processes,
                               ends=[index.link_ends(), night_ends])
        links = pd.concat([links, in_case], ignore_index=True)
        night_ends = joined_ends(night_ends, link_ends(in_case, ids))
        del pool, ids, in_case
        index.add(batch, links, source, ends=night_ends)
        del night_ends
    else:
        links = full.shard_links(written)
        index = full.before(written + 1)
    history_size, added = len(index) - len(batch), len(batch)
    everything = index.letters if len(index) else batch.letters  # the latter has the columns
    del batch  # the index holds its features now, memory-mapped
    # an index without links has no columns either: the run's (empty) links frame stands in
    all_links, ends = (index.links if len(index.links) else links), index.link_ends()
    # the index holds the night's links (their HELD_LINK_COLUMNS): the whole frame, a million
    # letters' worth, is let go before cases are made; the summary keeps its counts
    found = links[schema.RELATION].value_counts()
    del links
    run_ids = letters[schema.LETTER_ID].astype(str)
    bad = run_ids.isin({q[schema.RAW] for q in quarantine}).to_numpy()
    position = pd.Index(everything[schema.LETTER_ID]).get_indexer(run_ids)
    in_run = np.zeros(len(everything), dtype=bool)
    in_run[position[~bad]] = True
    # the run's cases only: those of earlier letters no link of tonight reaches stay as they were
    cases = assign_cases(everything, all_links, decisions, settings.case_probability, settings.case_pairs_max_letters,
                         reach=in_run, ends=ends)
    # what needs every link is done now, and the links let go (0.8 GB at a million letters)
    # before the case table and the clerk's sheet are made
    decided = decision_counts(everything, all_links, cases, decisions, ends)
    linked = all_links[schema.RELATION].isin(schema.RELATIONS).to_numpy()
    touching = in_run[ends[0]] | in_run[ends[1]]  # located, not looked up: millions of links
    listed = np.flatnonzero(linked & touching)
    # the index holds the links' HELD_LINK_COLUMNS; links.csv shows their evidence too, read from the shards
    run_links = index.link_rows(listed) if len(index.links) else all_links.iloc[listed]
    write_csv(run_links.reset_index(drop=True), run.path / "links.csv")
    held = {"links": int(linked.sum()), "other pairs scored in cases": int((~linked).sum())}
    del all_links, ends, linked, touching, listed, run_links
    index.let_go_of_links()
    full.let_go_of_links()  # on a re-run the index above is a view of this one
    release_memory()
    before = np.arange(len(everything)) < history_size
    titles = run.read(stage_name, columns=[schema.LETTER_ID, schema.TITLE, schema.PETITIONER_NAME])
    labeler = Labeler.from_config(config)
    statuses = StatusHistory.beside(index.directory)
    handling = read_handling(run, stage_name)
    # what earlier runs recorded (a stage run again on the same input must not see its own rows)
    reopened = mark_reopened(everything, cases, before, statuses.latest(excluding_run=run.path.name), handling,
                             wanted=in_run)
    run_cases = cases.iloc[np.where(position >= 0, position, 0)].reset_index(drop=True)
    run_cases[schema.REOPENED] = reopened[np.where(position >= 0, position, 0)] & (position >= 0)
    # titles are masked on this machine (a million short tasks, not worth shipping out), in
    # workers forked before the copy below starts its thread; in this process beside Spark's
    local = processes if distributed_mapper() is None else 1
    with distributed(None):
        table = case_table(everything, cases, in_run, before, titles, labeler, reopened & in_run & ~before,
                           local)
        kept = masked_titles(titles, labeler, local).merge(handling, on=schema.LETTER_ID, how="left")[~bad]
    # the copy is pyarrow's work, mostly without the GIL: it runs beside the clerk's sheet
    # (Python) instead of before it
    with ThreadPoolExecutor(1) as writer:
        deduped = writer.submit(write_deduped, path, run.output_path("dedupe"), ~bad, run_cases)
        write_csv(table, run.path / "cases.csv")
        statuses.record(kept, run_cases[schema.REOPENED].to_numpy()[~bad], run.path.name)
        touched = is_in(cases[schema.CASE_ID], run_cases[schema.CASE_ID][~bad])
        case_letters = everything.loc[touched, [schema.LETTER_ID, schema.RECEIVED_AT]].assign(
            **{schema.CASE_ID: cases[schema.CASE_ID].to_numpy()[touched]})
        # tonight's letters: those an earlier run indexed (re-exported, e.g. with a new status) are no repeat
        run_letters = pd.concat([letters, run_cases], axis=1)[~bad & ~before[np.maximum(position, 0)]]
        clerk = tonight_table(run_letters, case_letters, statuses.titles(case_letters[schema.LETTER_ID]),
                              dict(zip(table[schema.CASE_ID], table[schema.CASE_LABEL])))
        write_tonight(clerk, run.path / TONIGHT)
        deduped.result()
    summary = summarize(letters[~bad], run_cases[~bad], found, table, added, len(index), held, config)
    summary["analyst decisions"] = decided
    if decided[SAME_NOT_APPLIED]:
        print(f"dedupe: warning: {decided[SAME_NOT_APPLIED]} `same` "
              "decisions not applied: they would join letters decided different (`petition decide list`)")
    summary["回流 (reopened: every earlier letter of the matter closed before it came)"] = int(
        run_cases[schema.REOPENED][~bad].sum())
    summary[CLERK_SHEET] = f"{TONIGHT} ({len(clerk.frame)} rows)"
    write_json(summary, run.path / "summary.json")
    return len(letters), int((~bad).sum()), quarantine, summary


def summarize(letters, run_cases, found, table, added, indexed, held, config):
    """The figures printed and saved in summary.json (``found``: the run's links per relation;
    ``indexed``: letters in the index; ``held``: its links and other pairs scored, counted)."""
    dated = letters[schema.RECEIVED_AT].notna()
    no_identity = (letters[schema.PETITIONER_KEY].fillna("") == "").sum()
    windows = ("on" if dated.all() else
               "off: no letter has a date" if not dated.any() else
               f"off for the {int((~dated).sum())} letters without a date")
    relation_counts = run_cases[schema.RELATION].replace("", "first letter of its case").value_counts()
    return {
        "letters (件次)": len(letters),
        "unique matters (纯件数)": int(run_cases[schema.CASE_ID].nunique()),
        "letters added to the index": added,
        "letters already in the index": len(letters) - added,
        "letters by relation to an earlier letter": {k: int(v) for k, v in relation_counts.items()},
        "links found in this run": {r: int(found.get(r, 0)) for r in schema.RELATIONS},
        "cases new / continuing": {status: int((table[schema.CASE_STATUS] == status).sum())
                                   for status in schema.CASE_STATUSES},
        "time windows": windows,
        "letters without petitioner identity (matched on content only)": int(no_identity),
        "index": {"letters": indexed, **held, "config_hash": config_hash(config.dedupe)},
    }


@on_configured_engine
def run_stage(run, config, *, index=None, rebuild=False, processes=None, progress=True):
    """Dedupe the letters of ``run`` (a ``RunDir``) against the index at ``index`` (default:
    ``DATA_DIR/index``), adding them to it; ``rebuild`` starts an empty index when the one
    there is damaged or was built with other settings (the old one is moved aside).
    ``processes``: feature workers and scoring threads (default: ``dedupe.processes``);
    ``progress``: show a progress bar. The analysts' decisions (``HOME/decisions.sqlite``, beside
    the index: ``petition decide``) in force are honoured. Returns the ``StageResult``."""
    index = DedupeIndex.open(index or config.paths.data_dir / "index", config_hash(config.dedupe), rebuild=rebuild,
                             wait=config.dedupe.index_lock_wait)
    with index, stage(run, "dedupe") as result, \
            tqdm(desc="dedupe features", unit="letter", disable=None if progress else True) as bar:
        decisions = DecisionStore.for_index(index.directory).effective()
        rows_in, rows_out, quarantine, summary = dedupe_run(run, index, config, processes, bar.update, decisions)
        run.set_quarantine("dedupe", quarantine)
        result.rows_in, result.rows_out, result.quarantined = rows_in, rows_out, len(quarantine)
        result.notes = {key: (json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else value)
                        for key, value in summary.items()}
        # printed last, with its path: the clerk opens it (summary.json names it without, as it
        # stays the same wherever the run directory is)
        result.notes[CLERK_SHEET] = f"{run.path}/{summary[CLERK_SHEET]}"
    return result

