# The two commands of the README: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: run test install system-deps lint messages serve check

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is needed ($(PYTHON) not found)"; exit 1; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)
	$(BIN)/pybabel compile --use-fuzzy -D guichet -d bot/locale --statistics 2>&1 | tail -n 1

## Install, then chat with the bot in this terminal (embedded NLU, in-memory storage).
run: install
	$(BIN)/guichet chat

## Start the web server and every configured channel.
serve: install
	$(BIN)/guichet serve

## Install everything (system packages included), then run the whole test suite.
test: install system-deps
	$(BIN)/ruff check bot nlu tests
	$(BIN)/mypy
	$(BIN)/guichet content check
	$(BIN)/python -m pytest -q

## Check intents/, responses/, config.yml and the message catalogs (see README, "Admins").
check: install
	$(BIN)/guichet content check

system-deps:
	@./scripts/system-deps.sh

lint: install
	$(BIN)/ruff check bot nlu tests
	$(BIN)/mypy

## Refresh the message catalog template and the .po files after changing interface strings.
messages: install
	$(BIN)/pybabel extract -F babel.cfg -k _t:2 -k gettext:2 -k N_ --no-default-keywords \
	  --project guichet --version 0.1 --copyright-holder "guichet contributors" -o bot/locale/guichet.pot bot
	$(BIN)/pybabel update -D guichet -i bot/locale/guichet.pot -d bot/locale --no-fuzzy-matching
