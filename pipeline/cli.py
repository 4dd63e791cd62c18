"""The ``petition`` command: one subcommand per stage.

All argument parsing lives here: one function per command registers its subcommand and sets
``func(args, config)``, which maps the parsed arguments onto the stage's ``run_stage`` (or
``train_command``, ``evaluate_command``, ``run_nightly``) with the configuration loaded once.
Errors meant for users (``PetitionError``, a bad configuration among them) are printed as one
line and exit with status 2; anything else is a bug and keeps its traceback.
"""
import argparse
import dataclasses
import datetime as dt
import importlib
import sys
import time
from pathlib import Path

import pandas as pd

from pipeline import __version__, schema
from pipeline.config import PERIODS, load_config
from pipeline.errors import PetitionError
from pipeline.parallel import allow_open_files
from pipeline.rundir import RunDir


def command(name):
    """The module ``pipeline.<name>``, imported when its command runs: ``petition segment``
    starts without loading scikit-learn, which only classify, train and evaluate need."""
    return importlib.import_module(f"pipeline.{name}")


def count(text):
    """argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def stage_parser(subparsers, name, run_help="run directory", **texts):
    """The subcommand ``name`` (``texts``: its help and description) with the ``--run`` option."""
    parser = subparsers.add_parser(name, **texts)
    parser.add_argument("--run", required=True, help=run_help)
    return parser


def add_processes(parser):
    parser.add_argument("--processes", type=count, help="worker processes (default: configuration)")


def add_engine(parser):
    parser.add_argument("--engine", choices=("local", "spark"),
                        help="where the letter-wise work runs: local worker processes or Spark "
                             "(default: configuration engine.name)")
    parser.add_argument("--master", metavar="URL",
                        help="Spark master: local[*], local[N], spark://HOST:7077, yarn (default: engine.master)")


def with_engine(args, config):
    """``config`` with the engine the command's ``--engine`` and ``--master`` chose (a Spark
    master alone means the Spark engine)."""
    name, master = getattr(args, "engine", None), getattr(args, "master", None)
    if name is None and master is None:
        return config
    engine = dataclasses.replace(config.engine, name=name or "spark", master=master or config.engine.master)
    return dataclasses.replace(config, engine=engine)


def add_ingest(subparsers):
    parser = stage_parser(
        subparsers, "ingest", "run directory (created if missing)", help="read letter dumps into a new run directory",
        description="Read CSV/XLSX/JSONL/Parquet files or folders and map them onto the letter schema.")
    parser.add_argument("inputs", nargs="+", help="files or folders")
    parser.add_argument("--sheet", help="workbook sheet name or 1-based number (default: first)")
    parser.add_argument("--channel", choices=schema.CHANNELS,
                        help="channel of files without a channel column (e.g. online for a message board)")
    parser.set_defaults(func=lambda args, config: command("ingest").run_stage(
        RunDir(args.run), config, inputs=args.inputs, channel=args.channel, sheet=args.sheet))


def add_normalize(subparsers):
    parser = stage_parser(
        subparsers, "normalize", help="clean text, mask identifiers, pseudonymise petitioners",
        description="Read ingested.parquet, write normalized.parquet.")
    add_engine(parser)
    parser.set_defaults(func=lambda args, config: command("normalize").run_stage(RunDir(args.run), config))


def add_segment(subparsers):
    parser = stage_parser(
        subparsers, "segment", help="cut text into words with jieba and the petition dictionary",
        description="Read normalized.parquet, write segmented.parquet.")
    parser.add_argument("--dict", action="append", default=[], metavar="FILE",
                        help="extra jieba user dictionary (repeatable), e.g. place names")
    add_processes(parser)
    parser.add_argument("--no-cache", action="store_true", help="segment every letter again")
    add_engine(parser)
    parser.set_defaults(func=lambda args, config: command("segment").run_stage(
        RunDir(args.run), config, dicts=args.dict, processes=args.processes, cache=not args.no_cache))


def add_classify(subparsers):
    parser = stage_parser(
        subparsers, "classify",
        help="topic, confidence and attributes (nature, 涉法涉诉, anonymous, joint, collective, 越级)",
        description="Read segmented.parquet, write classified.parquet.")
    parser.add_argument("--model", metavar="DIR", help="model directory (default: classify.model_dir)")
    add_processes(parser)
    add_engine(parser)
    parser.set_defaults(func=lambda args, config: command("classify").run_stage(
        RunDir(args.run), config, model=args.model, processes=args.processes))


def add_dedupe(subparsers):
    parser = stage_parser(
        subparsers, "dedupe", help="link copies, 一信多投, repeat petitions and same-matter letters into cases",
        description="Read classified.parquet (else segmented.parquet), match it against the index of "
                    "earlier letters, add it there; write deduped.parquet, links.csv, cases.csv, summary.json.")
    parser.add_argument("--index", help="dedupe index directory (default: DATA_DIR/index)")
    parser.add_argument("--rebuild", action="store_true",
                        help="start an empty index when the existing one is damaged or was built "
                             "with other settings (the old one is moved aside)")
    add_processes(parser)
    add_engine(parser)
    parser.set_defaults(func=lambda args, config: command("dedupe").run_stage(
        RunDir(args.run), config, index=args.index, rebuild=args.rebuild, processes=args.processes))


def report_end(text):
    """``--end``'s date YYYY-MM-DD as a Timestamp (None when not given)."""
    if text is None:
        return None
    try:
        return pd.Timestamp(dt.date.fromisoformat(text))
    except ValueError:
        raise PetitionError(f"--end: expected a date YYYY-MM-DD, got {text!r}") from None


def add_report(subparsers):
    parser = stage_parser(
        subparsers, "report", help="office report: totals, topics, repeats, places, months (xlsx, html, md)",
        description="Read deduped.parquet (and the history of earlier letters), write report.xlsx, "
                    "report.html and report.md for the last complete period.")
    parser.add_argument("--period", choices=PERIODS,
                        help="month, quarter, half or year (default: configuration report.period)")
    parser.add_argument("--end", help="report the last complete period ending on this date, YYYY-MM-DD "
                                      "(default: the latest received_at)")
    parser.add_argument("--history", help="Parquet file or folder of every earlier letter with the classify "
                                          "and dedupe columns (default: RUN/../archive/letters if it exists)")
    parser.add_argument("--dict", action="append", default=[], metavar="FILE",
                        help="segment dictionary of the run (repeatable): its township words are looked for in texts")
    parser.set_defaults(func=lambda args, config: command("report").run_stage(
        RunDir(args.run), config, history=args.history, period=args.period, end=report_end(args.end),
        dicts=args.dict))


def add_nightly(subparsers):
    parser = subparsers.add_parser(
        "nightly", help="run every stage over a dump into a dated run directory",
        description="Keep everything an office accumulates under one home directory: a run directory per "
                    "dump, the dedupe index, the archive of letters. The same dump again changes nothing; a "
                    "failed stage resumes on the next run.")
    parser.add_argument("inputs", nargs="+", help="the dump: files or folders")
    parser.add_argument("--home", default="runs", help="home of runs, index and archive (default: runs)")
    parser.add_argument("--channel", choices=schema.CHANNELS, help="passed to ingest: channel of files without one")
    parser.add_argument("--dict", action="append", default=[], metavar="FILE",
                        help="passed to segment: extra jieba user dictionary")
    parser.add_argument("--model", help="passed to classify: model directory")
    parser.add_argument("--period", choices=PERIODS,
                        help="passed to report: month, quarter, half or year (default: configuration report.period)")
    add_engine(parser)
    parser.set_defaults(func=run_nightly)


def run_nightly(args, config):
    files = command("intake.readers").expand_inputs(args.inputs)
    start = time.perf_counter()
    run = command("nightly").run_nightly(files, Path(args.home), config, channel=args.channel, dicts=args.dict,
                              model=args.model, period=args.period)
    print(f"nightly: {run} complete in {time.perf_counter() - start:.1f} s")


def add_train(subparsers):
    parser = subparsers.add_parser(
        "train", help="train the topic classifier on a labelled archive",
        description="Fit the classifier on a labelled CSV/XLSX/JSONL and write model.joblib + model_card.json.")
    parser.add_argument("--data", required=True, help="labelled archive (CSV, XLSX or JSONL)")
    parser.add_argument("--text-col", required=True, action="append", metavar="C",
                        help="text column (repeat for title and body: joined with a newline)")
    parser.add_argument("--label-col", required=True, action="append", metavar="L",
                        help="label column: a path 一级/二级 or a first-level class per cell; given twice, a "
                             "first-level and a second-level column")
    parser.add_argument("--label-sep", metavar="S", help="separator of several labels per cell (multi-label model)")
    parser.add_argument("--labels", metavar="FILE", help="table holding the label column, joined on the letter id")
    parser.add_argument("--model", required=True, metavar="DIR", help="output model directory")
    parser.add_argument("--taxonomy", metavar="FILE",
                        help="topics the labels must belong to (codes or Chinese names); default: labels as "
                             "they come, responsible bodies from the configured taxonomy")
    parser.add_argument("--dict", action="append", default=[], metavar="FILE",
                        help="extra jieba user dictionary (repeatable); stored in the model")
    parser.add_argument("--note", default="", help="description stored in the model card")
    parser.add_argument("--with-decisions", nargs="?", const="runs", metavar="HOME",
                        help="analysts' topic corrections (petition decide topic) in HOME/decisions.sqlite "
                             "(default home: runs) replace the labels of the letters they name")
    parser.set_defaults(func=lambda args, config: command("train").train_command(
        config, data=args.data, text_cols=args.text_col, label_col=_one_or_two(args.label_col), model=args.model,
        label_sep=args.label_sep, labels=args.labels, taxonomy=args.taxonomy, dicts=args.dict, note=args.note,
        decisions=args.with_decisions))


def _one_or_two(label_cols):
    """``--label-col`` given once (a column name) or twice (first and second level)."""
    return label_cols and (label_cols[0] if len(label_cols) == 1 else label_cols)


def add_train_matcher(subparsers):
    parser = subparsers.add_parser(
        "train-matcher", help="train the dedupe match model (P same matter) on labelled pairs of letters",
        description="Fit the match model on judged pairs (letter_a, letter_b, label SAME/DIFF), truth pairs of "
                    "generated letters (letter_a, letter_b, relation) and the homes' analyst decisions; write "
                    "model.joblib + model_card.json.")
    parser.add_argument("--pairs", required=True, action="append", nargs=2, metavar=("HOME", "FILE"),
                        help="a nightly home (its runs' letters) and a CSV of pairs of them (repeatable)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output model directory (dedupe.matcher)")
    parser.add_argument("--no-decisions", action="store_true", help="leave the homes' analyst decisions out")
    add_processes(parser)
    parser.set_defaults(func=lambda args, config: command("train_matcher").train_matcher_command(
        config, pairs=args.pairs, out=args.out, decisions=not args.no_decisions, processes=args.processes))


def add_evaluate(subparsers):
    parser = subparsers.add_parser(
        "evaluate", help="metrics of a model on a labelled file, or cross-validated",
        description="Accuracy, macro-F1, per-label precision/recall/F1 and the confusion matrix.")
    parser.add_argument("--data", required=True, help="labelled file (CSV, XLSX or JSONL)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", metavar="DIR", help="saved model to evaluate")
    source.add_argument("--cv", type=int, metavar="K", help="cross-validate the configured model in K folds")
    parser.add_argument("--text-col", action="append", metavar="C",
                        help="text column (repeatable; default: the model's, else 'text')")
    parser.add_argument("--label-col", action="append", metavar="L",
                        help="label column, or twice: first and second level (default: the model's, else 'label')")
    parser.add_argument("--level", type=int, choices=(1, 2), default=1,
                        help="score first-level classes (1, default) or whole two-level labels (2)")
    parser.add_argument("--label-sep", metavar="S", help="separator of several labels per cell")
    parser.add_argument("--labels", metavar="FILE", help="table holding the label column, joined on the letter id")
    parser.add_argument("--out", default="evaluation", metavar="DIR",
                        help="folder for confusion.csv and confusion.png (default: evaluation)")
    parser.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    parser.set_defaults(func=lambda args, config: command("evaluate").evaluate_command(
        config, data=args.data, model=args.model, cv=args.cv, text_cols=args.text_col,
        label_col=_one_or_two(args.label_col), label_sep=args.label_sep, labels=args.labels, out=args.out,
        as_json=args.json, level=args.level))


def add_decide(subparsers):
    parser = subparsers.add_parser(
        "decide", help="analyst decisions: two letters are or are not one matter, detach, correct a topic",
        description="Write a decision into the home's decisions.sqlite (beside the dedupe index; append-only, "
                    "with user and time), list them, or undo one. Every later dedupe honours them.")
    where = argparse.ArgumentParser(add_help=False)
    place = where.add_mutually_exclusive_group()
    place.add_argument("--home", help="home directory holding index/ (default: runs)")
    place.add_argument("--index", metavar="DIR", help="dedupe index directory: decisions.sqlite is beside it")
    where.add_argument("--user", help="who decides (default: the login name)")
    noted = argparse.ArgumentParser(add_help=False, parents=[where])
    noted.add_argument("--note", default="", help="the reason, shown by `decide list` (no personal data)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for kind, text in (("same", "the two letters are one matter"), ("different", "the two letters are not")):
        action = actions.add_parser(kind, parents=[noted], help=text, description=f"Decide that {text}.")
        action.add_argument("letters", nargs=2, metavar="LETTER_ID")
    action = actions.add_parser("detach", parents=[noted], help="the letter leaves its case (its own case from now on)")
    action.add_argument("letters", nargs=1, metavar="LETTER_ID")
    action = actions.add_parser("topic", parents=[noted], help="correct a letter's topics")
    action.add_argument("letters", nargs=1, metavar="LETTER_ID")
    action.add_argument("value", metavar="CODE[|CODE...]", help="topic codes or Chinese names, |-separated")
    action = actions.add_parser("undo", parents=[noted], help="cancel decision N (itself a new decision)")
    action.add_argument("undoes", type=count, metavar="N")
    action = actions.add_parser("list", parents=[where], help="every decision with its status")
    action.add_argument("--json", action="store_true", help="print them as a JSON list")
    action.add_argument("--last", type=count, metavar="N", help="only the last N")
    parser.set_defaults(func=run_decide)


def run_decide(args, config):
    decisions = command("decisions")
    store = (decisions.DecisionStore.for_index(args.index) if args.index
             else decisions.DecisionStore.for_home(args.home or "runs"))
    topic_code = None
    if args.action == schema.DECISION_TOPIC:
        topic_code = command("classifier.taxonomy").Taxonomy.load(config.classify.taxonomy).code_for
    decisions.decide_command(
        store, args.action, letters=getattr(args, "letters", ()), value=getattr(args, "value", None),
        undoes=getattr(args, "undoes", None), note=getattr(args, "note", ""), user=args.user,
        as_json=getattr(args, "json", False), limit=getattr(args, "last", None), topic_code=topic_code)


def add_review(subparsers):
    parser = subparsers.add_parser(
        "review", help="the review workbench: a local web app to read and correct cases, letters and topics",
        description="Serve the review workbench over a nightly home on 127.0.0.1 (another address needs "
                    "accounts: `petition review add-user NAME`).")
    parser.add_argument("--home", default="runs", help="nightly home (default: runs)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=count, default=8765, help="port (default: 8765)")
    parser.add_argument("--pairs", action="append", nargs=2, metavar=("HOME", "FILE"),
                        help="pair files the match model is retrained on (default: those of its card found here)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    user = actions.add_parser("add-user", help="add an account (asks for its password)",
                              description="Add or replace an account of the workbench (scrypt-hashed password).")
    user.add_argument("name", help="user name")
    user.add_argument("--home", default=argparse.SUPPRESS, help="nightly home (default: runs)")
    parser.set_defaults(func=run_review)


def run_review(args, config):
    review = command("review.serve")
    if args.action == "add-user":
        review.add_user_command(home=Path(args.home), name=args.name)
    else:
        review.serve_command(config, home=Path(args.home), host=args.host, port=args.port, pairs=args.pairs,
                             config_file=args.config)


COMMANDS = (add_ingest, add_normalize, add_segment, add_classify, add_dedupe, add_nightly, add_report, add_train,
            add_train_matcher, add_evaluate, add_decide, add_review)


def build_parser():
    parser = argparse.ArgumentParser(prog="petition", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="configuration YAML "
                        "(default: $PETITION_CONFIG, else the project's corpora/config.yaml)")
    parser.add_argument("--version", action="version", version=f"petition {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_command in COMMANDS:
        add_command(subparsers)
    return parser


def main(argv=None):
    """Run ``petition ARGV``; returns the exit status (0, 2 for a user error, 130 interrupted)."""
    args = build_parser().parse_args(argv)
    allow_open_files()
    try:
        args.func(args, with_engine(args, load_config(args.config)))
    except PetitionError as exc:
        print(f"petition {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"petition {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
