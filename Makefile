# Two commands for a new user: `make run` (set up + the main job) and `make test` (set up + tests).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
TORCH  ?= torch==2.13.0

.PHONY: setup run data-check test test-slow test-cuda bench clean

$(BIN)/localentropy: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[test]"
	$(BIN)/python -c "from localentropy import bp; bp.compile_kernels()"  # BP kernels compiled once, cached
	$(BIN)/python -c "from localentropy.entropic.committee_estimator import compile_kernels; compile_kernels()"
	touch $@

setup: $(BIN)/localentropy

LE = $(BIN)/localentropy

# The main job: Figure 1 of paper 000 redrawn from the 250 solutions the committed full run drew
# (results/fig1/), every stage after training computed afresh into out/fig1: test errors, local
# energies, panel (a)'s local-entropy curves (importance sampling on the first 3 solutions of each
# setting, BP on the first 8: a stated subset, to stay within minutes), the claims tables. The data is
# the Dress/Coat subset embedded in the package. All 250 solutions: drop --curves-per-setting (about
# 30 minutes); training from scratch: `localentropy figure 1 --quick` (a preview) or `localentropy
# figure 1` (the paper's settings, hours).
run: setup
	$(LE) figure 1 --from-solutions results/fig1 --curves-per-setting 3,8 --out out/fig1

# Optional check: regenerate the embedded subset from the raw Fashion-MNIST files (byte-for-byte
# comparison). Skipped, with how to get the files, when they are not on this machine.
data-check: setup
	@mkdir -p out
	@if $(BIN)/python -c "from localentropy.data.locate import find_dataset; find_dataset('fashion-mnist')" 2>/dev/null; \
	then $(LE) data prepare --out out/dresscoat.npz; \
	else echo "data-check skipped: raw Fashion-MNIST not found; get it with 'sudo apt-get install dataset-fashion-mnist'" \
	  "or 'localentropy data download fashion-mnist', or point --data-dir / \$$LOCALENTROPY_DATA at it"; fi

test: setup
	$(BIN)/pytest -m "not slow" -q

test-slow: setup
	$(BIN)/pytest -m slow -q

# On a machine with a GPU: the CUDA paths against the CPU (skipped elsewhere; also part of `make test`).
test-cuda: setup
	$(BIN)/pytest -m cuda -q -rs

# Every benchmark runs; those that miss their goal (or fail) are listed at the end, and make fails.
bench: setup
	@missed=""; for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || missed="$$missed $$b"; done; \
	if [ -n "$$missed" ]; then echo "missed their goal or failed:$$missed"; exit 1; fi

clean:
	rm -rf $(VENV) out *.egg-info .pytest_cache
