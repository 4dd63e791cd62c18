"""Compare the outputs of two nightly homes value by value: did a change alter any result?

Compares, for the one run directory in each home, the values of ``links.csv``, ``cases.csv``,
``deduped.parquet``, ``classified.parquet`` and every sheet of ``report.xlsx``. Timings and
file bytes are not compared (CSV quoting or Parquet metadata may differ), the values are.

Usage: python benchmarks/compare_runs.py HOME_BEFORE HOME_AFTER
Exit status 0 when every file has the same values, 1 otherwise (the differences are listed).
"""
import argparse
import sys
from pathlib import Path

import openpyxl
import pandas as pd

FILES = ("links.csv", "cases.csv", "deduped.parquet", "classified.parquet", "report.xlsx")
VOLATILE_ROWS = ("生成时间",)  # report notes that differ between any two runs: when it was made


def run_directory(home):
    """The single run directory of a nightly home (the one holding a report)."""
    runs = sorted(path.parent for path in Path(home).glob("*/report.xlsx"))
    if len(runs) != 1:
        raise SystemExit(f"{home}: expected one run directory, found {len(runs)}")
    return runs[0]


def read_values(path, home):
    """{part name: DataFrame} of a file's values: one part per xlsx sheet, else the file. In
    the report, the home's path is written as ``HOME`` and rows in ``VOLATILE_ROWS`` dropped."""
    if path.suffix == ".parquet":
        return {path.name: pd.read_parquet(path)}
    if path.suffix == ".csv":
        return {path.name: pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")}
    book = openpyxl.load_workbook(path, read_only=True)
    parts = {}
    for sheet in book.worksheets:
        frame = pd.DataFrame(list(sheet.values))
        frame = frame.map(lambda value: value.replace(str(home), "HOME") if isinstance(value, str) else value)
        if len(frame.columns):
            frame = frame[~frame[0].isin(VOLATILE_ROWS)].reset_index(drop=True)
        parts[f"{path.name}[{sheet.title}]"] = frame
    return parts


def differences(before, after):
    """Lines describing every file part whose values differ between two run directories."""
    lines = []
    for name in FILES:
        old, new = read_values(before / name, before.parent), read_values(after / name, after.parent)
        for part in sorted(set(old) | set(new)):
            if part not in old or part not in new:
                lines.append(f"{part}: only in {'after' if part in new else 'before'}")
                continue
            try:
                pd.testing.assert_frame_equal(old[part], new[part], check_dtype=False)
            except AssertionError as exc:
                lines.append(f"{part}: {str(exc).splitlines()[0]} … ({old[part].shape} vs {new[part].shape})")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", help="nightly home made by the old code")
    parser.add_argument("after", help="nightly home made by the new code")
    args = parser.parse_args(argv)
    before, after = run_directory(args.before), run_directory(args.after)
    lines = differences(before, after)
    for line in lines:
        print(line)
    print(f"{before} vs {after}: " + (f"{len(lines)} parts differ" if lines else "same values in " + ", ".join(FILES)))
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
