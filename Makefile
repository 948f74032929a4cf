# Two commands: `make run` (the daemon with its defaults) and `make test`. Both create .venv first.
VENV := .venv
PYTHON ?= python3

$(VENV)/installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet --editable '.[test]'
	touch $@

.PHONY: run test bench
run: $(VENV)/installed
	$(VENV)/bin/genresort watch

test: $(VENV)/installed
	$(VENV)/bin/pytest -q

bench: $(VENV)/installed
	$(VENV)/bin/python bench/bench_classify.py
