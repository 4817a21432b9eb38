# The two set-up commands of the README: `make book` and `make test`.
# Both create (or reuse) the virtual environment in .venv and install the pinned dependencies.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
PROFILE ?= mini

.PHONY: venv book test lab lint clean

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

# JupyterLab on the book's chapters (book/*.md open as notebooks; saving writes the MyST text back):
# lab/jupyter_lab_config.py. It listens on 127.0.0.1 only; open the URL with the token that it prints.
# Jupyter refuses to start as root unless told to: --allow-root is added for root (a container, CI).
# LAB_ARGS: more options, e.g. LAB_ARGS=--ServerApp.port=8899.
lab: venv
	@echo "JupyterLab on the book's chapters: open the http://127.0.0.1:...?token=... URL printed below (Ctrl-C stops it)."
	$(PY) -m jupyter lab --config=lab/jupyter_lab_config.py $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

lint: venv
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf book/_build
