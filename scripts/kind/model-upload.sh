#!/usr/bin/env bash
# Put the demo model into the PVC that the kind overlay reads (pvc://kserve-kit-models/demo): apply
# manifests/kind-model-storage (the PVC and a loader pod that mounts it at /models), copy the
# model in with `kubectl cp`, check it, and delete the loader pod. Running it again replaces the
# model.
#   MODEL_DIR=models/demo scripts/kind/model-upload.sh
set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
source "$(dirname "$0")/common.sh"

MODEL_DIR="${MODEL_DIR:-$root/models/demo}"
MODEL_PATH="${MODEL_PATH:-demo}"   # the path inside the PVC: pvc://kserve-kit-models/<this>
pod=kserve-kit-model-loader

if [[ ! -f "$MODEL_DIR/config.json" ]]; then
    log "$MODEL_DIR has no config.json: run make model first"
    exit 1
fi

"$KUBECTL" -n "$NAMESPACE" apply -k "$root/manifests/kind-model-storage"
"$KUBECTL" -n "$NAMESPACE" wait --for=condition=Ready "pod/$pod" --timeout=300s
"$KUBECTL" -n "$NAMESPACE" exec "$pod" -- rm -rf "/models/$MODEL_PATH"
"$KUBECTL" -n "$NAMESPACE" cp "$MODEL_DIR" "$pod:/models/$MODEL_PATH"
# The copy is complete when every file arrived with its size.
expected="$(find "$MODEL_DIR" -type f | wc -l | tr -d ' ')"
copied="$("$KUBECTL" -n "$NAMESPACE" exec "$pod" -- find "/models/$MODEL_PATH" -type f | wc -l | tr -d ' ')"
if [[ "$expected" != "$copied" ]]; then
    log "copied $copied of $expected files"
    exit 1
fi
"$KUBECTL" -n "$NAMESPACE" exec "$pod" -- ls -l "/models/$MODEL_PATH"
"$KUBECTL" -n "$NAMESPACE" delete pod "$pod" --wait=true
log "model uploaded to pvc://kserve-kit-models/$MODEL_PATH"
