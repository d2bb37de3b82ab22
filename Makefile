# Two entry points (see README): `make demo` and `make test`. Everything they need is
# installed from the package registries by the rules below.
PYTHON ?= python3
PORT ?= 8000
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
DEFAULT_SET := data/emoji/images/metadata.csv

.PHONY: demo test run-demo chromium lint clean-demo fuzz

demo: run-demo
	$(BIN)/postermap serve work/emoji --port $(PORT)

run-demo: $(INSTALLED) $(DEFAULT_SET)
	$(BIN)/postermap run data/emoji/images -o work/emoji

test: lint $(DEFAULT_SET) chromium
	$(BIN)/python -m pytest

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The default pipeline needs no torch; the test extra adds it (the `torch` extra, which
	# pins the CPU build exactly: a looser pin lets pip pull a multi-GB CUDA build), because
	# the tests check the default model's ONNX graph against PyTorch.
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

$(DEFAULT_SET): | $(INSTALLED)
	$(BIN)/postermap fetch-default data/emoji

chromium:
	@command -v chromium >/dev/null || { apt-get update && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; }

# 10,000 generated, broken and odd image files through inspection and `postermap run`
# (minutes; `make test` runs a few hundred of them as property tests)
fuzz: $(INSTALLED)
	$(BIN)/python -m benchmarks.fuzz --n 10000 --end-to-end

lint: $(INSTALLED)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

clean-demo:
	rm -rf work/emoji
