# The two commands a new user needs: `make serve` and `make test`. Each creates .venv itself.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed
PYTEST_ARGS ?=

.PHONY: serve test lint bench clean compose-up compose-down test-containers

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if (3, 10) <= v <= (3, 11) else \
		"mxnet 1.9.1 needs numpy<1.24, which has wheels up to Python 3.11: use PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[server,test]'
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/mxconv serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The benchmark-only extras (PyTorch CPU, pyinstrument, py-spy); wrk is used when on PATH.
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[server,test,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks

# The compose topology (docs/deploy.md): Docker's daemon is started when none answers, and
# local stand-ins are made for base images no registry can give (deploy/compose.sh).
compose-up:
	deploy/compose.sh up

compose-down:
	deploy/compose.sh down

# The container suite (tests/containers): builds the image and runs the topology under faults.
test-containers: $(STAMP)
	MXCONV_CONTAINER_TESTS=1 $(BIN)/python -m pytest tests/containers --timeout 900 -v $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache mxconv-data
