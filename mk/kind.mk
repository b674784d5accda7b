# The local kind path: cluster, KServe, images, model, deploy, e2e (included by Makefile).
# Versions: versions.env. Tools missing from ./bin are installed there at those versions.
#   make kind-up kserve-install kind-load model-upload deploy e2e
# Walkthrough: docs/kind.md.

KIND_CLUSTER ?= kserve-kit
BIN ?= bin
KIND ?= $(BIN)/kind
HELM ?= $(BIN)/helm
KUBECTL ?= $(BIN)/kubectl
KIND_ENV = KIND='$(abspath $(KIND))' HELM='$(abspath $(HELM))' KUBECTL='$(abspath $(KUBECTL))' \
	KIND_CLUSTER='$(KIND_CLUSTER)'

##@ Kind

$(BIN)/.versions/kind: versions.env
	scripts/kind/install-tools.sh kind

$(BIN)/.versions/helm: versions.env
	scripts/kind/install-tools.sh helm

$(BIN)/.versions/kubectl: versions.env
	scripts/kind/install-tools.sh kubectl

.PHONY: tools
tools: $(BIN)/.versions/kind $(BIN)/.versions/helm $(BIN)/.versions/kubectl ## Install kind, helm and kubectl into ./bin (pinned, sha256-checked)

.PHONY: kind-up
kind-up: $(BIN)/.versions/kind $(BIN)/.versions/kubectl ## Create the kind cluster (node image pinned in versions.env)
	$(KIND_ENV) scripts/kind/kind-up.sh

.PHONY: kserve-install
kserve-install: $(BIN)/.versions/helm $(BIN)/.versions/kubectl ## Install cert-manager, then KServe in Standard mode from its Helm charts (idempotent)
	$(KIND_ENV) scripts/kind/kserve-install.sh

.PHONY: kind-load
kind-load: $(BIN)/.versions/kind ## Load the images (make images) into the kind node
	$(KIND_ENV) scripts/kind/kind-load.sh '$(PREDICTOR_IMAGE)' '$(TRANSFORMER_IMAGE)'

.PHONY: model-upload
model-upload: $(BIN)/.versions/kubectl ## Copy the demo model (make model) into the PVC pvc://kserve-kit-models/demo
	$(KIND_ENV) MODEL_DIR='$(MODEL_DIR)' scripts/kind/model-upload.sh

.PHONY: deploy
deploy: $(BIN)/.versions/kubectl ## kubectl apply -k manifests/overlays/kind and wait for the InferenceService
	$(KIND_ENV) scripts/kind/deploy.sh

.PHONY: undeploy
undeploy: $(BIN)/.versions/kubectl ## Delete what make deploy applied
	$(KUBECTL) delete -k manifests/overlays/kind --ignore-not-found

.PHONY: helm-install
helm-install: $(BIN)/.versions/helm $(BIN)/.versions/kubectl ## helm install the chart with ci/kind-values.yaml, then helm test
	$(KIND_ENV) scripts/kind/helm-install.sh

.PHONY: helm-uninstall
helm-uninstall: $(BIN)/.versions/helm ## Uninstall the chart's release
	$(HELM) uninstall kserve-kit --ignore-not-found

.PHONY: e2e
e2e: install $(BIN)/.versions/helm $(BIN)/.versions/kubectl ## Run the e2e tests against the cluster (kustomize path, then helm install + helm test)
	$(KIND_ENV) $(VENV)/bin/pytest -m e2e tests/e2e $(PYTEST_ARGS)

.PHONY: kind-down
kind-down: $(BIN)/.versions/kind ## Delete the kind cluster
	$(KIND) delete cluster --name '$(KIND_CLUSTER)'
