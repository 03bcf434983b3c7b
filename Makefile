# make reproduce   train the four models and regenerate every figure and the results table
# make test        run the test suite
# make handout     write handout/: the assignment's starter folder for students (python -m grading.handout)
# Both create .venv and install the project into it first (once; again when pyproject.toml changes).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test reproduce bench handout clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

reproduce: $(STAMP)
	$(PY) reproduce.py

bench: $(STAMP)
	$(PY) benchmarks/bench.py

handout: $(STAMP)
	$(PY) -m grading.handout --out handout

clean:
	rm -rf $(VENV) checkpoints runs .pytest_cache
