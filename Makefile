# Course Platform — the two commands a newcomer needs:
#   make run    start the whole platform locally on embedded defaults
#   make test   install everything and run lint, type checks and every test
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PACKAGES := $(wildcard common contracts devtools api-gateway users courses enrolments learning fakturownia-sandbox)
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck pytest install install-system bench postman lock clean

run: install
	-@./scripts/install-system.sh || echo "(continuing without the optional system packages)"
	$(BIN)/python scripts/run_local.py

test: install-system install lint typecheck pytest

install-system:
	./scripts/install-system.sh

install: $(STAMP)

$(STAMP): requirements.txt $(foreach p,$(PACKAGES),$(p)/pyproject.toml)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	@# compat mode puts each package dir on sys.path, so a same-named folder in the
	@# working directory (courses/ holds courses/courses/) can never shadow the package.
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation \
		--config-settings editable_mode=compat $(foreach p,$(PACKAGES),-e ./$(p))
	touch $(STAMP)

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest $(PYTEST_ARGS)

bench: install-system install
	$(BIN)/python bench/run.py

postman: install
	$(BIN)/python scripts/export_postman.py var/postman.json

lock:
	$(BIN)/python -m pip freeze --all --exclude-editable | grep -v '^-e' | grep -v '^pip==' > requirements.txt

clean:
	rm -rf $(VENV) var/*.db var/mail var/run
