#!/usr/bin/env bash
# Make a local Python 3.11 base image without pulling from any registry:
# debootstrap a minimal Debian bookworm (whose python3 is 3.11), add Python,
# and `docker import` the root filesystem.
#
#   scripts/make-base-image.sh                      # tag kserve-kit/python:3.11-bookworm-local
#   BASE_IMAGE_TAG=my/python:3.11 scripts/make-base-image.sh
#   FORCE=1 scripts/make-base-image.sh              # rebuild even if the tag exists
#
# Then build the kit's images on it:
#   make images BASE_IMAGE=kserve-kit/python:3.11-bookworm-local
#
# Needs root (debootstrap), a running Docker engine and access to a Debian mirror.
set -euo pipefail

TAG="${BASE_IMAGE_TAG:-kserve-kit/python:3.11-bookworm-local}"
SUITE="${DEBIAN_SUITE:-bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
DOCKER="${DOCKER:-docker}"
# python3-venv brings ensurepip, so `python3 -m venv` gives a venv with pip, as on
# python:3.11-slim; python-is-python3 makes `python` exist, as it does there.
PACKAGES="${BASE_PACKAGES:-python3,python3-venv,python-is-python3,ca-certificates}"

log() { printf 'make-base-image: %s\n' "$*" >&2; }

if [[ -z "${FORCE:-}" ]] && "$DOCKER" image inspect "$TAG" >/dev/null 2>&1; then
    log "$TAG already exists (FORCE=1 rebuilds it)"
    exit 0
fi

if [[ "$(id -u)" -ne 0 ]]; then
    log "debootstrap needs root; run this script as root (or with sudo)"
    exit 1
fi

if ! command -v debootstrap >/dev/null 2>&1; then
    log "installing debootstrap"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

workdir="$(mktemp -d "${TMPDIR:-/tmp}/kserve-kit-rootfs.XXXXXX")"
cleanup() {
    # debootstrap mounts /proc and /sys inside the target while it works: if it was
    # interrupted, unmount them before deleting anything.
    local mnt
    while read -r _ mnt _; do
        case "$mnt" in "$workdir"/*) umount -l "$mnt" || true ;; esac
    done < <(tac /proc/mounts)
    rm -rf --one-file-system "$workdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
rootfs="$workdir/rootfs"

log "debootstrap $SUITE (minbase + $PACKAGES) from $MIRROR"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$MIRROR" \
    >"$workdir/debootstrap.log" 2>&1 || {
    tail -n 30 "$workdir/debootstrap.log" >&2
    log "debootstrap failed"
    exit 1
}

# Trim what a base image does not need: package lists and caches, docs, man pages,
# and anything left in /tmp. apt still works after `apt-get update`.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
    "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/debconf/*-old \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
    "$rootfs"/var/log/* "$rootfs"/tmp/* "$rootfs"/root/.cache
# Message translations (about 30 MB); locale.alias stays, glibc reads it.
find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
# The container gets its hostname and DNS from the engine.
: >"$rootfs/etc/hostname"
: >"$rootfs/etc/resolv.conf"

version="$(chroot "$rootfs" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [[ "$version" != "3.11" ]]; then
    log "expected Python 3.11 in $SUITE, found $version"
    exit 1
fi

log "importing as $TAG"
tar --numeric-owner -C "$rootfs" -c . | "$DOCKER" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    --message "debootstrap $SUITE minbase + $PACKAGES (scripts/make-base-image.sh)" \
    - "$TAG" >/dev/null

"$DOCKER" run --rm "$TAG" python -c 'import ssl, sys, venv; print("base image ok:", sys.version.split()[0])'
"$DOCKER" image ls "$TAG"
