# make test    : create .venv if needed, install, lint, run the default test suite
# make train   : create .venv if needed, install, run the main job (reward_joint on the synthetic world)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CODE := $(wildcard src tests benchmarks experiments)

.PHONY: install lint format test test-all train bench

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check $(CODE)
	$(BIN)/ruff format --check $(CODE)

format: $(STAMP)
	$(BIN)/ruff format $(CODE)
	$(BIN)/ruff check --fix $(CODE)

test: lint
	$(BIN)/python -m pytest -m "not slow and not gpu"

test-all: lint
	$(BIN)/python -m pytest -m "not gpu"

train: $(STAMP)
	$(BIN)/python src/train.py experiment=reward_joint

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_data.py
