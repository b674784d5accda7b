# Container images: build both, make a local base image, run the container test tier
# (included by Makefile). Build arguments and sizes: docs/images.md.

DOCKER ?= docker
IMAGE_TAG ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n 1)
PREDICTOR_IMAGE ?= kserve-kit-predictor:$(IMAGE_TAG)
TRANSFORMER_IMAGE ?= kserve-kit-transformer:$(IMAGE_TAG)
# Any Python 3.11 image; `make base-image` makes LOCAL_BASE_IMAGE where no registry is reachable.
BASE_IMAGE ?= python:3.11-slim-bookworm
LOCAL_BASE_IMAGE ?= kserve-kit/python:3.11-bookworm-local
# Empty: PyPI's torch (CUDA on x86_64). https://download.pytorch.org/whl/cpu: a CPU-only image.
TORCH_INDEX_URL ?=
# A directory of wheels searched first; with PIP_OFFLINE=1 the only source.
WHEELS ?=
PIP_OFFLINE ?= 0
# A PEM file or a directory of them that pip trusts during the build only.
EXTRA_CA_CERTS ?=
DOCKER_BUILD_ARGS ?=

IMAGE_BUILD_ENV = DOCKER='$(DOCKER)' BASE_IMAGE='$(BASE_IMAGE)' TORCH_INDEX_URL='$(TORCH_INDEX_URL)' \
	WHEELS='$(WHEELS)' PIP_OFFLINE='$(PIP_OFFLINE)' EXTRA_CA_CERTS='$(EXTRA_CA_CERTS)' \
	DOCKER_BUILD_ARGS='$(DOCKER_BUILD_ARGS)' \
	PREDICTOR_IMAGE='$(PREDICTOR_IMAGE)' TRANSFORMER_IMAGE='$(TRANSFORMER_IMAGE)'

# The container tests get only the settings given on the command line or in the environment:
# without BASE_IMAGE they pick python:3.11-slim-bookworm, or LOCAL_BASE_IMAGE when only that one
# is present; without WHEELS or TORCH_INDEX_URL they build a CPU predictor.
TEST_IMAGE_ENV = $(foreach v,BASE_IMAGE TORCH_INDEX_URL WHEELS PIP_OFFLINE EXTRA_CA_CERTS DOCKER_BUILD_ARGS,\
	$(if $(filter file,$(origin $(v))),,$(v)='$($(v))'))

##@ Images

.PHONY: images
images: ## Build both images (BASE_IMAGE, TORCH_INDEX_URL, WHEELS, PIP_OFFLINE, EXTRA_CA_CERTS)
	$(IMAGE_BUILD_ENV) scripts/build-images.sh predictor transformer

.PHONY: image-predictor
image-predictor: ## Build the predictor image only
	$(IMAGE_BUILD_ENV) scripts/build-images.sh predictor

.PHONY: image-transformer
image-transformer: ## Build the transformer image only
	$(IMAGE_BUILD_ENV) scripts/build-images.sh transformer

.PHONY: base-image
base-image: ## Make LOCAL_BASE_IMAGE, a Python 3.11 base with debootstrap + docker import (root)
	BASE_IMAGE_TAG='$(LOCAL_BASE_IMAGE)' DOCKER='$(DOCKER)' scripts/make-base-image.sh

.PHONY: docker-engine
docker-engine: ## Install docker.io and start dockerd unless an engine already answers (root)
	scripts/ensure-docker.sh

.PHONY: image-sizes
image-sizes: ## List the kit's images and their sizes
	$(DOCKER) image ls --format '{{.Repository}}:{{.Tag}}\t{{.Size}}' | grep -E '^kserve-kit' || true

.PHONY: test-containers
test-containers: install model ## Run the container tests: build (or reuse) both images and serve through them
	$(TEST_IMAGE_ENV) KIT_DEMO_MODEL_DIR='$(MODEL_DIR)' $(VENV)/bin/pytest -m containers tests/containers $(PYTEST_ARGS)
