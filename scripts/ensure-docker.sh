#!/usr/bin/env bash
# Make sure a Docker engine answers: install Debian's docker.io if dockerd is missing, start
# dockerd in the background if none is running, wait until `docker info` answers.
# Idempotent: with an engine already up it only checks. Exits non-zero if no engine can start
# (the container tests then skip, saying why).
#   DOCKERD_LOG=/tmp/dockerd.log   where dockerd's output goes
#   DOCKER_WAIT_S=60               how long to wait for the engine
set -euo pipefail

DOCKERD_LOG="${DOCKERD_LOG:-/tmp/dockerd.log}"
DOCKER_WAIT_S="${DOCKER_WAIT_S:-60}"

log() { printf 'ensure-docker: %s\n' "$*" >&2; }

engine_answers() { docker info >/dev/null 2>&1; }

if command -v docker >/dev/null 2>&1 && engine_answers; then
    log "a Docker engine answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
    exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
    if [[ "$(id -u)" -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        log "no dockerd, and this is not a root Debian/Ubuntu shell that can apt-get install docker.io"
        exit 1
    fi
    log "installing docker.io"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq docker.io >/dev/null
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
    if [[ "$(id -u)" -ne 0 ]]; then
        log "dockerd is not running and only root can start it"
        exit 1
    fi
    log "starting dockerd (log: $DOCKERD_LOG)"
    nohup dockerd >"$DOCKERD_LOG" 2>&1 &
    disown || true
fi

for ((i = 0; i < DOCKER_WAIT_S; i++)); do
    if engine_answers; then
        log "a Docker engine answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
        exit 0
    fi
    sleep 1
done

log "no Docker engine answered within ${DOCKER_WAIT_S}s; last lines of $DOCKERD_LOG:"
tail -n 20 "$DOCKERD_LOG" >&2 || true
exit 1
