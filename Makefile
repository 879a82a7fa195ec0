# Everything runs from the project's own virtualenv, created by `make install`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install demo test test-e2e test-reliability test-fast lint clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: install
	$(BIN)/oceantaco demo

lint: install
	$(BIN)/ruff check .

# One real Prefect server for the whole suite; the tests start moto, the GCS emulator and HTTP servers.
test: install lint
	$(BIN)/python tests/run_with_prefect.py -- $(BIN)/pytest -q -m "not e2e and not reliability" --durations=10

# End-to-end runs: downloads of every product from local Copernicus Marine, AVISO FTP and GDAC servers,
# whole pipeline runs through Prefect (local and S3 roots), and the Prefect UI in headless Chromium.
test-e2e: install
	$(BIN)/python tests/run_with_prefect.py -- $(BIN)/pytest -q -m e2e --durations=10

# Fault injection (tests/reliability): kill -9 anywhere, flaky providers, bad files and CLI input, concurrent
# runs, secrets. Faults are drawn from OCEANTACO_FAULT_SEED (default fixed) to replay a failure.
test-reliability: install
	$(BIN)/python tests/run_with_prefect.py -- $(BIN)/pytest -q -m reliability --durations=10 tests/reliability

# Without the Prefect server: tests marked `prefect` skip.
test-fast: install
	$(BIN)/pytest -q -m "not prefect and not e2e and not reliability"

clean:
	rm -rf $(VENV) demo-output .pytest_cache .ruff_cache
