"""Cases, the last step of dedupe: letters grouped into cases (纯件) by their links.

Cases are the connected components of the links (``scipy.sparse.csgraph``); a case's id is
the id of its earliest letter (date, then id), so it stays put as letters are added, and
N nightly runs give the ids one run over everything gives.
"""
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from pipeline import schema
from pipeline.dedup.arrays import arrow_strings
from pipeline.errors import PetitionError

# working columns, never written
DAY, ID, IN_RUN, BEFORE, CASE, VALUE = "day", "id", "in_run", "before", "case", "value"


def assign_cases(letters, links):
    """Cases of ``letters`` (every indexed letter) from ``links`` (every link).

    Returns a DataFrame indexed like ``letters`` with ``case_id``, ``duplicate_of`` (the
    earliest letter it is linked to, '' for the case's first letter) and ``relation``.
    Ids are matched and sorted with arrow (millions of links: no Python string per link).
    """
    ids = arrow_strings(letters[schema.LETTER_ID])
    days = pd.to_datetime(letters[schema.RECEIVED_AT]).to_numpy(dtype="datetime64[ns]").astype(np.int64)
    days = np.where(pd.isna(letters[schema.RECEIVED_AT]).to_numpy(), np.iinfo(np.int64).max, days)
    order = pc.sort_indices(pa.table({DAY: days, ID: ids}),
                            sort_keys=[(DAY, "ascending"), (ID, "ascending")]).to_numpy()
    rank = np.empty(len(ids), dtype=np.int64)
    rank[order] = np.arange(len(ids))

    ends = pa.array([], type=pa.int32())
    if len(links):
        both = pa.concat_arrays([arrow_strings(links[schema.LETTER_A]), arrow_strings(links[schema.LETTER_B])])
        ends = pc.index_in(both, value_set=ids)
    if ends.null_count:
        raise PetitionError("the dedupe index holds links to letters it does not hold; rebuild it with --rebuild")
    ends = ends.to_numpy().astype(np.int64)
    a, b = ends[:len(links)], ends[len(links):]
    graph = sp.coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(len(ids), len(ids)))
    _, component = connected_components(graph, directed=False)
    del graph
    first_rank = np.full(component.max() + 1 if len(ids) else 0, np.iinfo(np.int64).max)
    np.minimum.at(first_rank, component, rank)
    first = order[first_rank[component]]
    # every link seen from both ends; keep each letter's earliest neighbour
    me, other = np.concatenate((a, b)), np.concatenate((b, a))
    del a, b
    codes, names = pd.factorize(links[schema.RELATION]) if len(links) else (np.zeros(0, dtype=np.int64), np.zeros(0))
    pick = np.argsort(me * len(ids) + rank[other], kind="stable")
    me, other, relation = me[pick], other[pick], np.concatenate((codes, codes))[pick]
    head = np.flatnonzero(np.concatenate(([True], me[1:] != me[:-1]))) if len(me) else me
    duplicate_of = np.full(len(ids), -1, dtype=np.int64)
    kind = np.full(len(ids), "", dtype=object)
    duplicate_of[me[head]], kind[me[head]] = other[head], np.asarray(names, dtype=object)[relation[head]]
    is_first = first == np.arange(len(ids))
    duplicate_of[is_first], kind[is_first] = -1, ""
    duplicate_ids = pc.if_else(pa.array(duplicate_of >= 0), ids.take(np.maximum(duplicate_of, 0)), "")
    return pd.DataFrame({schema.CASE_ID: pd.array(ids.take(first), dtype="str"),
                         schema.DUPLICATE_OF: pd.array(duplicate_ids, dtype="str"),
                         schema.RELATION: pd.array(kind, dtype="str")}, index=letters.index)


def case_table(letters, cases, in_run, before_run):
    """One row per case that holds one of the run's letters.

    ``letters`` are every indexed letter, ``cases`` their ``assign_cases`` frame,
    ``in_run``/``before_run`` boolean arrays: the letter is in this run / was indexed before it.
    """
    frame = letters[[schema.LETTER_ID, schema.RECEIVED_AT, schema.PETITIONER_KEY, schema.ADDRESSEE,
                     schema.TOPICS]].assign(**{schema.CASE_ID: cases[schema.CASE_ID].to_numpy(),
                                               IN_RUN: in_run, BEFORE: before_run})
    touched = frame.loc[frame[IN_RUN], schema.CASE_ID].unique()
    frame = frame[frame[schema.CASE_ID].isin(touched)]
    frame = frame.sort_values([schema.CASE_ID, schema.RECEIVED_AT, schema.LETTER_ID], na_position="last")

    def distinct(values):
        """(case, value) pairs of the non-empty values, each once; ``values`` is indexed
        like ``frame`` (an exploded column repeats index labels)."""
        pairs = pd.DataFrame({CASE: frame[schema.CASE_ID].reindex(values.index).to_numpy(),
                              VALUE: values.to_numpy()})
        return pairs[pairs[VALUE].notna() & (pairs[VALUE] != "")].drop_duplicates()

    def joined(values):
        return distinct(values).groupby(CASE, sort=False)[VALUE].agg("|".join)

    grouped = frame.groupby(schema.CASE_ID, sort=False)
    table = pd.DataFrame({
        schema.CASE_LETTER_IDS: grouped[schema.LETTER_ID].agg("|".join),
        schema.CASE_FIRST_DATE: grouped[schema.RECEIVED_AT].min().dt.strftime("%Y-%m-%d"),
        schema.CASE_LAST_DATE: grouped[schema.RECEIVED_AT].max().dt.strftime("%Y-%m-%d"),
        schema.CASE_LETTERS: grouped.size(),
        schema.CASE_PETITIONERS: distinct(frame[schema.PETITIONER_KEY]).groupby(CASE, sort=False).size(),
        schema.CASE_ADDRESSEES: joined(frame[schema.ADDRESSEE]),
        schema.CASE_TOPICS: joined(frame[schema.TOPICS].str.split("|").explode()),
        schema.CASE_RUN_LETTERS: grouped[IN_RUN].sum(),
        schema.CASE_STATUS: grouped[BEFORE].any().map({True: schema.CASE_CONTINUES, False: schema.CASE_NEW}),
    })
    table = table.fillna({schema.CASE_FIRST_DATE: "", schema.CASE_LAST_DATE: "", schema.CASE_PETITIONERS: 0,
                          schema.CASE_ADDRESSEES: "", schema.CASE_TOPICS: ""})
    table[schema.CASE_PETITIONERS] = table[schema.CASE_PETITIONERS].astype(int)
    return table.rename_axis(schema.CASE_ID).reset_index()[list(schema.CASE_COLUMNS)]
