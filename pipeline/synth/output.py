"""Writing a generated set: file order, 信件编号, the letters file and the two truth files.

`generate` plans the letters, sorts them by date and numbers them per year (XF2024-000123),
renders and writes them in chunks (CSV with BOM, or parquet), with the truth rows in the
same order, then writes the pairs.

truth_letters.csv has one row per letters row, in the same order: letter_id, topics (classes
of the national classification as 一级/二级 paths, primary first, "|"-separated), nature,
matter_id, person_id (empty when anonymous), anonymous, signatories, visitors, traditional,
identifiers_in_text, home_level (level of the place the matter belongs to), skip_level (1
when the addressee's level is above both the home level and the county: 越级), pattern, malformed (empty or the reason).

truth_pairs.csv lists every pair of letters of one matter (malformed rows excluded),
letter_a before letter_b in file order, with the first relation that holds:
  1. exact_copy       same text source and identical body
  2. multi_addressed  same text source, different addressee, at most 30 days apart
     resend           same text source otherwise (same addressee, or later than 30 days)
  3. repeat_petition  different text, same (non-anonymous) person
  4. same_matter      different text, different or unknown petitioners
So exact_copy > multi_addressed/resend > repeat_petition > same_matter.
"""
import array
import csv
import datetime as dt
import random
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline.synth.draws import OWN_STREAM, pick, stream_seed
from pipeline.synth.plan import plan_letters
from pipeline.synth.render import Renderer
from pipeline.synth.settings import (CHUNK, FIRST_DAY, HEADERS, MALFORMED, RELATIONS,
                                     TRUTH_LETTER_COLUMNS, TRUTH_PAIR_COLUMNS)
from pipeline.synth.world import load_world


def file_order(plan):
    """Plan indexes in file order: by date and time, ties by plan index."""
    day = np.frombuffer(plan.day, dtype=np.int32)
    sec = np.frombuffer(plan.sec, dtype=np.int32)
    return np.lexsort((np.arange(len(plan)), sec, day))


class LetterIds:
    """信件编号 by file position: XF<year>-<number within the year>.

    Positions are in date order, so 2024's letters come first. A duplicate_id row reuses
    the number of an earlier letter that is in no planted pair, so truth pairs stay
    unambiguous (kept in a small override table).
    """

    def __init__(self, plan, order, seed):
        first_2025 = (dt.date(2025, 1, 1) - FIRST_DAY).days
        days = np.frombuffer(plan.day, dtype=np.int32)[order]
        self.n_2024 = int(np.searchsorted(days, first_2025))
        matter = np.frombuffer(plan.matter, dtype=np.int32)[order]
        malformed = np.frombuffer(plan.malformed, dtype=np.int32)[order]
        alone = np.flatnonzero((np.bincount(matter)[matter] == 1) & (malformed == 0))
        rng = random.Random(stream_seed(seed, OWN_STREAM, 2 ** 32 - 1))
        self.reused = {}
        for position in np.flatnonzero(malformed == MALFORMED.index("duplicate_id")):
            earlier = alone[: np.searchsorted(alone, position)]
            if len(earlier):
                self.reused[int(position)] = self.own(int(pick(rng, earlier)))

    def own(self, position):
        if position < self.n_2024:
            return f"XF2024-{position + 1:06d}"
        return f"XF2025-{position - self.n_2024 + 1:06d}"

    def __getitem__(self, position):
        return self.reused.get(position) or self.own(position)



def truth_pairs(plan, order, digests):
    """Every pair of letters of one matter with its relation (see the module docstring).

    Returns int arrays (position_a, position_b, relation index), sorted by a then b.
    """
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    matter = np.frombuffer(plan.matter, dtype=np.int32)
    keep = np.frombuffer(plan.malformed, dtype=np.int32) == 0
    by_matter = np.lexsort((position, matter))
    by_matter = by_matter[keep[by_matter]]
    bounds = np.flatnonzero(np.diff(matter[by_matter])) + 1
    first, second, relation = array.array("i"), array.array("i"), array.array("b")
    for group in np.split(by_matter, bounds):
        for j in range(1, len(group)):
            b = int(group[j])
            for k in range(j):
                a = int(group[k])
                first.append(position[a])
                second.append(position[b])
                relation.append(_relation(plan, a, b, digests))
    first, second = np.array(first, dtype=np.int64), np.array(second, dtype=np.int64)
    ranked = np.lexsort((second, first))
    return first[ranked], second[ranked], np.array(relation, dtype=np.int8)[ranked]


def _relation(plan, a, b, digests):
    """Relation index (RELATIONS) of plan letters a (earlier) and b, by precedence."""
    if plan.text_src[a] == plan.text_src[b]:
        if digests[a] == digests[b]:
            return 0
        if plan.body[a] != plan.body[b] and plan.day[b] - plan.day[a] <= 30:
            return 1
        return 2
    if plan.person[a] >= 0 and plan.person[a] == plan.person[b]:
        return 3
    return 4



class _LetterWriter:
    """Chunked writer of the letters file: CSV (UTF-8 with BOM) or parquet."""

    def __init__(self, path):
        self.path = Path(path)
        self.parquet = self.path.suffix.lower() == ".parquet"
        if self.parquet:
            import pyarrow as pa
            import pyarrow.parquet as pq
            self.pa = pa
            fields = [(name, pa.int32() if name in ("联名人数", "来访人数") else pa.string())
                      for name in HEADERS]
            self.schema = pa.schema(fields)
            self.writer = pq.ParquetWriter(self.path, self.schema)
        else:
            self.file = self.path.open("w", encoding="utf-8-sig", newline="")
            self.writer = csv.writer(self.file, lineterminator="\n")
            self.writer.writerow(HEADERS)

    def write(self, rows):
        if not self.parquet:
            self.writer.writerows(rows)
            return
        columns = list(zip(*rows))
        arrays = [self.pa.array([v if v != "" else None for v in column], type=field.type)
                  if field.type == self.pa.int32() else self.pa.array(column, type=field.type)
                  for column, field in zip(columns, self.schema)]
        self.writer.write_table(self.pa.Table.from_arrays(arrays, schema=self.schema))

    def close(self):
        (self.writer if self.parquet else self.file).close()


def _csv_writer(path, header):
    handle = Path(path).open("w", encoding="utf-8-sig", newline="")
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(header)
    return handle, writer


def generate(n, seed, out, truth_dir=None, progress=None, world=None):
    """Generate ``n`` letters from ``seed`` into ``out`` and the truth files.

    Parameters
    ----------
    n, seed : int
    out : str or Path
        ``.csv`` (UTF-8 with BOM) or ``.parquet``.
    truth_dir : str or Path, optional
        Folder for truth_letters.csv and truth_pairs.csv; defaults to ``out``'s folder.
    progress : bool, optional
        Show a progress bar; by default only for n >= 20,000.
    world : World, optional
        Preloaded banks (tests reuse one).

    Returns
    -------
    collections.Counter
        Letters, pairs, and counts per pattern, malformed reason, relation and feature.
    """
    world = world or load_world()
    out = Path(out)
    truth_dir = Path(truth_dir) if truth_dir else out.parent
    out.parent.mkdir(parents=True, exist_ok=True)
    truth_dir.mkdir(parents=True, exist_ok=True)
    plan = plan_letters(world, n, seed)
    order = file_order(plan)
    ids = LetterIds(plan, order, seed)
    renderer = Renderer(world, plan, seed)
    digests = np.zeros(len(plan), dtype=np.uint64)
    summary = Counter(letters=len(plan))
    letters = _LetterWriter(out)
    handle, truth = _csv_writer(truth_dir / "truth_letters.csv", TRUTH_LETTER_COLUMNS)
    show = progress if progress is not None else n >= 20_000
    with handle, tqdm(total=len(plan), disable=not show, unit="letter", file=sys.stderr) as bar:
        for start in range(0, len(plan), CHUNK):
            rows, truth_rows = [], []
            for position in range(start, min(start + CHUNK, len(plan))):
                index = int(order[position])
                row, truth_row, digests[index] = renderer.render(index, ids[position])
                rows.append(row)
                truth_rows.append(truth_row)
                _count(summary, truth_row)
            letters.write(rows)
            truth.writerows(truth_rows)
            bar.update(len(rows))
    letters.close()
    first, second, relation = truth_pairs(plan, order, digests)
    handle, pairs = _csv_writer(truth_dir / "truth_pairs.csv", TRUTH_PAIR_COLUMNS)
    with handle:
        pairs.writerows((ids[a], ids[b], RELATIONS[r])
                        for a, b, r in zip(first.tolist(), second.tolist(), relation.tolist()))
    summary["pairs"] = len(first)
    summary.update({f"relation {name}": int((relation == k).sum())
                    for k, name in enumerate(RELATIONS)})
    return summary


def _count(summary, truth_row):
    """Add one truth row to the running counts."""
    row = dict(zip(TRUTH_LETTER_COLUMNS, truth_row))
    summary[f"pattern {row['pattern']}"] += 1
    if row["malformed"]:
        summary[f"malformed {row['malformed']}"] += 1
    summary["anonymous"] += row["anonymous"]
    summary["joint letters"] += row["signatories"] > 0
    summary["collective visits (5+)"] += row["visitors"] >= 5
    summary["two topics"] += "|" in row["topics"]
    summary["traditional"] += row["traditional"]
    summary["identifiers in text"] += row["identifiers_in_text"]
    summary["skip level"] += row["skip_level"]
