"""What each part imports, checked in a fresh Python process: the transformer and the policy
modules stay free of torch (the transformer's image has none), the policy modules of kserve."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.runtime

REPO = Path(__file__).resolve().parents[2]


def test_the_transformer_never_imports_torch():
    code = (
        "import sys; import transformer.__main__, transformer.model, kserve_kit.client;"
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_policy_modules_load_without_kserve_or_torch():
    code = (
        "import sys, kserve_kit.policy, kserve_kit.calibration, kserve_kit.policy_watch; "
        "print(sorted(m for m in ('kserve', 'torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
