"""The run directory: where stages read their input and write their output.

Layout of a run directory::

    ingested.parquet  normalized.parquet  segmented.parquet  ...   one per stage
    quarantine.csv        rows a stage could not process, with the reason (all stages)
    <stage>_warnings.csv  recoverable problems (row kept, field emptied)
    manifest.json         per stage: rows in/out/quarantined, seconds, versions

Every file is written atomically (temporary file + rename), so an interrupted stage
never leaves a half-written output for the next stage to read.
"""
import csv
import dataclasses
import itertools
import json
import os
import platform
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from pipeline import __version__, schema
from pipeline.errors import PetitionError
from pipeline.safe_text import neutralise_arrow, neutralise_frame

STAGE_OUTPUTS = {
    "ingest": "ingested.parquet",
    "normalize": "normalized.parquet",
    "segment": "segmented.parquet",
    "classify": "classified.parquet",
    "dedupe": "deduped.parquet",
}
STAGE_ORDER = tuple(STAGE_OUTPUTS)
CSV_ENCODING = "utf-8-sig"  # so Excel shows Chinese


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; outputs are for the office to read
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def parquet_batches(path, batch_rows, columns=None):
    """Record batches of a Parquet file, read with a small buffer: a file of one huge row
    group is not read into memory whole."""
    return pq.ParquetFile(path, buffer_size=1 << 20, pre_buffer=False).iter_batches(batch_size=batch_rows,
                                                                                   columns=columns)


def read_parquet(path, columns=None, leave_out=()):
    """A Parquet file as a DataFrame: only ``columns`` if given, without those of ``leave_out``."""
    if leave_out:
        columns = [c for c in columns or pq.read_schema(path).names if c not in leave_out]
    return pd.read_parquet(path, columns=columns)


def read_rows(path, rows, column):
    """The values of ``column`` at ``rows`` (positions in the file, ascending) of the Parquet
    file ``path``, as a list: only the row groups holding them are read."""
    return read_row_table(path, rows, [column]).column(0).to_pylist()


def read_row_table(path, rows, columns=None):
    """The rows ``rows`` (positions in the file, ascending) of the Parquet file ``path``, of
    ``columns`` (default: all), as an Arrow table: only the row groups holding them are read."""
    file = pq.ParquetFile(path)
    starts = np.cumsum([0] + [file.metadata.row_group(i).num_rows for i in range(file.num_row_groups)])
    rows = np.asarray(rows, dtype=np.int64)
    group = np.searchsorted(starts, rows, side="right") - 1
    parts = [file.read_row_group(number, columns=columns).take(pa.array(rows[group == number] - starts[number]))
             for number in np.unique(group).tolist()]
    return pa.concat_tables(parts) if parts else file.schema_arrow.empty_table().select(columns or file.schema_arrow.names)


def concat_frames(frames):
    """``pd.concat`` of ``frames`` (a new index) with each Arrow-backed column in one piece.
    Frames read from several files and row groups leave their string columns in many chunks,
    and pandas takes selected rows chunk by chunk: a boolean selection of a million letters
    costs about ten times more than on one chunk."""
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)
    for column in frame.columns:
        dtype = frame[column].dtype
        if getattr(dtype, "storage", None) == "pyarrow" or isinstance(dtype, pd.ArrowDtype):
            pieces = frame[column].array.__arrow_array__()
            if isinstance(pieces, pa.ChunkedArray) and pieces.num_chunks > 1:
                frame[column] = pd.array(pieces.combine_chunks(), dtype=dtype)
    return frame


def write_parquet(df, path):
    """Write ``df`` to Parquet atomically."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def copy_file(source, path):
    """Copy the file ``source`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        shutil.copyfile(source, tmp)


def write_csv(df, path):
    """Write ``df`` to CSV (UTF-8 with BOM, so Excel shows Chinese) atomically.

    CSV files are for people, who open them in Excel: a text value beginning with ``=``,
    ``+``, ``-``, ``@``, a tab or a carriage return gets a ``'`` before it so that it is not
    evaluated as a formula (``safe_text.neutralise_cell``); number columns are written as
    they are (a negative number stays a number). The Parquet outputs keep the original text.

    Frames of typed columns (numbers, booleans, strings: every frame the stages write, a
    dedupe's millions of links among them) go through pyarrow's writer, ten times faster
    than pandas': it quotes every string and writes floats shortest (1, 0.5, 0.00001);
    booleans are written True/False. A frame with an ``object`` column (values of mixed
    types) goes through pandas.
    """
    with atomic_path(path) as tmp:
        if any(dtype == object for dtype in df.dtypes):
            # every text quoted, as pyarrow does: a carriage return inside one stays inside it
            neutralise_frame(df).to_csv(tmp, index=False, encoding=CSV_ENCODING, quoting=csv.QUOTE_NONNUMERIC)
            return
        columns = {name: (np.where(column.to_numpy(), "True", "False") if column.dtype == bool else column)
                   for name, column in df.items()}
        table = pa.Table.from_pandas(pd.DataFrame(columns, index=df.index), preserve_index=False)
        for i, field in enumerate(table.schema):
            if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
                table = table.set_column(i, field, neutralise_arrow(table.column(i)))
        with open(tmp, "wb") as out:
            out.write("\ufeff".encode("utf-8"))
            pa_csv.write_csv(table, out)


def read_manifest(path):
    """A run's ``manifest.json`` (no stages when it does not exist); a one-line error when it
    is damaged."""
    if not path.exists():
        return {schema.MANIFEST_STAGES: {}}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise PetitionError(f"{path}: damaged manifest ({exc}); move that run directory aside") from None


def write_json(obj, path):
    """Write ``obj`` as indented UTF-8 JSON atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=2, default=str), encoding="utf-8")


@dataclasses.dataclass
class StageResult:
    """What a stage did; printed after the stage and recorded in the manifest."""

    stage: str
    rows_in: int = 0
    rows_out: int = 0
    quarantined: int = 0
    seconds: float = 0.0
    notes: dict = dataclasses.field(default_factory=dict)

    def summary(self):
        line = (f"{self.stage}: {self.rows_in} rows in, {self.rows_out} out, "
                f"{self.quarantined} quarantined, {self.seconds:.2f} s")
        extra = "".join(f"\n  {key}: " + ("".join(f"\n    {item}" for item in value)
                                             if isinstance(value, list) else str(value))
                        for key, value in self.notes.items())
        return line + extra


class RunDir:
    """A run directory (created if missing).

    Parameters
    ----------
    path : str or Path
        The directory.
    """

    def __init__(self, path):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise PetitionError(f"{self.path}: run directory is a file")
        self.path.mkdir(parents=True, exist_ok=True)

    def output_path(self, stage):
        return self.path / STAGE_OUTPUTS[stage]

    def _output(self, stage):
        path = self.output_path(stage)
        if not path.exists():
            raise PetitionError(f"{self.path}: no {stage} output ({path.name}); "
                                f"run `petition {stage} --run {self.path}` first")
        return path

    def read(self, stage, columns=None, leave_out=()):
        """Return the DataFrame a stage wrote (only ``columns`` if given, without those of
        ``leave_out``); a clear error if that stage has not run."""
        path = self._output(stage)
        try:
            return read_parquet(path, columns, leave_out)
        except Exception as exc:  # pyarrow raises several types for damaged files
            raise PetitionError(f"{path}: unreadable Parquet ({exc}); re-run `petition {stage}`") from exc

    def read_batches(self, stage, batch_rows, needed=()):
        """The rows a stage wrote as DataFrames of at most ``batch_rows`` rows, read one at a
        time (one empty DataFrame when there are none). Returns (total rows, iterator).
        A clear error if the file is unreadable or lacks one of the ``needed`` columns."""
        path = self._output(stage)
        try:
            metadata = pq.read_metadata(path)
        except Exception as exc:  # pyarrow raises several types for damaged files
            raise PetitionError(f"{path}: unreadable Parquet ({exc}); re-run `petition {stage}`") from exc
        missing = [column for column in needed if column not in metadata.schema.names]
        if missing:
            raise PetitionError(f"{path}: missing columns {missing}; re-run `petition {stage}`")
        rows = metadata.num_rows
        if not rows:
            return 0, iter([pd.read_parquet(path)])
        return rows, (batch.to_pandas() for batch in parquet_batches(path, batch_rows))

    def write(self, stage, df):
        write_parquet(df, self.output_path(stage))

    def write_batches(self, stage, frames):
        """Write DataFrames (at least one; all with the columns and types of the first) one
        after another as a stage's output, atomically. A frame is written in a thread while
        the next is made: Parquet's encoding leaves the GIL, and the workers making the next
        frame would otherwise wait for it."""
        frames = iter(frames)
        first = next(frames)
        columns = pa.Schema.from_pandas(first, preserve_index=False)
        with atomic_path(self.output_path(stage)) as tmp, pq.ParquetWriter(tmp, columns) as writer, \
                ThreadPoolExecutor(1) as background:
            written = None
            for frame in itertools.chain([first], frames):
                table = pa.Table.from_pandas(frame, schema=columns, preserve_index=False)
                if written is not None:
                    written.result()
                written = background.submit(writer.write_table, table)
            written.result()

    @staticmethod
    def _stage_frame(stage, rows, columns):
        frame = pd.DataFrame(rows, columns=columns[1:]).astype(str)
        frame.insert(0, schema.STAGE, stage)
        return frame

    def set_quarantine(self, stage, rows):
        """Record the rows ``stage`` quarantined (a DataFrame or list of dicts with
        ``schema.QUARANTINE_COLUMNS`` minus ``stage``) in ``quarantine.csv``, replacing
        that stage's rows from an earlier attempt and keeping other stages' rows."""
        path = self.path / "quarantine.csv"
        frames = [self._stage_frame(stage, rows, schema.QUARANTINE_COLUMNS)]
        if path.exists():
            old = pd.read_csv(path, dtype=str, keep_default_na=False, encoding=CSV_ENCODING)
            frames.insert(0, old[old[schema.STAGE] != stage])
        write_csv(pd.concat(frames, ignore_index=True), path)

    def set_warnings(self, stage, rows):
        """Write ``<stage>_warnings.csv`` (``schema.WARNING_COLUMNS`` minus ``stage``)."""
        write_csv(self._stage_frame(stage, rows, schema.WARNING_COLUMNS),
                  self.path / f"{stage}_warnings.csv")

    @property
    def manifest_path(self):
        return self.path / "manifest.json"

    def manifest(self):
        return read_manifest(self.manifest_path)

    def record_fields(self, fields):
        """Set top-level ``fields`` ({``schema.MANIFEST_*`` key: value}) of ``manifest.json``,
        with the current versions."""
        manifest = self.manifest()
        manifest.update(fields)
        manifest[schema.MANIFEST_VERSIONS] = {"pipeline": __version__, "python": platform.python_version(),
                                "pandas": pd.__version__}
        write_json(manifest, self.manifest_path)

    def record(self, result):
        """Store a stage's ``result`` in ``manifest.json``."""
        stages = self.manifest()[schema.MANIFEST_STAGES]
        stages[result.stage] = dataclasses.asdict(result) | {
            schema.MANIFEST_FINISHED_AT: time.strftime("%Y-%m-%dT%H:%M:%S")}
        self.record_fields({schema.MANIFEST_STAGES: stages})


@contextmanager
def stage(run, name):
    """Time a stage, check rows in = rows out + quarantined, print and record the result.

    Usage::

        with stage(run, "normalize") as result:
            ...
            result.rows_in, result.rows_out, result.quarantined = ...
    """
    stages = run.manifest()[schema.MANIFEST_STAGES]
    if stages.pop(name, None):  # a stage being redone is not done until it finishes
        run.record_fields({schema.MANIFEST_STAGES: stages})
    result = StageResult(name)
    start = time.perf_counter()
    yield result
    result.seconds = round(time.perf_counter() - start, 3)
    if result.rows_in != result.rows_out + result.quarantined:
        raise AssertionError(f"{name}: {result.rows_in} rows in but {result.rows_out} out "
                             f"+ {result.quarantined} quarantined")
    run.record(result)
    print(result.summary(), flush=True)
