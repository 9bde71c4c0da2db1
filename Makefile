# Quick start: `make demo` (set up, then open the main job in JupyterLab) and `make test` (set up, then run all tests).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BROWSER_STAMP := $(VENV)/.browser
JUPYTER_FLAGS ?= --ServerApp.ip=127.0.0.1 $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: setup demo demo-headless test test-fast lint lint-py lint-ts bench clean

# torch first, from the local CPU wheel, so the package's `torch>=2.1` pulls nothing more
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test,lint,grpc,ray,onnx,openvino]'
	touch $(STAMP)

# Debian's Chromium for the real-browser tests (Playwright cannot download browsers here)
$(BROWSER_STAMP): scripts/setup-browser.sh
	bash scripts/setup-browser.sh
	touch $(BROWSER_STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/jupyter lab $(JUPYTER_FLAGS) notebooks/01_quickstart.ipynb

demo-headless: $(STAMP)
	$(BIN)/packrat-lab demo

test: $(STAMP) $(BROWSER_STAMP) lint
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not browser"

# every linter the project configures; `make test` runs this first, so a lint error fails the build
lint: lint-py lint-ts

lint-py: $(STAMP)
	$(BIN)/ruff check packrat_lab tests benchmarks
	$(BIN)/ruff format --check packrat_lab tests benchmarks
	$(BIN)/mypy packrat_lab

# eslint + prettier on the Lab extension (node_modules come from the editable install's jlpm build)
lint-ts: $(STAMP)
	cd extension && ../$(BIN)/jlpm install --immutable && ../$(BIN)/jlpm lint

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_optimizer.py
	$(BIN)/python benchmarks/bench_profile.py

clean:
	rm -rf $(VENV) build dist .pytest_cache
