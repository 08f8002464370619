# opskit: the two commands that do all the set-up on a fresh machine are `make demo` and
# `make test`. Everything else is a building block of those two.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A CPU build of PyTorch for this machine; on GPU servers use e.g. TORCH='torch==2.13.0'
# from the CUDA index of your choice.
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.opskit-installed
PYTEST_ARGS ?=

.PHONY: setup host test unit integration demo lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)" numpy
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

host:
	bash scripts/setup-host.sh

test: host setup
	$(BIN)/python -m pytest $(PYTEST_ARGS) tests

unit: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS) tests/unit

integration: host setup
	$(BIN)/python -m pytest $(PYTEST_ARGS) tests/integration

# The main job on this machine as the host: build the training image (offline base), run a
# small LeNet on it, follow the logs and bring the results back verified into runs/.
# On an engine with no images it makes the base (debootstrap), the wheelhouse, the deps image
# and the training image on the way (tests/integration/test_demo.py runs these two commands
# against an empty engine; bench/demo.py times that first run).
DEMO_ARGS ?= lenet --small --steps 50

demo: host setup
	$(BIN)/opskit status
	$(BIN)/opskit run-remote --host localhost $(DEMO_ARGS)

lint: setup
	$(BIN)/ruff check .

bench: host setup
	for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
