# Omvänt: the two quick-start commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.install-stamp

.PHONY: demo test lint typecheck unit bench chaos clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/omvant demo

lint: $(STAMP)
	$(BIN)/ruff check contracts workers producers tests
	$(BIN)/ruff format --check contracts workers producers tests

typecheck: $(STAMP)
	$(BIN)/mypy contracts workers producers

test: lint typecheck
	$(BIN)/python -m pytest

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

# The benchmark (README, Performance): the servers of this machine unless told otherwise.
BENCH_BROKER   ?= amqp://guest:guest@127.0.0.1:5672/%2F
BENCH_DATABASE ?= postgresql://postgres@127.0.0.1:5432/omvant_bench
BENCH_ARGS     ?= --cases 100000

bench: $(STAMP)
	$(BIN)/omvant bench --broker '$(BENCH_BROKER)' --database '$(BENCH_DATABASE)' $(BENCH_ARGS) --json
	$(BIN)/omvant recipients bench
	$(BIN)/omvant templates bench
	$(BIN)/omvant attachments bench

# The chaos suite (README, "The chaos suite"): servers of its own on ports 25000-25999.
CHAOS_BROKER ?= rabbitmq
CHAOS_CASES  ?= 20000
CHAOS_ARGS   ?=

chaos: $(STAMP)
	$(BIN)/omvant chaos --broker $(CHAOS_BROKER) --cases $(CHAOS_CASES) $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) omvant.db omvant-blobs .pytest_cache .mypy_cache .ruff_cache
