# Three commands: `make run` (the daemon with its defaults), `make test` and `make bench`. Each creates .venv
# first and installs what it needs: the daemon only the run-time set; the tests and the benchmarks also the
# `train` extra (librosa, matplotlib), which training, evaluation and their tests use, and the `cluster` extra
# (distributed), whose tests run a real Dask cluster.
VENV := .venv
PYTHON ?= python3
EXTRAS_run :=
EXTRAS_test := [test,train,cluster]

$(VENV)/bin/pip:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip

# One stamp per set of extras: installed-run or installed-test.
$(VENV)/installed-%: pyproject.toml | $(VENV)/bin/pip
	$(VENV)/bin/pip install --quiet --editable '.$(EXTRAS_$*)'
	touch $@

.PHONY: run test bench
run: $(VENV)/installed-run
	$(VENV)/bin/genresort watch

test: $(VENV)/installed-test
	$(VENV)/bin/pytest -q

bench: $(VENV)/installed-test
	$(VENV)/bin/python bench/bench_classify.py
