# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
POLICY := retention_rules/policies/crm_pro.yaml
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint install server-binaries clean bench-peers-env

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# pycanon, the test oracle of k, l and t (tests/test_risk_oracle.py), pins numpy, pandas,
# typer and typing_extensions to exact older versions (pandas 2.3.3 for Tenure's 3.x):
# as a test extra it would make pip downgrade them, so it is installed without its
# dependencies; `from pycanon import anonymity` needs only numpy and pandas.
PYCANON := pycanon==1.3.6

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[test,bench]"
	$(BIN)/python -m pip install --quiet --no-deps "$(PYCANON)"
	touch $@

install: $(VENV)/.installed

## demo: install, build the embedded demo store, check the shipped policy, scan for personal
## information (coverage gate), show the plan, run it (publishing the released rollups)
demo: export TENURE_PSEUDONYM_KEY ?= demo-only-pseudonym-key-not-for-production
demo: export TENURE_PSEUDONYM_KEY_ACCOUNTS ?= demo-only-accounts-key-not-for-production
demo: export TENURE_AUDIT_KEY ?= demo-only-audit-key-not-for-production
demo: $(VENV)/.installed
	$(BIN)/tenure demo build --replace
	$(BIN)/tenure validate $(POLICY)
	$(BIN)/tenure scan $(POLICY) --check
	$(BIN)/tenure plan $(POLICY)
	$(BIN)/tenure run $(POLICY)
	@# The run published the released rollups to tenure-demo/published (the policy's
	@# publish:); this says where, and that the folder holds the current release.
	$(BIN)/tenure publish $(POLICY)
	$(BIN)/tenure risk $(POLICY)
	@# The HTML report for the privacy officer and analysts (the run wrote it too): its path.
	$(BIN)/tenure report $(POLICY)
	@# One access request, as a privacy officer answers it: customer 17 (a party to the
	@# shipped policy's legal hold) asks what is held on them.
	@id=$$($(BIN)/tenure request open $(POLICY) --kind access --id customer_id=17 --lang en \
	  | sed -n 's/^request \([0-9-]*\) opened.*/\1/p'); \
	test -n "$$id" && \
	$(BIN)/tenure request verify $(POLICY) $$id --method "demo: identity taken as checked" --by "make demo" && \
	$(BIN)/tenure request fulfil $(POLICY) $$id --out tenure-demo/requests && \
	$(BIN)/tenure request show $(POLICY) $$id

## server-binaries: the tests start their own PostgreSQL, MariaDB and Dovecot (IMAP) servers,
## and a headless Chromium to check the access package's page, from Debian's packages,
## installed here when missing (services are never started by apt)
server-binaries:
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || [ -n "$$TENURE_PG_BINDIR" ] || missing="$$missing postgresql"; \
	command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || missing="$$missing mariadb-server"; \
	command -v dovecot >/dev/null 2>&1 || [ -x /usr/sbin/dovecot ] || missing="$$missing dovecot-imapd"; \
	command -v chromium >/dev/null 2>&1 || command -v chromium-headless-shell >/dev/null 2>&1 || [ -n "$$TENURE_CHROMIUM" ] || missing="$$missing chromium"; \
	if [ -z "$$missing" ]; then \
	  echo "server binaries (PostgreSQL, MariaDB, Dovecot, Chromium): found"; \
	else \
	  echo "installing Debian packages:$$missing"; \
	  guard=""; [ -e /usr/sbin/policy-rc.d ] || guard=yes; \
	  [ -z "$$guard" ] || printf '#!/bin/sh\nexit 101\n' | $(SUDO) tee /usr/sbin/policy-rc.d >/dev/null; \
	  [ -z "$$guard" ] || $(SUDO) chmod +x /usr/sbin/policy-rc.d; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || \
	    echo "could not install:$$missing (their tests will be skipped, saying why)"; \
	  [ -z "$$guard" ] || $(SUDO) rm -f /usr/sbin/policy-rc.d; \
	fi

## bench-peers-env: PIICatcher 0.21.2 in a virtual environment of its own (.venv-piicatcher/,
## Python 3.8 to 3.10.8), for bench/scan_peers.py; its pins conflict with the project's
bench-peers-env:
	bash bench/piicatcher_env.sh

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

## test: install test dependencies, make sure PostgreSQL, MariaDB and Dovecot can start, lint,
## run the suite
test: $(VENV)/.installed-test server-binaries lint
	$(BIN)/python -m pytest --durations=25

clean:
	rm -rf $(VENV) tenure-demo .pytest_cache .mypy_cache .ruff_cache .hypothesis
