# Two commands do everything on a fresh machine: `make nightly` and `make test`.
# Each creates .venv and installs the package (pinned in setup.cfg) when needed.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PETITION := $(VENV)/bin/petition
DUMP ?= corpora/sample/letters.csv
RUN ?= runs/$(shell date +%Y-%m-%d)
BENCH_DIR ?= bench

.PHONY: help install test nightly bench sample clean

help:
	@echo "make nightly [DUMP=path] [RUN=dir]   run the pipeline on a dump (default: bundled sample)"
	@echo "make test                            run the test suite"
	@echo "make bench                           run the benchmarks, figures in $(BENCH_DIR)/"
	@echo "make sample                          regenerate the bundled sample dump"

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

test: $(VENV)/.installed
	$(PY) -m pytest -q

nightly: $(VENV)/.installed
	$(PETITION) ingest $(DUMP) --run $(RUN)
	$(PETITION) normalize --run $(RUN)
	$(PETITION) segment --run $(RUN)

bench: $(VENV)/.installed
	$(PY) benchmarks/bench_segment.py --out $(BENCH_DIR)/segment.json

sample: $(VENV)/.installed
	$(PY) -m pipeline.synth --n 5000 --seed 20241 --out corpora/sample/letters.csv

clean:
	rm -rf runs $(BENCH_DIR) .pytest_cache
