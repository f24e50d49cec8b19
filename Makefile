# PyTorch Explorer: `make run` serves the app, `make test` checks everything. Nothing else to install by hand.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CHROMIUM ?= /usr/bin/chromium

.PHONY: install run class test lint bench loadtest loadtest-class loadtest-attack chromium clean screenshot

install: $(STAMP)

# Reinstalls only when the project's dependencies change.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "PyTorch Explorer needs Python 3.11 or newer: set PYTHON=python3.11")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: install
	$(PY) -m app

# A class deployment on this machine, without Docker (docs/deploy.md): two web processes on
# ports 8001 and 8002 and two Celery workers, with the local Redis and a PostgreSQL database of
# its own. Override with e.g. `make class CLASS_ARGS="--webs 3 --workers 4"`.
CLASS_ARGS ?=
class: install
	$(PY) -m app.deploy $(CLASS_ARGS)

chromium:
	@if [ -x "$(CHROMIUM)" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing Debian's chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "The browser tests need Chromium at $(CHROMIUM): run 'sudo apt-get install chromium' (or set CHROMIUM=/path/to/chromium)"; \
		exit 1; \
	fi

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/hadolint Dockerfile

test: install chromium lint
	EXPLORER_CHROMIUM=$(CHROMIUM) $(PY) -m pytest

bench: install
	$(PY) -m bench

# 50 simulated learners for 60 s against a real server on loopback; fails when an interactive
# endpoint's p99 reaches 500 ms or anything errs (docs/reliability.md). Override with
# e.g. `make loadtest LOADTEST_ARGS="--learners 20 --duration 30"`.
LOADTEST_ARGS ?= --learners 50 --duration 60
loadtest: install
	$(PY) -m bench.loadtest $(LOADTEST_ARGS)

# The same learners against a class deployment (2 web processes, 2 Celery workers, the local Redis
# and PostgreSQL, as `make class` starts them); issue 15's target for the learners' interactive
# p99 is 150 ms.
loadtest-class: install
	$(PY) -m bench.loadtest --class-deployment --p99-ms 150 $(LOADTEST_ARGS)

# The same learners beside attackers sending issue 11's worst requests; fails when the learners'
# p99 reaches 500 ms, an attack gets a 5xx, or the server's RSS passes its bound.
loadtest-attack: install
	$(PY) -m bench.loadtest --attack $(LOADTEST_ARGS)

screenshot: install chromium
	EXPLORER_CHROMIUM=$(CHROMIUM) $(PY) -m bench.screenshot docs/screenshot.png

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
