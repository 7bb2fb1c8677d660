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

bench: $(STAMP)
	status=0; for script in benchmarks/bench_*.py; do $(BIN)/python $$script || status=1; done; exit $$status

lint: $(STAMP)
	$(BIN)/ruff check siq_schemas tests notebooks benchmarks
	$(BIN)/mypy

docs: $(STAMP)
	$(BIN)/python -m siq_schemas._reference

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf $(VENV) build dist .pytest_cache
