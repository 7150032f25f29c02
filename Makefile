# Nexus: two commands. `make run` sets everything up and starts the stack; `make test` runs the suite.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test setup migrate admin lint bench clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need Python 3.11 ($(PYTHON))"; exit 1; }
	@echo "nexus: [setup] creating the virtualenv $(VENV)"
	@$(PYTHON) -m venv $(VENV)

# uv installs the packages in about half a minute where pip takes minutes on a busy machine: the one
# on PATH, else one pip puts into the virtualenv first (seconds); plain pip when neither works.
$(STAMP): pyproject.toml | $(BIN)/python
	@echo "nexus: [setup] installing the packages of pyproject.toml (a minute or less with uv)"
	@UV=$$(command -v uv || { $(BIN)/python -m pip install --quiet uv >/dev/null 2>&1 && echo $(BIN)/uv; }); \
	if [ -n "$$UV" ]; then "$$UV" pip install --quiet --python $(BIN)/python -e ".[dev]"; \
	else $(BIN)/python -m pip install --quiet --upgrade pip && $(BIN)/python -m pip install --quiet -e ".[dev]"; fi
	@touch $(STAMP)

setup: $(STAMP)

migrate: setup
	@echo "nexus: [database] applying migrations"
	@$(BIN)/python manage.py migrate --noinput -v 0

admin: migrate
	@$(BIN)/python manage.py ensure_admin

# NEXUS_DEMO=1 (the default here) makes the simulated market eventful; NEXUS_DEMO=0 make run for a quiet one.
run: admin
	@echo "nexus: [static] collecting static files; loading the example workflows"
	@$(BIN)/python manage.py collectstatic --noinput -v 0
	@NEXUS_DEMO=$${NEXUS_DEMO:-1} $(BIN)/python manage.py load_examples
	@echo "nexus: [stack] starting Redis, web, workers, beat and Flower (Ctrl-C stops them all)"
	@NEXUS_DEMO=$${NEXUS_DEMO:-1} PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m nexus_project.stack run

# The suite starts its own embedded Redis (NEXUS_TEST_REDIS_URL=redis://... to use a server of your own).
test: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest $(PYTEST_ARGS)

# ruff, the import contracts of pyproject.toml (layers, no cycles, the engine free of trading) and
# docs/steps.md against the registries.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	DJANGO_SETTINGS_MODULE=nexus_project.settings.test $(BIN)/python manage.py generate_docs --check

bench: migrate
	$(BIN)/python bench/engine_latency.py

clean:
	rm -rf $(VENV) var
