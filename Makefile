# waitroom: two commands do everything on a fresh Debian / Raspberry Pi OS machine with python3.
#   make demo   - environment + a whole office on this machine, web UI on http://127.0.0.1:8080
#   make test   - environment + lint + the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench sysdeps venv clean translations

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "waitroom needs Python >= 3.11" >&2; exit 1; }
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV) || { echo "waitroom: python3 -m venv failed; install the Debian package python3-venv" >&2; exit 1; }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

sysdeps:
	@bash scripts/install-system-deps.sh
	@bash scripts/install-axe.sh

demo: $(STAMP)
	@bash scripts/install-system-deps.sh --demo
	$(BIN)/waitroom demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(STAMP) sysdeps lint
	$(BIN)/python -m pytest

# Translations (Babel/gettext): extract the keys used in code and templates, add new keys to every catalog
# (empty: write the German text in translations/de first, then the others), compile the .mo files (committed,
# so that nodes need no build step; tests/test_i18n.py fails when a .mo is stale or a citizen text is missing).
I18N := waitroom/translations
translations: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k t -k tr -k both -k N_ --no-default-keywords --no-location \
	  --sort-by-file --project waitroom --copyright-holder "waitroom developers" -w 110 -o $(I18N)/messages.pot .
	$(BIN)/pybabel update -i $(I18N)/messages.pot -d $(I18N) --no-fuzzy-matching --ignore-obsolete --ignore-pot-creation-date -w 110
	$(BIN)/pybabel compile -d $(I18N) --statistics

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info test-artifacts
