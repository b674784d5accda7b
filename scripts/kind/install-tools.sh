#!/usr/bin/env bash
# Install kind, helm and kubectl into ./bin at the versions pinned in versions.env, each download
# checked against its sha256 (pinned in versions.env for linux/amd64 and linux/arm64; elsewhere the
# checksum file published beside the download). A tool already in ./bin at its pinned version is
# left alone.
#   scripts/kind/install-tools.sh [kind] [helm] [kubectl]      # default: all three
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck disable=SC1091  # versions.env: KEY=value lines, checked on their own
source "$root/versions.env"
bin="${BIN_DIR:-$root/bin}"
stamps="$bin/.versions"

log() { printf 'install-tools: %s\n' "$*" >&2; }

os="$(uname -s | tr '[:upper:]' '[:lower:]')"
case "$(uname -m)" in
    x86_64 | amd64) arch=amd64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) log "unsupported machine $(uname -m)"; exit 1 ;;
esac
case "$os" in linux | darwin) ;; *) log "unsupported OS $os"; exit 1 ;; esac

sha256() {
    if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1
    else shasum -a 256 "$1" | cut -d' ' -f1; fi
}

# pinned_sha TOOL -> the sha256 pinned in versions.env for this platform, or nothing.
pinned_sha() {
    local var
    var="$(printf '%s_SHA256_%s_%s' "$1" "$os" "$arch" | tr '[:lower:]' '[:upper:]')"
    printf '%s' "${!var:-}"
}

# fetch URL FILE PINNED_SHA PUBLISHED_SHA_URL
fetch() {
    local url="$1" out="$2" want="$3" sums="$4" got
    curl -fsSL --retry 3 -o "$out" "$url" || { log "could not download $url"; exit 1; }
    if [[ -z "$want" ]]; then
        log "no sha256 pinned for $os/$arch: checking against $sums"
        want="$(curl -fsSL --retry 3 "$sums" | awk '{print $1}')"
    fi
    got="$(sha256 "$out")"
    if [[ "$got" != "$want" ]]; then
        log "checksum mismatch for $url: expected $want, got $got"
        exit 1
    fi
}

installed() { [[ -x "$bin/$1" && "$(cat "$stamps/$1" 2>/dev/null)" == "$2" ]]; }

install_kind() {
    local url="https://github.com/kubernetes-sigs/kind/releases/download/${KIND_VERSION}/kind-${os}-${arch}"
    fetch "$url" "$tmp/kind" "$(pinned_sha kind)" "$url.sha256sum"
    install -m 0755 "$tmp/kind" "$bin/kind"
}

install_helm() {
    local url="https://get.helm.sh/helm-${HELM_VERSION}-${os}-${arch}.tar.gz"
    fetch "$url" "$tmp/helm.tar.gz" "$(pinned_sha helm)" "$url.sha256sum"
    tar -xzf "$tmp/helm.tar.gz" -C "$tmp" "${os}-${arch}/helm"
    install -m 0755 "$tmp/${os}-${arch}/helm" "$bin/helm"
}

install_kubectl() {
    local url="https://dl.k8s.io/release/${KUBECTL_VERSION}/bin/${os}/${arch}/kubectl"
    fetch "$url" "$tmp/kubectl" "$(pinned_sha kubectl)" "$url.sha256"
    install -m 0755 "$tmp/kubectl" "$bin/kubectl"
}

tools=("$@")
if [[ ${#tools[@]} -eq 0 ]]; then tools=(kind helm kubectl); fi
mkdir -p "$bin" "$stamps"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

for tool in "${tools[@]}"; do
    case "$tool" in
        kind) version="$KIND_VERSION" ;;
        helm) version="$HELM_VERSION" ;;
        kubectl) version="$KUBECTL_VERSION" ;;
        *) log "unknown tool '$tool' (kind, helm, kubectl)"; exit 2 ;;
    esac
    if installed "$tool" "$version"; then
        touch "$stamps/$tool"  # newer than versions.env again: make skips it next time
        continue
    fi
    log "installing $tool $version into $bin"
    "install_$tool"
    printf '%s\n' "$version" >"$stamps/$tool"
done
