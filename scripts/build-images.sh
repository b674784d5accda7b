#!/usr/bin/env bash
# Build the kit's images from the repository root (the build context of both Dockerfiles).
#   scripts/build-images.sh [predictor] [transformer]        # default: both
# Settings (environment; `make images` passes its variables of the same names):
#   PREDICTOR_IMAGE    tag of the predictor image     (kserve-kit-predictor:<version>)
#   TRANSFORMER_IMAGE  tag of the transformer image   (kserve-kit-transformer:<version>)
#   BASE_IMAGE         Python 3.11 base image         (python:3.11-slim-bookworm)
#   TORCH_INDEX_URL    extra index for torch; https://download.pytorch.org/whl/cpu for a CPU
#                      image; empty: PyPI's torch, the CUDA build on x86_64
#   WHEELS             a directory of wheels searched first (e.g. a CPU torch wheel)
#   PIP_OFFLINE        1: install from WHEELS alone, no index at all
#   EXTRA_CA_CERTS     a PEM file, or a directory of *.crt/*.pem, that pip trusts during the
#                      build (a TLS-intercepting proxy); never part of the final images
#   DOCKER             the docker CLI (docker)
#   DOCKER_BUILD_ARGS  more arguments for every `docker build` (e.g. --network host)
# WHEELS and EXTRA_CA_CERTS live outside the context, so they are staged under .cache/docker/
# (hard links where possible), which .dockerignore lets through.
set -euo pipefail

cd "$(dirname "$0")/.."

version="$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n 1)"
PREDICTOR_IMAGE="${PREDICTOR_IMAGE:-kserve-kit-predictor:$version}"
TRANSFORMER_IMAGE="${TRANSFORMER_IMAGE:-kserve-kit-transformer:$version}"
BASE_IMAGE="${BASE_IMAGE:-python:3.11-slim-bookworm}"
DOCKER="${DOCKER:-docker}"
stage=.cache/docker

log() { printf 'build-images: %s\n' "$*" >&2; }

components=("$@")
if [[ ${#components[@]} -eq 0 ]]; then components=(predictor transformer); fi

# Stage the wheels and certificates afresh: nothing from an earlier build may linger.
rm -rf "$stage"
build_args=(--build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "VERSION=$version"
    --build-arg "PIP_OFFLINE=${PIP_OFFLINE:-0}")
if [[ -n "${WHEELS:-}" ]]; then
    [[ -d "$WHEELS" ]] || { log "WHEELS=$WHEELS is not a directory"; exit 1; }
    mkdir -p "$stage/wheels"
    find "$WHEELS" -maxdepth 1 -name '*.whl' -exec cp -l {} "$stage/wheels/" \; 2>/dev/null ||
        find "$WHEELS" -maxdepth 1 -name '*.whl' -exec cp {} "$stage/wheels/" \;
    log "wheels from $WHEELS: $(find "$stage/wheels" -name '*.whl' | wc -l)"
    build_args+=(--build-arg "WHEELS_DIR=$stage/wheels")
elif [[ "${PIP_OFFLINE:-0}" == 1 ]]; then
    log "PIP_OFFLINE=1 needs WHEELS (a directory holding every wheel)"
    exit 1
fi
if [[ -n "${EXTRA_CA_CERTS:-}" ]]; then
    mkdir -p "$stage/ca-certs"
    if [[ -d "$EXTRA_CA_CERTS" ]]; then
        find "$EXTRA_CA_CERTS" -maxdepth 1 -type f \( -name '*.crt' -o -name '*.pem' \) \
            -exec cp {} "$stage/ca-certs/" \;
    elif [[ -f "$EXTRA_CA_CERTS" ]]; then
        cp "$EXTRA_CA_CERTS" "$stage/ca-certs/extra-ca.crt"
    else
        log "EXTRA_CA_CERTS=$EXTRA_CA_CERTS is neither a file nor a directory"
        exit 1
    fi
    build_args+=(--build-arg "CA_CERTS_DIR=$stage/ca-certs")
fi
if [[ -n "${TORCH_INDEX_URL:-}" ]]; then
    build_args+=(--build-arg "TORCH_INDEX_URL=$TORCH_INDEX_URL")
fi
read -r -a extra <<<"${DOCKER_BUILD_ARGS:-}"

for component in "${components[@]}"; do
    case "$component" in
        predictor) tag="$PREDICTOR_IMAGE" ;;
        transformer) tag="$TRANSFORMER_IMAGE" ;;
        *) log "unknown image '$component' (predictor, transformer)"; exit 2 ;;
    esac
    log "building $tag on $BASE_IMAGE"
    start=$SECONDS
    "$DOCKER" build -f "$component/Dockerfile" -t "$tag" "${build_args[@]}" "${extra[@]}" .
    log "built $tag in $((SECONDS - start)) s ($("$DOCKER" image inspect -f '{{.Size}}' "$tag" |
        awk '{printf "%.0f MB", $1 / 1e6}'))"
done
