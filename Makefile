# Campus Data Hub — set-up and everyday commands. Needs only Python 3.11+ and make.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

export DAGSTER_HOME := $(abspath dagster_home)
export GX_ANALYTICS_ENABLED := False
export RUNTIME__DLTHUB_TELEMETRY := false
export DAGSTER_DISABLE_TELEMETRY := true
# The demo's own keys (person_key, national keys, encryption of restricted datasets). hub.keys accepts them
# only in demo and test runs (HUB_MODE=demo/test); a production run refuses them: set your own there.
export HUB_PERSON_KEY_SECRET ?= demo-only-person-key-not-for-production
export HUB_NATIONAL_KEY_SECRET ?= demo-only-national-key-not-for-production
export HUB_KMS_MASTER_KEYS ?= hub_footer:ZGVtby1vbmx5LWttcy1rZXktbm90LWZvci1wcm9kISE=

SCALE  ?= 1
FAULTS ?= 0

.PHONY: install demo test ui lint clean

$(STAMP): pyproject.toml
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || \
		{ echo "Python 3.11 or newer is needed (found: $$($(PY) --version 2>&1)); set PY=python3.x"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,scale]'
	@touch $@

install: $(STAMP)

demo: install  ## simulate the campus (first time), serve it, run the main job, publish, summarise
	$(BIN)/hub demo --scale $(SCALE) --faults $(FAULTS)

test: install  ## the whole test suite
	HUB_MODE=test $(BIN)/python -m pytest -q -n 2 --dist loadfile

ui: install  ## the Dagster UI on http://127.0.0.1:3000, with the simulated sources and the Data Docs (:3001) served
	@test -f var/campus/manifest.json || $(BIN)/hub simulate --scale $(SCALE)
	@$(BIN)/hub recover
	@$(BIN)/hub serve-sources & SERVE=$$!; $(BIN)/hub serve-docs & DOCS=$$!; \
		trap 'kill $$SERVE $$DOCS 2>/dev/null' EXIT INT TERM; \
		HUB_MODE=demo DAGSTER_AUTOMATION_TICK_SETTLE_SECONDS=5 $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

lint: install
	$(BIN)/ruff check .

clean:  ## remove everything the hub wrote (warehouse, raw zone, published data, runs); keeps .venv
	rm -rf var
	find dagster_home -mindepth 1 ! -name dagster.yaml -exec rm -rf {} +
