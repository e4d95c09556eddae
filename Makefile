# Region Mixup notebooks: set-up, demo, tests.
# `make demo` and `make test` create .venv on first use; nothing else is needed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# torchattacks pins requests~=2.25.1, which would drag JupyterLab back to 3.x:
# it is installed on its own, without its dependencies (all of which we already have).
TORCHATTACKS := torchattacks==3.5.1

.PHONY: venv demo test lint format bench lab executed clean

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
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python benchmarks/mixing.py

# The notebooks executed in quick mode with their outputs, for readers who do not run
# them (GitHub shows the figures and tables); tests/test_notebooks.py checks that each
# copy holds its source's cells. Headless: line progress, explorers drawn as figures.
executed: $(STAMP)
	rm -rf docs/notebooks.new && mkdir -p docs/notebooks.new
	for nb in notebooks/[0-9][0-9]_*.ipynb; do \
	  REGIONMIX_HEADLESS=1 $(BIN)/papermill --cwd notebooks -k python3 --no-progress-bar \
	    -p QUICK True -p RUNS_DIR ../runs/executed "$$nb" "docs/notebooks.new/$${nb#notebooks/}" \
	    || exit 1; \
	done
	$(BIN)/python docs/strip_run_metadata.py docs/notebooks.new/*.ipynb
	rm -rf docs/notebooks && mv docs/notebooks.new docs/notebooks

# Jupyter refuses to start as root unless told to; containers and cloud VMs often run as root.
lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
