"""Topic classification: the project's classifier against a plain reference on the real
message board, and classification throughput on the bundled sample.

1. 5-fold stratified cross-validation on ``../shared/corpora/messageboard/labeled.csv``, the
   same folds for both: the project's model (configuration as committed, nothing tuned on
   these folds) and the reference: jieba words, ``TfidfVectorizer(tokenizer=jieba.lcut,
   token_pattern=None)``, ``LinearSVC()`` defaults. Also counts how many unlabelled messages
   of ``messages.xlsx`` repeat a labelled text (the model does not use them).
2. The default model (``models/default``) on the board's labelled letters: first-level
   macro-F1 (the board's 7 labels are first-level classes) and the share of its errors that
   ``needs_review`` flags, at the share of letters it flags (``evaluate.evaluate_model``).
3. Letters per second of the default model on the sample (raw title + body in: cleaning
   and segmentation included), 1 and 2 processes, best of ``--repeat``; of the topic and
   nature models together; and of the classify stage itself as ``petition classify`` runs
   it (topics, nature, attributes; the sample ingested, normalized and segmented first), with
   its CPU time per letter (all processes): wall-clock figures need an otherwise idle machine.

Usage: python benchmarks/bench_classify.py --out bench/classify.json [--repeat 3]
"""
import argparse
import dataclasses
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import jieba
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.svm import LinearSVC

from pipeline import classify, ingest, normalize, schema, segment
from pipeline.intake import fields, readers
from pipeline.classifier import predict, textmodel
from pipeline.config import PROJECT_ROOT, load_config
from pipeline.evaluate import evaluate_model
from pipeline.rundir import RunDir
from pipeline.train import read_labelled, train_model

BOARD = PROJECT_ROOT.parent / "shared" / "corpora" / "messageboard"


def overlap_with_unlabelled(texts, path, size=20):
    """Messages of ``path`` whose body's first ``size`` characters (spaces removed) occur in a
    labelled text: such texts would leak into any fit on the unlabelled pool within CV."""
    frame = readers.read_table(path).frame
    bodies = fields.as_text(frame["留言详情"]).str.replace(r"\s+", "", regex=True)
    labelled = "\x00".join("".join(text.split()) for text in texts)
    return int(sum(len(body) >= size and body[:size] in labelled for body in bodies)), len(bodies)


def cross_validation(config, seed):
    texts, label_sets, _ = read_labelled(BOARD / "labeled.csv", ["text"], "label")
    labels = np.array([s[0] for s in label_sets])
    start = time.perf_counter()
    _, summary = train_model(texts, label_sets, dataclasses.replace(config.classify, seed=seed), textmodel.LetterText.from_config(config),
                             processes=config.classify.processes, final_fit=False)
    project_seconds = time.perf_counter() - start
    cv = summary["cross_validation"]
    folds = StratifiedKFold(cv["folds"], shuffle=True, random_state=seed)  # the project's folds
    start = time.perf_counter()
    predicted = np.empty(len(texts), dtype=object)
    for train, test in folds.split(texts, labels):
        # built per fold, not cloned: jieba's loaded default tokenizer holds a lock and cannot be copied
        reference = make_pipeline(TfidfVectorizer(tokenizer=jieba.lcut, token_pattern=None), LinearSVC())
        reference.fit([texts[i] for i in train], labels[train])
        predicted[test] = reference.predict([texts[i] for i in test])
    reference_seconds = time.perf_counter() - start
    overlapping, unlabelled = overlap_with_unlabelled(texts, BOARD / "messages.xlsx")
    return {
        "data": str(BOARD / "labeled.csv"), "rows": len(texts), "folds": cv["folds"], "seed": seed,
        "project_macro_f1": cv["macro_f1"], "project_accuracy": cv["accuracy"],
        "reference_macro_f1": round(float(f1_score(labels, predicted, average="macro")), 4),
        "reference_accuracy": round(float(np.mean(predicted == labels)), 4),
        "project_per_label_f1": {label: m["f1"] for label, m in cv["per_label"].items()},
        "project_cv_seconds": round(project_seconds, 1), "reference_cv_seconds": round(reference_seconds, 1),
        "target_project_macro_f1": 0.91,
        "unlabelled_messages": unlabelled, "unlabelled_repeating_a_labelled_text": overlapping,
    }


def default_model_on_board(config):
    """The default model's first-level figures on labeled.csv and what ``needs_review`` catches."""
    texts, label_sets, _ = read_labelled(BOARD / "labeled.csv", ["text"], "label")
    model, card = textmodel.load_model(PROJECT_ROOT / config.classify.model_dir)
    metrics = evaluate_model(model, card, texts, label_sets, 1, config.classify.processes, config.classify.chunk_size)
    return {"default_model": card.get("description", ""), "default_model_level1_macro_f1": metrics["macro_f1"],
            "default_model_level1_accuracy": metrics["accuracy"],
            "default_model_review_threshold": metrics["review"]["threshold"],
            "default_model_letters_flagged": metrics["review"]["letters_flagged"],
            "default_model_errors_flagged": metrics["review"]["errors_flagged"],
            "target_default_model_level1_macro_f1": 0.75}


def cpu_seconds():
    """User + system CPU seconds of this process and of its finished worker processes."""
    own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


def classify_stage(config, repeat):
    """Letters per second of the classify stage (``classify.run_stage``: topics, nature,
    attributes, written; the stage's time, models loaded before it) on the segmented sample,
    best of ``repeat``; and its CPU time per letter (models loaded included), all processes
    together: what the machine spends whatever else runs on it."""
    with tempfile.TemporaryDirectory(prefix="bench-classify-") as folder:
        run = RunDir(Path(folder) / "run")
        ingest.run_stage(run, config, inputs=[config.paths.sample_dump])
        normalize.run_stage(run, config)
        segment.run_stage(run, config)
        seconds = cpu = float("inf")
        for _ in range(repeat):
            start_cpu = cpu_seconds()
            seconds = min(seconds, classify.run_stage(run, config).seconds)
            cpu = min(cpu, cpu_seconds() - start_cpu)
        letters = len(run.read("classify"))
    return {"classify_stage_letters": letters, "classify_stage_processes": config.classify.processes,
            "classify_stage_letters_per_s": round(letters / seconds, 1),
            "classify_stage_cpu_us_per_letter": round(1e6 * cpu / letters, 1)}


def best_of(repeat, run):
    """Least wall and CPU seconds of ``repeat`` calls of ``run()``."""
    wall = cpu = float("inf")
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        run()
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return wall, cpu


def throughput(config, repeat):
    letters, *_ = ingest.ingest([config.paths.sample_dump], config)
    texts = (letters[schema.TITLE] + "\n" + letters[schema.CONTENT]).tolist()
    model_dir = PROJECT_ROOT / config.classify.model_dir
    model, _ = textmodel.load_model(model_dir)
    nature, _ = predict.load_nature_model(model_dir)
    chunk_size = config.classify.chunk_size
    results = {"sample_letters": len(texts), "sample_mean_chars": round(float(np.mean([len(t) for t in texts])), 1)}
    for processes in (1, 2):
        wall, cpu = best_of(repeat, lambda: textmodel.predict_proba(model, texts, processes, chunk_size))
        results[f"letters_per_s_{processes}proc"] = round(len(texts) / wall, 1)
        if processes == 1:
            # CPU time is what one core can do even when other work shares the machine
            results["letters_per_cpu_s_1proc"] = round(len(texts) / cpu, 1)
    # what `petition classify` runs: the topic and nature models, segmenting once between them
    wall, _ = best_of(repeat, lambda: textmodel.predict_probas([model, nature], texts, 2, chunk_size))
    results["topic_and_nature_letters_per_s_2proc"] = round(len(texts) / wall, 1)
    results["target_letters_per_s_2proc"] = 2000
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="fold shuffling (same folds for both models)")
    args = parser.parse_args(argv)
    config = load_config()
    results = {"cpu_count": os.cpu_count(), **cross_validation(config, args.seed), **default_model_on_board(config),
               **throughput(config, args.repeat), **classify_stage(config, args.repeat)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    for key, value in results.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
