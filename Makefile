# The README's commands. Each one creates or refreshes .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test fuzz bench lint docs lab clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

SAMPLE := data/sample

demo: $(STAMP)
	$(BIN)/siq convert $(SAMPLE) --out out/sample --keys $(SAMPLE)/keys/sample_public.pem --allow-unsigned
	@echo "The tables are in out/sample/, one Parquet dataset per table (docs/tables.md)."
	$(BIN)/jupyter nbconvert --execute --to html --output-dir out/reports notebooks/*.ipynb
	@echo "The reports are in out/reports/, one HTML page per notebook of notebooks/."

test: $(STAMP)
	$(BIN)/python -m pytest
	$(BIN)/python -m pytest --nbval-lax --nbval-current-env notebooks/

# The property tests of tests/test_fuzz.py and tests/test_fold.py, for FUZZ_SECONDS in all
# (make test runs a few examples of each).
FUZZ_SECONDS ?= 120

fuzz: $(STAMP)
	SIQ_FUZZ_SECONDS=$(FUZZ_SECONDS) $(BIN)/python -m pytest -q -m fuzz tests/test_fuzz.py tests/test_fold.py

# The benchmarks (benchmarks/), with the peers of the `bench` extra (dlt). BENCH_ARGS go to
# bench_convert.py: `make bench BENCH_ARGS="--scale 0.05 --rows one-file,naive"` for a quick try.
BENCH_STAMP := $(VENV)/.bench-installed
BENCH_ARGS ?=

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	status=0; for script in benchmarks/bench_*.py; do \
		args=; [ $$script = benchmarks/bench_convert.py ] && args="$(BENCH_ARGS)"; \
		$(BIN)/python $$script $$args || status=1; \
	done; exit $$status

lint: $(STAMP)
	$(BIN)/ruff check siq_schemas tests notebooks benchmarks
	$(BIN)/mypy

docs: $(STAMP)
	$(BIN)/python -m siq_schemas._reference

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf $(VENV) build dist .pytest_cache
