"""Ingest streams: a dump is read, mapped and written a batch at a time (``ingest.batch_rows``),
and the batches change nothing: the same letters, quarantine, warnings and notes as one batch,
whatever falls on a batch's edge (a broken quote, a record over several lines, an id repeated
from an earlier batch)."""
import dataclasses
import tracemalloc

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import ingest, schema
from pipeline.rundir import RunDir
from tests.test_hostile_ingest import HEADER4, write_lines
from tests.conftest import sample_path


def in_batches(config, rows):
    return dataclasses.replace(config, ingest=dataclasses.replace(config.ingest, batch_rows=rows))


def ingested(config, path):
    letters, quarantine, warnings, rows_in, notes = ingest.ingest([path], config)
    assert rows_in == len(letters) + sum(q[schema.SOURCE_ROW] != "" for q in quarantine)
    in_file_order = lambda q: (q[schema.SOURCE_ROW], q[schema.COLUMN])  # noqa: E731
    return letters, sorted(quarantine, key=in_file_order), sorted(warnings, key=in_file_order), notes


def hostile_csv(tmp_path):
    lines = [HEADER4]
    for number in range(1, 40):
        lines.append(f"B{number},2026/11/2,张三,路灯坏了{number}")
        if number % 7 == 0:
            lines += ['B{0}00,2026/11/2,李四,"他说""没钱"",拖着不办'.format(number), ""]
        if number % 5 == 0:
            lines += [f'M{number},2026/11/2,王五,"第一段', '第二段,有,逗号,三个', '第三段"']
        if number % 11 == 0:
            lines.append(f"B{number - 3},2026/11/2,赵六,编号重复")
    return write_lines(tmp_path / "hostile.csv", lines)


def as_jsonl(tmp_path):
    frame = pd.read_csv(sample_path(), dtype=str, keep_default_na=False, encoding="utf-8-sig").head(900)
    path = tmp_path / "letters.jsonl"
    frame.to_json(path, orient="records", lines=True, force_ascii=False)
    return path


def as_parquet(tmp_path):
    path = tmp_path / "letters.parquet"
    pd.read_csv(sample_path(), dtype=str, keep_default_na=False, encoding="utf-8-sig").head(900).to_parquet(path)
    return path


@pytest.mark.parametrize("make", [hostile_csv, as_jsonl, as_parquet, lambda tmp_path: sample_path()],
                         ids=["hostile-csv", "jsonl", "parquet", "sample-csv"])
def test_batches_read_the_same_as_one(tmp_path, config, make):
    path = make(tmp_path)
    whole = ingested(config, path)
    batched = ingested(in_batches(config, 4 if len(whole[0]) < 100 else 400), path)
    pd.testing.assert_frame_equal(batched[0], whole[0])
    assert batched[1:] == whole[1:]
    assert len(whole[0]) > 4


def test_an_id_repeated_from_an_earlier_batch_is_quarantined(tmp_path, config):
    letters, quarantine, *_ = ingested(in_batches(config, 4), hostile_csv(tmp_path))
    repeated = [q for q in quarantine if q[schema.COLUMN] == schema.LETTER_ID]
    assert len(repeated) == 3 and all("already used by" in q[schema.REASON] for q in repeated)
    assert min(q[schema.SOURCE_ROW] for q in repeated) > 4 * 3  # after the first batches
    assert letters[schema.LETTER_ID].is_unique


def peak_traced(config, path, run):
    tracemalloc.start()
    try:
        ingest.run_stage(RunDir(run), config, inputs=[path])
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_holds_a_batch_not_the_dump(tmp_path, config):
    """Mapped in this process, which alone ``tracemalloc`` sees (workers would hold a few batches)."""
    config = dataclasses.replace(config, ingest=dataclasses.replace(config.ingest, processes=1))
    whole = peak_traced(config, sample_path(), tmp_path / "whole")
    batched = peak_traced(in_batches(config, 250), sample_path(), tmp_path / "batched")
    assert pd.read_parquet(tmp_path / "batched" / "ingested.parquet").equals(
        pd.read_parquet(tmp_path / "whole" / "ingested.parquet"))
    assert batched < whole / 3, (batched, whole)


@pytest.mark.parametrize("rows", [0, 8])
def test_a_dump_ending_on_a_batch_edge_or_holding_no_row(tmp_path, config, rows):
    """8 rows in batches of 4 end on an empty last batch; a header alone is a batch of none (an
    export without a date column: its dates are parsed from nothing)."""
    path = write_lines(tmp_path / "edge.csv", ["编号,信访人,内容"] + [f"E{i},张三,路灯坏了{i}" for i in range(rows)])
    letters, quarantine, _, notes = ingested(in_batches(config, 4), path)
    assert letters[schema.LETTER_ID].tolist() == [f"E{i}" for i in range(rows)] and not quarantine
    assert f"{rows + 1} lines: header + {rows} records" in notes[0]


@pytest.mark.parametrize("processes", [1, 2])
def test_a_file_failing_part_way_keeps_the_batches_read_before(tmp_path, config, processes):
    """Batches mapped in workers (``ingest.processes``) are kept up to where the file breaks,
    as when read one by one: a Parquet export whose ninth row group is damaged."""
    frame = pd.DataFrame({"编号": [f"F{i}" for i in range(40)], "信访人": "张三",
                          "内容": [f"路灯坏了{i}" for i in range(40)]})
    broken = tmp_path / "broken.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), broken, row_group_size=4, compression="none")
    damaged = bytearray(broken.read_bytes())
    start = pq.ParquetFile(broken).metadata.row_group(8).column(2).data_page_offset
    damaged[start:start + 8] = b"\xff" * 8
    broken.write_bytes(bytes(damaged))
    other = write_lines(tmp_path / "other.csv", ["编号,信访人,内容", "G1,王五,路灯坏了"])
    settings = dataclasses.replace(config, ingest=dataclasses.replace(config.ingest, batch_rows=4, processes=processes))
    letters, quarantine, _, rows_in, notes = ingest.ingest([broken, other], settings)
    assert letters[schema.LETTER_ID].tolist() == [f"F{i}" for i in range(32)] + ["G1"]
    assert "stopped after 32 rows (32 kept)" in notes[0] and "unreadable Parquet" in notes[0]
    assert rows_in == len(letters) and [q[schema.SOURCE_ROW] for q in quarantine] == [""]
