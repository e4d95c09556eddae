# Region Mixup notebooks: set-up, demo, tests.
# `make demo` and `make test` create .venv on first use; nothing else is needed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# torchattacks pins requests~=2.25.1, which would drag JupyterLab back to 3.x:
# it is installed on its own, without its dependencies (all of which we already have).
TORCHATTACKS := torchattacks==3.5.1

.PHONY: venv demo test lint format bench lab clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[lab,dev,pipelines]"
	$(BIN)/python -m pip install --quiet --no-deps "$(TORCHATTACKS)"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/regionmix demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python benchmarks/mixing.py

# Jupyter refuses to start as root unless told to; containers and cloud VMs often run as root.
lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
