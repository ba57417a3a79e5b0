# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
MODEL := models/moodbot
EXAMPLE := examples/moodbot
PORT ?= 5005

.PHONY: install run test lint bench clean

$(BIN)/dialogd: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[embedded,test,onnx]'
	touch $@

install: $(BIN)/dialogd

# Retrained only when the example bot's files change.
$(MODEL)/core/metadata.json: $(BIN)/dialogd $(EXAMPLE)/domain.yml $(EXAMPLE)/config.yml $(wildcard $(EXAMPLE)/data/*)
	$(BIN)/dialogd train --domain $(EXAMPLE)/domain.yml --stories $(EXAMPLE)/data/stories.md \
		--nlu $(EXAMPLE)/data/nlu.md --config $(EXAMPLE)/config.yml --out $(MODEL)

run: $(MODEL)/core/metadata.json
	$(BIN)/dialogd serve -d $(MODEL)/core -u $(MODEL)/nlu -p $(PORT) --data-dir data

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

# The whole public datasets (benchmarks, and the tests marked `data`): bench/README.md.
.PHONY: data
data: install
	$(BIN)/python -m bench.data fetch

clean:
	rm -rf $(VENV) models data .pytest_cache
