# Every target creates or updates the virtualenv .venv/ first.
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MLOPS_HOME ?= $(CURDIR)/.mlops
export MLOPS_HOME
export KERAS_BACKEND ?= jax
# uv installs no bytecode, and where the environment sets PYTHONDONTWRITEBYTECODE every process
# compiles every module it imports from source, every time (the test suite took twice as long).
# Unset here, each module imported is compiled once, on first use, into the virtualenv.
unexport PYTHONDONTWRITEBYTECODE
DAGSTER_PORT ?= 3000
MLFLOW_PORT ?= 5000
# Links in alerts, MLflow tags and asset metadata point at the UIs `make ui` and `make mlflow-ui` serve.
export MLOPS_DAGSTER_URL ?= http://127.0.0.1:$(DAGSTER_PORT)
export MLOPS_MLFLOW_URL ?= http://127.0.0.1:$(MLFLOW_PORT)

.PHONY: install lock bench-install demo test mutation mutation-fast audit ui mlflow-ui bench lint clean screenshots

# Installs go through uv (pinned; bootstrapped into the virtualenv by its own pip) from the lock
# file, which pins every transitive version for Linux x86_64 / Python 3.11 (the test and bench
# extras): two fresh installs are identical. `make lock` regenerates it after pyproject.toml changes.
# uv writes no .pyc (pip did, at install): UV_COMPILE_BYTECODE=1 make install compiles them all (~50 s).
UV_VERSION := 0.13.9
UV := $(BIN)/uv
LOCK := requirements.lock
LOCK_FLAGS := --extra test --extra bench --python-version 3.11 --python-platform x86_64-unknown-linux-gnu --generate-hashes

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.uv-$(UV_VERSION): | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	rm -f $(VENV)/.uv-*
	touch $@

# Fails when pyproject.toml (dependencies, test and bench extras) asks for what the lock does not give.
REQUIREMENTS_CHECK := import importlib.metadata as m, sys; from packaging.requirements import Requirement; \
	dist = lambda name: next(iter(m.distributions(name=name)), None); \
	wanted = [q for q in map(Requirement, m.requires("mlops_assets") or []) if not q.marker or any(q.marker.evaluate({"extra": e}) for e in ("", "test", "bench"))]; \
	missing = [str(q) for q in wanted if not (dist(q.name) and q.specifier.contains(dist(q.name).version, prereleases=True))]; \
	sys.exit(f"pyproject.toml asks for what $(LOCK) does not give: {missing}; run make lock" if missing else 0)

# sync: exactly the lock (anything else is removed, but pip and uv), then the project itself, then
# the checks: every requirement met (uv pip check) and the lock up to date with pyproject.toml.
$(STAMP): $(BIN)/python $(VENV)/.uv-$(UV_VERSION) pyproject.toml $(LOCK)
	$(UV) pip sync --quiet --python $(BIN)/python $(LOCK)
	$(UV) pip install --quiet --python $(BIN)/python --no-deps -e .
	$(UV) pip check --quiet --python $(BIN)/python
	@$(BIN)/python -c '$(REQUIREMENTS_CHECK)'
	touch $(STAMP)

install: $(STAMP)  ## create or update .venv/ from $(LOCK) (uv)

lock: $(VENV)/.uv-$(UV_VERSION)  ## re-resolve $(LOCK) from pyproject.toml, keeping the pins that still fit (UPGRADE=1: newest everything)
	$(UV) pip compile --quiet pyproject.toml $(LOCK_FLAGS) $(if $(UPGRADE),--upgrade) --custom-compile-command "make lock" -o $(LOCK)

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

# The bench extra (pyinstrument, selenium) is in $(LOCK), so `make install` has it already.
$(VENV)/.bench-installed: $(STAMP)
	$(BIN)/python -c "import pyinstrument"
	touch $@

# Fresh clone (HEAD + uncommitted changes) to champion, cold and warm caches, and the venv's size.
# BASELINE=<commit> also measures the pip-based install at that commit. Niced: it shares the cores.
bench-install:  ## time make install + make demo in a fresh clone: bench/results/install.json and .md
	nice -n 10 $(PYTHON) bench/install.py $(if $(BASELINE),--baseline-ref $(BASELINE))

bench: install $(VENV)/.bench-installed $(EVIDENTLY_VENV)/bin/python  ## every benchmark (bench/run_all.py): bench/results.json, .md and the table in docs/performance.md
	EVIDENTLY_PYTHON=$(EVIDENTLY_VENV)/bin/python $(BIN)/python bench/run_all.py --readme

clean:
	rm -rf $(MLOPS_HOME)

# Headless Chromium (apt-get install chromium chromium-driver) driven by Selenium (the bench extra).
# SCREENSHOTS_HOME=$(MLOPS_HOME) uses the runs already there instead of a fresh demo.
screenshots: install  ## Dagster UI screenshots for the README (docs/images/*.png): the demo in a temporary MLOPS_HOME, then `make ui` on a free port
	@$(BIN)/python -c "import selenium" 2>/dev/null || { echo "selenium is missing: it is in the bench extra (make lock, make install)" >&2; exit 1; }
	$(BIN)/python docs/screenshots.py $(if $(SCREENSHOTS_HOME),--home $(SCREENSHOTS_HOME))
