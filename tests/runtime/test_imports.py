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


def python(code: str) -> str:
    """What `code` prints, run in a fresh interpreter from the repository root."""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    return out.stdout


def test_the_policy_modules_load_without_kserve_or_torch():
    code = (
        "import sys, kserve_kit.policy, kserve_kit.calibration, kserve_kit.policy_watch; "
        "print(sorted(m for m in ('kserve', 'torch', 'transformers') if m in sys.modules))"
    )
    assert python(code).strip() == "[]"


def test_the_offline_parsers_leave_kserves_server_unimported():
    """`python -m offline.batch` and `offline.calibrate` parse their flags without KServe's
    server module (1.5 s to import); the predictor's own parser, the control, imports it."""
    code = (
        "import sys\n"
        "from offline import batch, calibrate\nfrom predictor import config\n"
        "batch.build_parser().parse_args(['--input', 'in.jsonl', '--output', 'out.jsonl'])\n"
        "calibrate.build_parser()\n"
        "print('kserve.model_server' in sys.modules)\n"
        "config.build_parser()\n"
        "print('kserve.model_server' in sys.modules)\n"
    )
    assert python(code).split() == ["False", "True"]
