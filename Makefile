# The two set-up commands of the README: `make book` and `make test`.
# Both create (or reuse) the virtual environment in .venv and install the pinned dependencies.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
PROFILE ?= mini

.PHONY: venv book test lint clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (fusionseg)" >/dev/null
	@rm -f $(VENV)/.installed-* && touch $@

book: venv
	$(VENV)/bin/fusionseg book --profile $(PROFILE)

test: venv
	$(PY) -m pytest tests

lint: venv
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf book/_build
