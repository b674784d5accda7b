#!/usr/bin/env bash
# Apply manifests/overlays/kind and wait until the InferenceService is Ready.
set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
source "$(dirname "$0")/common.sh"

ISVC="${ISVC:-text-classifier}"
# KServe's webhook can refuse the first apply right after an install (its endpoints not ready yet).
retry 6 10 "$KUBECTL" -n "$NAMESPACE" apply -k "$root/manifests/overlays/kind"
if ! "$KUBECTL" -n "$NAMESPACE" wait --for=condition=Ready "inferenceservice/$ISVC" --timeout=600s; then
    "$KUBECTL" -n "$NAMESPACE" describe "inferenceservice/$ISVC" >&2 || true
    "$KUBECTL" -n "$NAMESPACE" get pods -o wide >&2 || true
    exit 1
fi
"$KUBECTL" -n "$NAMESPACE" get inferenceservice "$ISVC"
