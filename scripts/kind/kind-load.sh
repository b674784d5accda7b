#!/usr/bin/env bash
# Load the locally built images into the kind node (Standard mode runs them with
# imagePullPolicy IfNotPresent, so nothing is pulled).
#   scripts/kind/kind-load.sh IMAGE...
set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
source "$(dirname "$0")/common.sh"

if [[ $# -eq 0 ]]; then
    log "usage: $0 IMAGE..."
    exit 2
fi
for image in "$@"; do
    if ! docker image inspect "$image" >/dev/null 2>&1; then
        log "$image is not built: run make images first"
        exit 1
    fi
done
"$KIND" load docker-image --name "$KIND_CLUSTER" "$@"
