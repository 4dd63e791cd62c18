"""Page times of the review workbench: the ten largest cases' pages on a nightly home.

    python benchmarks/bench_review.py [--home runs-board] --out bench/review.json

Builds the app over HOME and warms it as ``petition review`` does before serving (the home read,
jieba's tables loaded: ``start_seconds``), then requests each of the ten largest cases' pages
through Flask's test client twice (first: the shared names found; again: cached) and writes the
seconds per page, with the case's size, as JSON. Without ``--home`` it first runs the nightly on the
board (messages.xlsx, --channel online --dict place_words.txt) into a temporary home (``make bench``).
"""
import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from bench_matching import BOARD, nightly

from pipeline import schema
from pipeline.config import load_config
from pipeline.review.app import create_app


def timed(client, url):
    start = time.perf_counter()
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return round(time.perf_counter() - start, 3)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", help="nightly home (default: the board's, made in a temporary folder)")
    parser.add_argument("--cases", type=int, default=10, help="how many of the largest cases (default 10)")
    parser.add_argument("--out", required=True, help="JSON file to write")
    args = parser.parse_args(argv)
    if args.home:
        return measure(args.home, args)
    if not (BOARD / "messages.xlsx").exists():
        print(f"[bench] {BOARD}/messages.xlsx not found; review benchmark skipped")
        return None
    home = Path(tempfile.mkdtemp(prefix="bench-review-"))
    try:
        nightly(home, BOARD / "messages.xlsx", "--channel", "online", "--dict", BOARD / "place_words.txt")
        return measure(home, args)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def measure(home, args):
    """Time the workbench's pages over ``home``; write and return the figures."""
    client = create_app(home, load_config(), secret_key="bench").test_client()
    start = time.perf_counter()
    bench = client.application.extensions["workbench"].warm()  # as petition review does before serving
    cases = bench.snapshot().cases.sort_values(schema.CASE_LETTERS, ascending=False, kind="stable").head(args.cases)
    load = round(time.perf_counter() - start, 3)
    pages = [{"case_id": case_id, "letters": int(row[schema.CASE_LETTERS]),
              "first_seconds": timed(client, f"/cases/{case_id}"), "again_seconds": timed(client, f"/cases/{case_id}")}
             for case_id, row in cases.iterrows()]
    result = {"home": str(Path(home).resolve()), "letters": len(bench.snapshot().letters),
              "start_seconds": load, "tonight_seconds": timed(client, "/"), "cases": pages,
              "slowest_first_seconds": max(p["first_seconds"] for p in pages),
              "slowest_again_seconds": max(p["again_seconds"] for p in pages)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result, ensure_ascii=False, indent=1))
    return result


if __name__ == "__main__":
    main()
