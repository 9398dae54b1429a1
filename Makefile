# waitroom: two commands do everything on a fresh Debian / Raspberry Pi OS machine with python3.
#   make demo   - environment (the demo's packages only) + a whole office on this machine, web UI on
#                 http://127.0.0.1:8080 (make demo PORT=8090 for another port)
#   make test   - environment with the test tools + lint + import contracts + the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 8080
# One stamp per pyproject extra: `make demo` installs `demo` (the package and the embedded broker), `make test`
# adds `dev` (pytest, Playwright, Ansible, ...). Each is redone when pyproject.toml changes. --no-compile: pip
# would byte-compile every module of every package (scipy, Ansible, ...) up front, three quarters of a cold
# install's time; Python compiles what a process imports on first use instead.
DEMO_STAMP := $(VENV)/.installed-demo
DEV_STAMP  := $(VENV)/.installed-dev
STAMP      := $(DEV_STAMP)

.PHONY: demo test lint bench sysdeps venv clean translations

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "waitroom needs Python >= 3.11" >&2; exit 1; }
	@$(PYTHON) -m venv $(VENV) || { echo "waitroom: python3 -m venv failed; install the Debian package python3-venv" >&2; exit 1; }

$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-compile -e '.[demo]'
	@touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-compile -e '.[dev]'
	@touch $@ $(DEMO_STAMP)

venv: $(DEV_STAMP)

sysdeps:
	@bash scripts/install-system-deps.sh
	@bash scripts/install-axe.sh

demo: $(DEMO_STAMP)
	@bash scripts/install-system-deps.sh --demo
	$(BIN)/waitroom demo --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

test: $(STAMP) sysdeps lint
	$(BIN)/python -m pytest

# Translations (Babel/gettext): extract the keys used in code and templates, add new keys to every catalog
# (empty: write the German text in translations/de first, then the others), compile the .mo files (committed,
# so that nodes need no build step; tests/test_i18n.py fails when a .mo is stale or a citizen text is missing).
I18N := waitroom/translations
translations: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k t -k tr -k both -k N_ -k tn:1,1 -k trn:1,1 -k Nn_:1,1 --no-default-keywords --no-location \
	  --sort-by-file --project waitroom --copyright-holder "waitroom developers" -w 110 -o $(I18N)/messages.pot .
	$(BIN)/pybabel update -i $(I18N)/messages.pot -d $(I18N) --no-fuzzy-matching --ignore-obsolete --ignore-pot-creation-date -w 110
	$(BIN)/pybabel compile -d $(I18N) --statistics

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .import_linter_cache build *.egg-info test-artifacts
