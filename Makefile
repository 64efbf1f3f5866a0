# VaultCMS: `make demo` to try it, `make test` to check it. Everything installs into .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The venv is rebuilt when the lock changes (requirements*.txt are the inputs of `make lock`).
STAMP  := $(VENV)/.installed-$(shell cksum < requirements-dev.lock | cut -d' ' -f1)
# `make lock` runs pip-compile from its own venv, so the app's venv never holds pip-tools.
TOOLS  := .venv-tools
PIP_TOOLS := pip-tools==7.7.0
# Hashes must be the public index's: ignore this machine's pip config (local mirrors, wheel
# folders, constraints) while compiling, and write only name==version lines with their hashes.
LOCK_ENV := env -u PIP_FIND_LINKS -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL -u PIP_CONSTRAINT \
	PIP_CONFIG_FILE=/dev/null CUSTOM_COMPILE_COMMAND="make lock"
COMPILE  := $(TOOLS)/bin/pip-compile --quiet --no-config --generate-hashes --allow-unsafe \
	--strip-extras --no-emit-index-url --no-emit-find-links --no-emit-trusted-host \
	--no-emit-options

.PHONY: venv test lint lock check-lock demo bench serve migrate clean

# Installs exactly the lock, with the pip that `python3 -m venv` gives (no upgrade needed).
# --no-deps: the lock already names every package, so pip resolves nothing. Resolving would let
# pip 23 look past a pin for a dependency asked with an extra (justext's `lxml[html_clean]`) and
# refuse the newest lxml as unhashed the day one is released. `pip check` then proves the locked
# set complete and consistent.
$(STAMP): requirements-dev.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-dev.lock
	$(BIN)/python -m pip check
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

# Rewrites both locks from requirements*.txt: pins already in a lock are kept unless the .txt
# rules them out; `make lock UPGRADE=1` moves every pin to the newest allowed release.
lock:
	@test -x $(TOOLS)/bin/pip-compile || { $(PYTHON) -m venv $(TOOLS) && \
		$(LOCK_ENV) $(TOOLS)/bin/python -m pip install --quiet $(PIP_TOOLS); }
	$(LOCK_ENV) $(COMPILE) $(if $(UPGRADE),--upgrade) -o requirements.lock requirements.txt
	$(PYTHON) scripts/check_lock.py stamp requirements.lock requirements.txt
	$(LOCK_ENV) $(COMPILE) $(if $(UPGRADE),--upgrade) -c requirements.lock \
		-o requirements-dev.lock requirements-dev.txt
	$(PYTHON) scripts/check_lock.py stamp requirements-dev.lock requirements-dev.txt

check-lock: venv
	$(BIN)/python scripts/check_lock.py check

# Both linters always run, so one report shows every problem; either one fails the target.
lint: venv check-lock
	@status=0; \
	echo "$(BIN)/ruff check ."; $(BIN)/ruff check . || status=1; \
	echo "$(BIN)/lint-imports"; $(BIN)/lint-imports --no-cache --no-logo || status=1; \
	exit $$status

migrate: venv
	$(BIN)/python manage.py migrate --noinput

test: lint
	$(BIN)/python -m pytest

demo: venv
	bash scripts/demo.sh

serve: venv
	bash scripts/serve.sh

bench: venv
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) $(TOOLS) staticfiles var .pytest_cache
