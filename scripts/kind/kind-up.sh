#!/usr/bin/env bash
# Create the kind cluster (hack/kind/cluster.yaml, node image from versions.env) unless it exists,
# and make it kubectl's current context.
set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
source "$(dirname "$0")/common.sh"

if "$KIND" get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER"; then
    log "cluster $KIND_CLUSTER exists"
else
    log "creating cluster $KIND_CLUSTER ($KIND_NODE_IMAGE)"
    "$KIND" create cluster --name "$KIND_CLUSTER" --image "$KIND_NODE_IMAGE" \
        --config "$root/hack/kind/cluster.yaml" --wait 300s
fi
"$KUBECTL" config use-context "kind-$KIND_CLUSTER" >/dev/null
"$KUBECTL" cluster-info
