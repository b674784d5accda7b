#!/usr/bin/env bash
# cert-manager, then KServe in Standard mode (plain Deployments, no Knative or Istio) from its Helm
# charts kserve-crd and kserve-resources. Safe to run again: `kubectl apply` and
# `helm upgrade --install` converge on the same state.
set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
source "$(dirname "$0")/common.sh"

log "cert-manager $CERT_MANAGER_VERSION"
# Server-side apply: idempotent, and cert-manager's CRDs are large.
"$KUBECTL" apply --server-side --force-conflicts -f \
    "https://github.com/cert-manager/cert-manager/releases/download/${CERT_MANAGER_VERSION}/cert-manager.yaml"
for deployment in cert-manager cert-manager-cainjector cert-manager-webhook; do
    "$KUBECTL" -n cert-manager rollout status "deployment/$deployment" --timeout=300s
done

log "KServe CRDs $KSERVE_CHART_VERSION"
"$HELM" upgrade --install kserve-crd oci://ghcr.io/kserve/charts/kserve-crd \
    --version "$KSERVE_CHART_VERSION" --namespace kserve --create-namespace --wait

log "KServe controller $KSERVE_CHART_VERSION (Standard mode)"
# cert-manager's webhook may still be warming up when the chart's Certificate is created.
retry 5 20 "$HELM" upgrade --install kserve oci://ghcr.io/kserve/charts/kserve-resources \
    --version "$KSERVE_CHART_VERSION" --namespace kserve --create-namespace \
    --set kserve.controller.deploymentMode=Standard --wait --timeout 10m
"$KUBECTL" -n kserve rollout status deployment/kserve-controller-manager --timeout=300s
log "KServe is installed; InferenceServices default to Standard mode"
