# The two commands a newcomer needs: `make sweep` (the default local sweep) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-done

.PHONY: setup sweep test test-fast bench

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

sweep: setup
	$(PY) -m orchestrator.sweep

test: setup
	$(PY) -m pytest -q --durations=15 tests

test-fast: setup
	$(PY) -m pytest -q -m "not integration" tests
