# Everything a user or CI needs; each target installs what it uses into .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test test-fast lint bench study reproduce clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# CPU PyTorch first, so that no multi-GB CUDA build is pulled in by the package's own requirement.
$(STAMP): $(PY) setup.cfg
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[all,dev]"
	touch $(STAMP)

install: $(STAMP)

## Prepare the cxr_expl bundle's data (the synthetic shortcut CXR set; skipped when already made), then train.
run: install
	$(PY) -m monai.bundle run --config_file bundles/cxr_expl/configs/prepare_data.json
	$(PY) -m monai.bundle run --config_file bundles/cxr_expl/configs/train.json

## The whole test suite, the same command CI runs.
test: install
	$(PY) -m pytest -q --timeout=900 --durations=15 tests

## Lint, format and type check (CI runs it before the tests): ruff on everything, mypy on the core library.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy monai_explain --exclude monai_explain/apps

## The validity study behind every figure of README.md and the bundle docs (hours on 2 CPU cores; resumable:
## finished runs are kept in reports/study and not trained again). Writes bundles/cxr_expl/study/results/.
study: install
	$(PY) -m monai_explain.apps.study plan bundles/cxr_expl/study/plan.json --work reports/study \
		--results bundles/cxr_expl/study/results
	$(PY) bundles/cxr_expl/study/routing_check.py --work reports/study \
		--out bundles/cxr_expl/study/results/routing.md
	$(PY) bundles/cxr_expl/study/validation_curves.py --work reports/study \
		--out bundles/cxr_expl/study/results/validation_curves.md
	$(PY) bundles/cxr_expl/study/robustness_table.py --results bundles/cxr_expl/study/results \
		--out bundles/cxr_expl/study/results/robustness.md
	$(PY) bundles/cxr_expl/study/dip_check.py --data reports/study/data/shortcut_cxr --work reports/study/dip_check \
		--out bundles/cxr_expl/study/results/dip_check.md

## Retrain the README's headline stage from nothing in a new folder and compare its tables with the committed ones,
## cell by cell (about 15 min on 2 CPU cores). Writes bundles/cxr_expl/study/results/reproduction.md.
reproduce: install
	rm -rf reports/reproduce
	$(PY) bundles/cxr_expl/study/reproduce_headline.py --work reports/reproduce \
		--out bundles/cxr_expl/study/results/reproduction.md

test-fast: install
	$(PY) -m pytest -q -m "not slow" tests

## Speed / memory benchmarks (CPU, quick sizes; add --device cuda on a GPU machine).
bench: install
	$(PY) benchmarks/bench_overhead.py --quick
	$(PY) benchmarks/bench_metrics.py
	$(PY) benchmarks/bench_vindr_masks.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
