# automind: `make demo` and `make test` each set everything up from nothing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-slow bench clean

install: $(STAMP)

# torch is pinned to 2.13.0 here (not in the package metadata): on these machines that
# version is the small CPU wheel; an unpinned torch pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip "setuptools>=77"
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: install
	$(VENV)/bin/automind demo

# the suite's files run in parallel on every core (a file's tests stay together, so its
# module fixtures are built once), heaviest files first (tests/conftest.py HEAVY_FIRST; xdist
# would otherwise start the files with the most tests first and end on the slow studies),
# each worker on one thread (torch's threads would only contend with the other workers)
test: install
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n auto --dist loadfile --no-loadscope-reorder

test-slow: install
	$(PY) -m pytest -q -m slow

bench: install
	$(PY) benchmarks/simulate.py
	$(PY) benchmarks/bank.py
	$(PY) benchmarks/features.py
	$(PY) benchmarks/inference.py
	$(PY) benchmarks/invariance.py

clean:
	rm -rf $(VENV) demo-output *.egg-info
