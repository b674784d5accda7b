#!/bin/sh
# Runs in the transformer's build stage: makes /opt/venv smaller without removing anything that the
# server imports, to keep the image under 400 MB (kserve alone pulls in kubernetes, pandas,
# numpy, grpcio-tools...).
#  1. test suites shipped inside packages (pandas/tests alone is about 40 MB);
#  2. pip and setuptools: installers, not needed to run (the image installs nothing at run time);
#     hf-xet (about 11 MB): huggingface_hub's download accelerator; the model is local and
#     nothing is downloaded from a hub at run time;
#  3. kubernetes/aio (about 40 MB): the kubernetes client's asyncio twin, which kserve never
#     imports (it uses the synchronous client, and the server uses neither);
#  4. byte-code: pip compiles every module it installs (about 140 MB here), the server imports a
#     fraction of them (about 25 MB). All .pyc files are dropped, then the server's imports of its
#     dependencies are replayed to compile exactly those (the kit's own modules are compiled
#     where they are installed, /opt/kserve-kit). A module imported later still works: Python compiles it in memory.
# $1: Python statements that import what the server imports from its dependencies.
set -eu
venv=/opt/venv
site=$(find "$venv/lib" -maxdepth 2 -type d -name site-packages)

find "$site" -mindepth 2 -type d -name tests -prune -exec rm -rf {} +
"$venv/bin/python" -m pip uninstall --yes --quiet hf-xet pip setuptools
rm -rf "$site/kubernetes/aio"
find "$venv" -type d -name __pycache__ -prune -exec rm -rf {} +
PYTHONDONTWRITEBYTECODE='' "$venv/bin/python" -c "$1"
echo "slim-venv: $(du -sh "$venv" | cut -f1) left in $venv" >&2
