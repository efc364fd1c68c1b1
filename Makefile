# Every target creates or updates the virtualenv .venv/ first.
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MLOPS_HOME ?= $(CURDIR)/.mlops
export MLOPS_HOME
export KERAS_BACKEND ?= jax
DAGSTER_PORT ?= 3000
MLFLOW_PORT ?= 5000
# Links in alerts, MLflow tags and asset metadata point at the UIs `make ui` and `make mlflow-ui` serve.
export MLOPS_DAGSTER_URL ?= http://127.0.0.1:$(DAGSTER_PORT)
export MLOPS_MLFLOW_URL ?= http://127.0.0.1:$(MLFLOW_PORT)

.PHONY: install demo test mutation mutation-fast audit ui mlflow-ui bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: install  ## set up, land demo data, run the main job on the embedded default
	$(BIN)/mlops-assets demo

# Two workers (one per core here), whole files per worker: a module's trained platform is built once.
PYTEST_WORKERS ?= 2
# The kill -9 tests time their kills against a running training: they run alone, after the rest.
CRASH_TESTS := mlops_assets_tests/reliability/test_crashes.py

test: install  ## set up and run the whole suite
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile --ignore=$(CRASH_TESTS)
	$(BIN)/python -m pytest $(CRASH_TESTS)

# Mutation testing (mutmut) of the decision modules, one module at a time: docs/mutation.md.
# MODULES=name,... runs some of them (names in .ci/mutation.py). Niced: it shares the cores.
mutation: install  ## mutmut over every decision module; refreshes docs/mutation.md; fails on an unexplained survivor
	nice -n 10 $(BIN)/python .ci/mutation.py $(if $(MODULES),--modules $(MODULES))

mutation-fast: install  ## the CI subset: promotion rules, the landing zone, every named mutation
	nice -n 10 $(BIN)/python .ci/mutation.py --fast

AUDIT_IGNORE := .ci/pip-audit-ignore.txt

audit: install  ## pip-audit every installed package; fails if any finding is not in $(AUDIT_IGNORE) or any package cannot be checked
	$(BIN)/python -m pip list --format=freeze --exclude-editable > $(VENV)/audit-requirements.txt
	$(BIN)/pip-audit --strict --no-deps --disable-pip --progress-spinner off -r $(VENV)/audit-requirements.txt \
		$(addprefix --ignore-vuln ,$(shell sed -e 's/\#.*//' $(AUDIT_IGNORE)))

ui: install  ## Dagster webserver + daemon on 127.0.0.1:$(DAGSTER_PORT) (default 3000), instance under MLOPS_HOME
	mkdir -p $(MLOPS_HOME)/dagster_home
	DAGSTER_HOME=$(MLOPS_HOME)/dagster_home $(BIN)/dagster dev -h 127.0.0.1 -p $(DAGSTER_PORT) -w workspace.yaml

mlflow-ui: install  ## MLflow UI on 127.0.0.1:$(MLFLOW_PORT) (default 5000) over the local tracking store
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(MLOPS_HOME)/mlflow.db --default-artifact-root $(MLOPS_HOME)/mlartifacts --host 127.0.0.1 --port $(MLFLOW_PORT)

EVIDENTLY_VENV ?= $(CURDIR)/.venv-evidently

$(EVIDENTLY_VENV)/bin/python:
	$(PYTHON) -m venv $(EVIDENTLY_VENV)
	$(EVIDENTLY_VENV)/bin/pip install --quiet "evidently==0.7.23" "pandas==2.3.3" "numpy==2.4.6" "scipy==1.17.1" "pyarrow==26.0.1"

$(VENV)/.bench-installed: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $@

bench: install $(VENV)/.bench-installed $(EVIDENTLY_VENV)/bin/python  ## every benchmark (bench/run_all.py): bench/results.json, .md and the table in docs/performance.md
	EVIDENTLY_PYTHON=$(EVIDENTLY_VENV)/bin/python $(BIN)/python bench/run_all.py --readme

clean:
	rm -rf $(MLOPS_HOME)
