#!/usr/bin/env bash
# Install the chart with its kind values (the same InferenceService as manifests/overlays/kind),
# wait for the InferenceService, and run `helm test`. The chart's InferenceService has the
# overlay's name: remove a `make deploy` first (`kubectl delete -k manifests/overlays/kind`).
set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
source "$(dirname "$0")/common.sh"

RELEASE="${RELEASE:-kserve-kit}"
ISVC="${ISVC:-text-classifier}"
retry 6 10 "$HELM" upgrade --install "$RELEASE" "$root/charts/kserve-kit" \
    --namespace "$NAMESPACE" -f "$root/charts/kserve-kit/ci/kind-values.yaml"
"$KUBECTL" -n "$NAMESPACE" wait --for=condition=Ready "inferenceservice/$ISVC" --timeout=600s
"$HELM" test "$RELEASE" --namespace "$NAMESPACE" --logs
