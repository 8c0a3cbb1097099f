# Two commands for a new user: `make run` (set up + the main job) and `make test` (set up + tests).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
TORCH  ?= torch==2.13.0

.PHONY: setup run data-check test test-slow bench clean

$(BIN)/localentropy: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[test]"
	$(BIN)/python -c "from localentropy import bp; bp.compile_kernels()"  # BP kernels compiled once, cached
	touch $@

setup: $(BIN)/localentropy

LE = $(BIN)/localentropy

# The main job runs from the Dress/Coat subset embedded in the package: no data package needed.
run: setup out/sgd-fast-phi.csv out/sgd-fast-energy.csv
	$(LE) data info
	$(LE) eval out/sgd-fast.npz
	@echo "results in out/: sgd-fast.npz, sgd-fast-phi.csv/.png, sgd-fast-energy.csv"

# Optional check: regenerate the embedded subset from the raw Fashion-MNIST files (byte-for-byte
# comparison). Skipped, with how to get the files, when they are not on this machine.
data-check: setup
	@mkdir -p out
	@if $(BIN)/python -c "from localentropy.data.locate import find_dataset; find_dataset('fashion-mnist')" 2>/dev/null; \
	then $(LE) data prepare --out out/dresscoat.npz; \
	else echo "data-check skipped: raw Fashion-MNIST not found; get it with 'sudo apt-get install dataset-fashion-mnist'" \
	  "or 'localentropy data download fashion-mnist', or point --data-dir / \$$LOCALENTROPY_DATA at it"; fi

out/sgd-fast.npz: | setup
	mkdir -p out
	$(LE) train --setting sgd-fast --restarts 4 --seed 0 --out $@

out/sgd-fast-phi.csv: out/sgd-fast.npz
	$(LE) phi out/sgd-fast.npz --out $@ --plot out/sgd-fast-phi.png

out/sgd-fast-energy.csv: out/sgd-fast.npz
	$(LE) energy out/sgd-fast.npz --draws 200 --out $@

test: setup
	$(BIN)/pytest -m "not slow" -q

test-slow: setup
	$(BIN)/pytest -m slow -q

bench: setup
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) out *.egg-info .pytest_cache
