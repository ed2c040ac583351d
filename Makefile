# Campus Data Hub — set-up and everyday commands. Needs only Python 3.11+ and make.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

export DAGSTER_HOME := $(abspath dagster_home)
export GX_ANALYTICS_ENABLED := False
export RUNTIME__DLTHUB_TELEMETRY := false
export DAGSTER_DISABLE_TELEMETRY := true
# The simulation's keys (person_key, encryption of restricted datasets); production sets its own.
export HUB_PERSON_KEY_SECRET ?= campus-data-hub-simulation-key
export HUB_KMS_MASTER_KEYS ?= hub_footer:c2ltdWxhdGlvbi1vbmx5LWtleS0tY2hhbmdlLW1lISE=

SCALE  ?= 1
FAULTS ?= 0

.PHONY: install demo test ui lint clean

$(STAMP): pyproject.toml
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || \
		{ echo "Python 3.11 or newer is needed (found: $$($(PY) --version 2>&1)); set PY=python3.x"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(STAMP)

demo: install  ## simulate the campus (first time), serve it, run the main job, publish, summarise
	$(BIN)/hub demo --scale $(SCALE) --faults $(FAULTS)

test: install  ## the whole test suite
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

ui: install  ## the Dagster UI on http://127.0.0.1:3000, with the simulated sources served
	@test -f var/campus/manifest.json || $(BIN)/hub simulate --scale $(SCALE)
	@$(BIN)/hub recover
	@$(BIN)/hub serve-sources & SERVE=$$!; \
		trap 'kill $$SERVE 2>/dev/null' EXIT INT TERM; \
		$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

lint: install
	$(BIN)/ruff check .

clean:  ## remove everything the hub wrote (warehouse, raw zone, published data, runs); keeps .venv
	rm -rf var
	find dagster_home -mindepth 1 ! -name dagster.yaml -exec rm -rf {} +
