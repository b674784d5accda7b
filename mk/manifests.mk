# Kubernetes packaging: render, validate and lint manifests/ and charts/ (included by Makefile).
# Versions: Python tools in pyproject.toml ([manifests], [checkov]); the rest in versions.env.


MANIFESTS_OUT ?= out
CHECKOV_VENV ?= .venv-checkov
CRDS_DIR ?= .cache/crds

# The InferenceService CRDs the kit validates against: KServe master at KSERVE_CRDS_COMMIT
# (versions.env; 2026-08-21, after tag v0.20.0, whose charts still say v0.20.0). These are the
# same files, byte for byte, as ../shared/kserve/crds (see SOURCE.txt there): checksums below.
KSERVE_CRDS_URL ?= https://raw.githubusercontent.com/kserve/kserve/$(KSERVE_CRDS_COMMIT)/config/crd/full
# <path under config/crd/full>=<sha256>
KSERVE_CRDS := \
	serving.kserve.io_inferenceservices.yaml=57c3bf13f77de94678bf2ae3748056ec071ad2b9e88d6a28f44fb4710758fcff \
	serving.kserve.io_servingruntimes.yaml=5a262831474e7bd23e7c4f76556d84e1a11fb3ad74a78a6d18cfc71fd8fca7a2 \
	serving.kserve.io_clusterservingruntimes.yaml=f721d19516670d4a81181e231b1e58cbc32c36435969182ae457fad537151cc8 \
	serving.kserve.io_inferencegraphs.yaml=b2e246d7a055937ea56de13850d0f4f993f1825b078a4c901944b99bba1800ca \
	serving.kserve.io_trainedmodels.yaml=8ca09aaab46af84b1e697a3b84c6b5482bb7c006a5a6ba764343999682c300e7 \
	clusterstoragecontainer/serving.kserve.io_clusterstoragecontainers.yaml=47ec2b6caeeb0c210d8be3138ed7d391f74043e3ed779177d36ceb4aa2a5d288

##@ Manifests

$(VENV)/.manifests-installed: pyproject.toml | $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[manifests]'
	touch $@

.PHONY: install-manifests
install-manifests: $(VENV)/.manifests-installed ## Install the manifest tools (Helm engine, validators, linters) into .venv

$(CHECKOV_VENV)/.installed: pyproject.toml constraints-checkov.txt
	$(PYTHON_BOOTSTRAP) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -c constraints-checkov.txt \
		"$$(grep -o '"checkov==[^"]*"' pyproject.toml | tr -d '"')"
	touch $@

.PHONY: checkov
checkov: $(CHECKOV_VENV)/.installed ## Install checkov into its own venv (.venv-checkov: its pins clash with pytest's)

.PHONY: manifests
manifests: install-manifests ## Render every overlay and chart variant into out/ (kustomize + Helm's engine)
	$(PY) tests/manifests/render.py $(MANIFESTS_OUT)

.PHONY: crds
crds: ## Download KServe's CRDs (pinned commit, sha256-checked) into .cache/crds
	@mkdir -p $(CRDS_DIR)
	@for entry in $(KSERVE_CRDS); do \
		path="$${entry%%=*}"; sum="$${entry##*=}"; file="$(CRDS_DIR)/$${path##*/}"; \
		if [ -f "$$file" ] && echo "$$sum  $$file" | sha256sum --check --status; then continue; fi; \
		echo "fetch $$path"; \
		curl --fail --silent --show-error --location --retry 3 -o "$$file.part" "$(KSERVE_CRDS_URL)/$$path"; \
		echo "$$sum  $$file.part" | sha256sum --check --quiet \
			|| { echo "checksum mismatch: $$path" >&2; rm -f "$$file.part"; exit 1; }; \
		mv "$$file.part" "$$file"; \
	done
	@echo "KServe CRDs in $(CRDS_DIR) (tests use them when KSERVE_CRDS_DIR and ../shared are absent)"

.PHONY: test-manifests
test-manifests: install-manifests checkov ## Validate the manifests and the chart offline (schemas, CRDs, parsers, drift, linters)
	CHECKOV=$(CHECKOV_VENV)/bin/checkov $(VENV)/bin/pytest -m manifests tests/manifests $(PYTEST_ARGS)

.PHONY: lint-manifests
lint-manifests: install-manifests checkov ## Lint only: yamllint, checkov, hadolint, shellcheck
	CHECKOV=$(CHECKOV_VENV)/bin/checkov $(VENV)/bin/pytest -m manifests tests/manifests/test_lint.py $(PYTEST_ARGS)
