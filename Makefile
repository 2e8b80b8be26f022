# Two commands a newcomer needs: `make demo` and `make test`. Both build .venv on demand.
PY ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint typecheck format venv clean

$(STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	@$(VENV)/bin/python -m pip install --quiet --upgrade pip
	@$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/swapbot demo

# Everything CI runs: lint, types, then every test (side by side, see pyproject.toml).
test: lint typecheck
	$(VENV)/bin/pytest

# The loop while working: the libraries, the sandbox, Slack's rendering and rules, each step
# alone; not the engine run through steps, whole swaps or kills (the `slow` marker).
test-fast: $(STAMP)
	$(VENV)/bin/pytest -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/python -m mypy

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
