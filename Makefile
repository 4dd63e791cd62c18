# Two commands do everything on a fresh machine: `make nightly` and `make test`.
# Each creates .venv and installs the package (pinned in setup.cfg) when needed.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PETITION := $(VENV)/bin/petition
DUMP ?= corpora/sample/letters.csv
HOME_DIR ?= runs
BENCH_DIR ?= bench

.PHONY: help install browser java test nightly review dedupe bench bench-dedupe bench-scale bench-spark bench-topic-variants sample train matcher taxonomy clean

help:
	@echo "make nightly [DUMP=path] [HOME_DIR=runs]  run the pipeline on a dump (default: bundled sample)"
	@echo "make test                            run the test suite"
	@echo "make review [HOME_DIR=runs]          the review workbench on http://127.0.0.1:8765/ (after make nightly)"
	@echo "make dedupe DUMP=path [INDEX=dir]    ingest, normalize, segment and dedupe a dump against the index"
	@echo "make bench                           run the benchmarks, figures in $(BENCH_DIR)/"
	@echo "make bench-dedupe [N=1000000]        dedupe N synthetic letters, then a 10,000-letter increment"
	@echo "make bench-scale [N=1000000] [ENGINES='local spark']  the whole nightly over N synthetic letters, then a 10,000-letter night, per engine"
	@echo "make bench-spark [DUMP=path] [MASTER=local[2]]  nightly on the local and the Spark engine, Spark task costs"
	@echo "make bench-topic-variants            topic model variants against the committed one, CV on labeled.csv"
	@echo "make matcher                         retrain the default match model (models/matcher)"
	@echo "make sample                          regenerate the bundled sample dump"
	@echo "make train                           retrain the default model (models/default) on generated letters"
	@echo "make taxonomy [XLSX=path]            rebuild corpora/taxonomy.yaml from taxonomy_3level.xlsx"

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# Headless Chromium, its driver and CJK fonts for the report's and the workbench's browser tests
# (Debian packages; needs root).
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null && fc-list :lang=zh 2>/dev/null | grep -q .; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver fonts-noto-cjk >/dev/null; \
	else echo "warning: chromium, chromium-driver or a CJK font is missing and cannot be installed here (needs root" \
		"and apt-get): the browser tests will be skipped; install the Debian packages chromium, chromium-driver and fonts-noto-cjk"; fi

# Java for the Spark engine (engine.name: spark; README: Spark): Debian's headless JRE 17
# (needs root). PySpark itself comes with the package's dev extra.
java:
	@if command -v java >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null; \
	else echo "warning: java is missing and cannot be installed here (needs root and apt-get): the Spark" \
		"engine's tests will be skipped; install the Debian package openjdk-17-jre-headless"; fi

test: $(VENV)/.installed browser java
	$(PY) -m pytest -q

nightly: $(VENV)/.installed
	$(PETITION) nightly $(DUMP) --home $(HOME_DIR)

# The review workbench over the nightly home, on 127.0.0.1:8765 (README: petition review).
review: $(VENV)/.installed
	$(PETITION) review --home $(HOME_DIR)

# The clerk's dedupe: a dump through ingest, normalize, segment and dedupe against INDEX, in
# DEDUPE_RUN (default: a new runs/dedupe-DATE-TIME-XXXXXX, made once, so two at once never share
# one). Two on one INDEX at once are safe: the second dedupe waits for the first
# (dedupe.index_lock_wait).
INDEX ?= .data/index
DEDUPE_RUN ?=
dedupe: $(VENV)/.installed
	@set -e; run="$(DEDUPE_RUN)"; \
	if [ -z "$$run" ]; then mkdir -p runs; run=$$(mktemp -d "runs/dedupe-$$(date +%Y%m%d-%H%M%S)-XXXXXX"); chmod 755 "$$run"; fi; \
	echo "run directory: $$run"; \
	$(PETITION) ingest $(DUMP) --run "$$run"; \
	$(PETITION) normalize --run "$$run"; \
	$(PETITION) segment --run "$$run"; \
	$(PETITION) dedupe --run "$$run" --index $(INDEX)

bench: $(VENV)/.installed
	$(PY) benchmarks/bench_segment.py --out $(BENCH_DIR)/segment.json
	$(PY) benchmarks/bench_dedupe.py board --out $(BENCH_DIR)/dedupe_board.json
	$(PY) benchmarks/bench_classify.py --out $(BENCH_DIR)/classify.json
	$(PY) benchmarks/bench_nightly.py --out $(BENCH_DIR)/nightly.json
	$(PY) benchmarks/bench_matching.py --out $(BENCH_DIR)/matching.json
	$(PY) benchmarks/bench_review.py --out $(BENCH_DIR)/review.json
	$(PY) benchmarks/bench_generated_model.py --out $(BENCH_DIR)/generated_model.json

# The default model (topics, and nature as an attribute model) from a generated training corpus:
# letters of every first-level class of the national classification (pipeline.synth --training,
# corpora/synth/training.yaml), labelled 一级/二级, in TRAINING_DIR (not committed). The card is
# marked trained_on: generated, which nightly and the report mention. An office trains on its own
# archive instead (README: petition train, evaluate, classify).
TRAINING_DIR := .data/training
TRAINING_N := 20000
TRAINING_SEED := 13
GENERATOR := python -m pipeline.synth --training --n $(TRAINING_N) --seed $(TRAINING_SEED) --out $(TRAINING_DIR)/letters.csv
GENERATED_NOTE := Trained on generated letters ($(GENERATOR)), not on a real office's archive; its \
	metrics are those of generated text. Train on your own archive, e.g. petition train --data archive.xlsx \
	--text-col 标题 --text-col 内容 --label-col 类别 --label-sep '|' --model models/office
train: $(VENV)/.installed
	$(PY) -m pipeline.synth --training --n $(TRAINING_N) --seed $(TRAINING_SEED) --out $(TRAINING_DIR)/letters.csv
	$(PETITION) train --data $(TRAINING_DIR)/letters.csv --labels $(TRAINING_DIR)/truth_letters.csv \
		--text-col 标题 --text-col 内容 --label-col topics --label-sep '|' --taxonomy corpora/taxonomy.yaml \
		--model models/default --note "$(GENERATED_NOTE)"
	$(PY) -m pipeline.synth.modelcard models/default --generator "$(GENERATOR)"
	$(PETITION) train --data $(TRAINING_DIR)/letters.csv --labels $(TRAINING_DIR)/truth_letters.csv \
		--text-col 标题 --text-col 内容 --label-col nature --model models/default/nature \
		--note "Nature (性质) attribute model. $(GENERATED_NOTE)"
	$(PY) -m pipeline.synth.modelcard models/default/nature --generator "$(GENERATOR)"

# The default match model (dedupe's "one matter"): the sample's truth pairs and the board's
# judged pairs (../shared), their letters segmented into homes of their own (README:
# petition train-matcher). An office adds its own judged pairs and decisions the same way.
BOARD := ../shared/corpora/messageboard
SAMPLE_DUMP := corpora/sample/letters.csv
MATCHER_HOMES := .data/matcher-homes
matcher: $(VENV)/.installed
	rm -rf $(MATCHER_HOMES)
	$(PETITION) ingest $(SAMPLE_DUMP) --run $(MATCHER_HOMES)/sample/run
	$(PETITION) normalize --run $(MATCHER_HOMES)/sample/run
	$(PETITION) segment --run $(MATCHER_HOMES)/sample/run
	$(PETITION) ingest $(BOARD)/messages.xlsx --channel online --run $(MATCHER_HOMES)/board/run
	$(PETITION) normalize --run $(MATCHER_HOMES)/board/run
	$(PETITION) segment --run $(MATCHER_HOMES)/board/run --dict $(BOARD)/place_words.txt
	$(PETITION) train-matcher --pairs $(MATCHER_HOMES)/sample corpora/sample/truth_pairs.csv \
		--pairs $(MATCHER_HOMES)/board $(BOARD)/judged_pairs.csv --out models/matcher

# A million letters from an empty index, then a 10,000-letter increment (not part of `make test`).
N ?= 1000000
bench-dedupe: $(VENV)/.installed
	$(PY) benchmarks/bench_dedupe.py scale --n $(N) --out $(BENCH_DIR)/dedupe_scale.json

# The whole nightly over N synthetic letters into an empty home, then a 10,000-letter night
# against them, every stage timed with its peak memory (not part of `make test`), on each engine
# of ENGINES over the same letters: the local one into bench/scale.json, then Spark (MASTER,
# default local[2]) into bench/scale-spark.json. Targets for a million letters on 2 cores:
# 15 minutes and 6 GB; the night 60 s. SCALE_WORK keeps the letters and homes (default: a new
# temporary folder).
ENGINES ?= local spark
bench-scale: $(VENV)/.installed $(if $(filter spark,$(ENGINES)),java)
	work=$${SCALE_WORK:-$$(mktemp -d -t bench-scale-XXXXXX)}; \
	for engine in $(ENGINES); do \
		$(PY) benchmarks/bench_nightly.py --history $(N) --target-history 900 --target-tonight 60 --target-gb 6 \
			--engine $$engine --master '$(MASTER)' --work $$work \
			--out $(BENCH_DIR)/scale$$([ $$engine = spark ] && echo -spark).json || exit 1; \
	done

# The Spark engine beside the local one on DUMP: stage seconds and each Spark task's seconds per
# chunk (README: Spark, what a cluster buys).
MASTER ?= local[2]
bench-spark: $(VENV)/.installed java
	$(PY) benchmarks/bench_spark.py --dump $(DUMP) --master '$(MASTER)' --out $(BENCH_DIR)/spark.json

# Variants of the topic model (NB-SVM, complement NB, self-training on messages.xlsx, taxonomy
# lexicon, title words) against the committed one on bench_classify's folds of labeled.csv
# (not part of `make bench`: about 20 minutes on 2 cores shared with other work).
bench-topic-variants: $(VENV)/.installed
	$(PY) benchmarks/topic_variants.py --out $(BENCH_DIR)/topic_variants.json

# The default taxonomy (corpora/taxonomy.yaml) from the national classification's three-level table.
XLSX ?= $(BOARD)/taxonomy_3level.xlsx
taxonomy: $(VENV)/.installed
	$(PY) scripts/national_taxonomy.py $(XLSX)

sample: $(VENV)/.installed
	$(PY) -m pipeline.synth --n 5000 --seed 20241 --out corpora/sample/letters.csv

clean:
	rm -rf runs $(BENCH_DIR) .pytest_cache
