# Two commands: `make run` (Allo with demo data) and `make test` (the full check).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ALLO_PORT ?= 8000
export ALLO_PORT

.PHONY: run test lint typecheck pytest install install-dev clean bench i18n nlu

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# The assistant's model is trained from the corpus the project ships; rebuilt when the data changes.
NLU_MODEL := var/nlu/model.npz
# `allo nlu train` writes the assistant's model and, next to it, the social post classifier.
NLU_DATA := $(wildcard data/nlu/train/*.jsonl data/nlu/heldout/*.jsonl src/allo/assistant/nlu/*.py \
	data/social/train/*.jsonl src/allo/social/classifier.py)

$(NLU_MODEL): $(NLU_DATA) | $(VENV)/.installed
	ALLO_NLU_MODEL_PATH=$(NLU_MODEL) ALLO_SOCIAL_MODEL_PATH=$(dir $(NLU_MODEL))social.npz $(BIN)/allo nlu train

nlu: $(NLU_MODEL)

run: $(VENV)/.installed $(NLU_MODEL)
	mkdir -p var
	$(BIN)/allo demo --port $(ALLO_PORT)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

# Browser tests drive Debian's Chromium through Playwright (never a browser `playwright install` fetches).
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

# The SMS tests run a real Kannel: bearerbox and smsbox, and fakesmsc (kannel-extras) as the network.
KANNEL := /usr/sbin/bearerbox

$(KANNEL):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kannel kannel-extras

# The suite runs on SQLite always, and again on PostgreSQL when ALLO_TEST_DATABASE_URL is set.
pytest: $(VENV)/.installed-dev $(NLU_MODEL) $(CHROMIUM) $(KANNEL)
	@echo "== pytest on SQLite =="
	env -u ALLO_TEST_DATABASE_URL $(BIN)/pytest
	@if [ -n "$$ALLO_TEST_DATABASE_URL" ]; then \
		echo "== pytest on PostgreSQL =="; \
		$(BIN)/pytest; \
	fi

test: lint typecheck pytest

# Re-extract UI strings and merge them into the French and English catalogs.
i18n: $(VENV)/.installed-dev
	$(BIN)/pybabel extract -F babel.cfg -k _ -k N_ --no-location --project Allo \
		--copyright-holder "The Allo developers" -o src/allo/i18n/locales/messages.pot src
	$(BIN)/pybabel update -i src/allo/i18n/locales/messages.pot -d src/allo/i18n/locales --no-fuzzy-matching

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/api.py

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache
