# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
POLICY := retention_rules/policies/crm_pro.yaml
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint install postgres-binaries clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed

## demo: install, build the embedded demo store, check the shipped policy, scan for personal
## information (coverage gate), show the plan, run it
demo: export TENURE_PSEUDONYM_KEY ?= demo-only-pseudonym-key-not-for-production
demo: export TENURE_PSEUDONYM_KEY_ACCOUNTS ?= demo-only-accounts-key-not-for-production
demo: $(VENV)/.installed
	$(BIN)/tenure demo build --replace
	$(BIN)/tenure validate $(POLICY)
	$(BIN)/tenure scan $(POLICY) --check
	$(BIN)/tenure plan $(POLICY)
	$(BIN)/tenure run $(POLICY)
	$(BIN)/tenure risk $(POLICY)

## postgres-binaries: the tests start their own PostgreSQL server from Debian's binaries
postgres-binaries:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || [ -n "$$TENURE_PG_BINDIR" ]; then \
	  echo "PostgreSQL server binaries: found"; \
	else \
	  echo "PostgreSQL server binaries missing: installing Debian's postgresql package"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	fi

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## test: install test dependencies, make sure PostgreSQL can start, lint, run the suite
test: $(VENV)/.installed-test postgres-binaries lint
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) tenure-demo .pytest_cache .mypy_cache .ruff_cache .hypothesis
