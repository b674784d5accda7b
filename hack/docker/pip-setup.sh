#!/bin/sh
# Runs in the build stage of both Dockerfiles (never in the final image): creates the virtual
# environment /opt/venv and writes /build/pip.conf, the pip configuration (PIP_CONFIG_FILE) of the
# build's `pip install`s, so that nothing of it lands in /opt/venv.
#   /build/ca-certs/*.crt|*.pem  extra CA certificates (a TLS-intercepting proxy): pip then trusts
#                                the base image's CA bundle plus these
#   /build/wheels/*.whl          a local wheel directory, searched before the index
#   PIP_OFFLINE=1                install from /build/wheels alone (no index at all)
#   TORCH_INDEX_URL              an extra index for torch (https://download.pytorch.org/whl/cpu)
# `python3` is used, not `python`: Debian's own Python has only the former.
set -eu

python3 -m venv /opt/venv
# The kit itself is installed apart from its dependencies, into /opt/kserve-kit (its own small
# image layer, rebuilt alone when the source changes); this makes the venv's Python see it.
purelib=$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
echo /opt/kserve-kit >"$purelib/kserve-kit.pth"

conf=/build/pip.conf
{
    echo "[global]"
    echo "no-cache-dir = true"
    echo "disable-pip-version-check = true"
    echo "timeout = 120"
    echo "retries = 5"
} >"$conf"

certs=$(find /build/ca-certs -type f \( -name '*.crt' -o -name '*.pem' \) | sort)
if [ -n "$certs" ]; then
    system_bundle=/etc/ssl/certs/ca-certificates.crt
    {
        if [ -f "$system_bundle" ]; then cat "$system_bundle"; fi
        for c in $certs; do cat "$c"; echo; done
    } >/build/ca-bundle.pem
    echo "cert = /build/ca-bundle.pem" >>"$conf"
    echo "pip-setup: trusting $(echo "$certs" | wc -l) extra CA file(s) during the build" >&2
fi

if find /build/wheels -name '*.whl' | grep -q .; then
    echo "find-links = /build/wheels" >>"$conf"
    echo "pip-setup: wheel directory with $(find /build/wheels -name '*.whl' | wc -l) wheel(s)" >&2
fi

if [ "${PIP_OFFLINE:-0}" = "1" ]; then
    echo "no-index = true" >>"$conf"
    echo "pip-setup: offline, installing from /build/wheels only" >&2
elif [ -n "${TORCH_INDEX_URL:-}" ]; then
    echo "extra-index-url = ${TORCH_INDEX_URL}" >>"$conf"
fi

# The lock is a pip freeze: a torch pin may carry a local label (torch==2.13.0+cpu when it was
# frozen on a CPU machine). Drop the label so that the same lock selects the CUDA build from PyPI,
# the CPU build from the CPU index, or whatever build the wheel directory holds.
sed -E 's/^(torch|torchvision|torchaudio)==([^+ ;]+)\+[A-Za-z0-9.]+/\1==\2/' \
    /build/constraints.txt >/build/constraints.norm.txt

# The direct requirements, from pyproject.toml alone (so that this layer does not depend on the
# source): the base dependencies, the extras named in $1 and the build backend, which is
# installed too so that the project itself installs later with --no-build-isolation, offline.
/opt/venv/bin/python - "${1:-}" >/build/requirements.txt <<'PY'
import sys
import tomllib

with open("/build/pyproject.toml", "rb") as f:
    doc = tomllib.load(f)
reqs = list(doc["project"].get("dependencies", []))
for extra in filter(None, sys.argv[1].split(",")):
    reqs += doc["project"]["optional-dependencies"][extra]
reqs += doc["build-system"]["requires"]
print("\n".join(reqs))
PY
echo "pip-setup: requirements: $(tr '\n' ' ' </build/requirements.txt)" >&2
