# VaultCMS: `make demo` to try it, `make test` to check it. Everything installs into .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)

.PHONY: venv test demo bench serve migrate clean

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

migrate: venv
	$(BIN)/python manage.py migrate --noinput

test: venv
	$(BIN)/python -m pytest

demo: venv
	bash scripts/demo.sh

serve: venv
	bash scripts/serve.sh

bench: venv
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) staticfiles var .pytest_cache
