# Sourced by the scripts in scripts/kind/: the pinned versions, the tools (./bin first, as
# `make` installs them there), the cluster name, and small helpers.
# shellcheck shell=bash disable=SC2034
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck disable=SC1091  # versions.env: KEY=value lines
source "$root/versions.env"
KIND="${KIND:-$root/bin/kind}"
HELM="${HELM:-$root/bin/helm}"
KUBECTL="${KUBECTL:-$root/bin/kubectl}"
KIND_CLUSTER="${KIND_CLUSTER:-kserve-kit}"
NAMESPACE="${NAMESPACE:-default}"

log() { printf '%s: %s\n' "$(basename "$0" .sh)" "$*" >&2; }

# retry N DELAY_S COMMAND...: run COMMAND until it succeeds, at most N times.
retry() {
    local tries="$1" delay="$2" i
    shift 2
    for ((i = 1; i <= tries; i++)); do
        if "$@"; then return 0; fi
        if ((i < tries)); then
            log "attempt $i/$tries failed; again in ${delay}s"
            sleep "$delay"
        fi
    done
    return 1
}
