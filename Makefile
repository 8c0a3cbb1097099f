# Two commands for a new user: `make run` (set up + the main job) and `make test` (set up + tests).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
TORCH  ?= torch==2.13.0

.PHONY: setup run test test-slow bench clean

$(BIN)/localentropy: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

setup: $(BIN)/localentropy

LE = $(BIN)/localentropy

run: setup out/dresscoat.npz out/sgd-fast-phi.csv out/sgd-fast-energy.csv
	$(LE) data info
	$(LE) eval out/sgd-fast.npz
	@echo "results in out/: sgd-fast.npz, sgd-fast-phi.csv/.png, sgd-fast-energy.csv"

out/dresscoat.npz: | setup
	$(LE) data prepare --out $@

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
