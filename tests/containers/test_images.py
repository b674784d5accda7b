"""The real images, built with Docker and run as the kind overlay runs them.

Skipped, with the reason in pytest's summary, when no Docker engine answers.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import subprocess
import tarfile
import urllib.error
import urllib.request

import pytest

from kserve_kit import client

from .conftest import docker

pytestmark = [pytest.mark.containers, pytest.mark.timeout(3600)]

BILLING = "I was charged twice for my subscription this month"
RECIPE = "Preheat the oven to 180 degrees and whisk the eggs with sugar until fluffy."
TRANSFORMER_MAX_MB = 400
PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----\s+(.+?)\s+-----END CERTIFICATE-----", re.S)


def inspect(image: str) -> dict:
    return json.loads(docker("image", "inspect", image).stdout)[0]


def run_python(image: str, code: str) -> str:
    return docker(
        "run",
        "--rm",
        "--user",
        "1000:1000",
        "--read-only",
        "--entrypoint",
        "python",
        image,
        "-c",
        code,
    ).stdout.strip()


def exported_files(image: str):
    """(path, bytes) of every regular file in the image's filesystem (`docker export`)."""
    container = docker("create", image).stdout.strip()
    try:
        proc = subprocess.Popen(["docker", "export", container], stdout=subprocess.PIPE)
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                if member.isfile():
                    yield member.name, tar.extractfile(member).read()
        assert proc.wait() == 0
    finally:
        docker("rm", "--force", container, check=False)


# --- the images themselves ------------------------------------------------------------------


@pytest.mark.parametrize("component", ["predictor", "transformer"])
def test_image_runs_its_server_as_uid_1000(images, component):
    config = inspect(getattr(images, component))["Config"]
    assert config["User"].split(":")[0] == "1000"
    assert config["Entrypoint"] == ["python", "-m", component]
    assert run_python(getattr(images, component), "import os; print(os.getuid())") == "1000"


def test_transformer_image_has_no_torch_and_stays_small(images):
    found = run_python(
        images.transformer,
        "import importlib.util as u; "
        "print([m for m in ('torch', 'transformers') if u.find_spec(m)])",
    )
    assert found == "[]"
    size_mb = inspect(images.transformer)["Size"] / 1e6
    assert size_mb < TRANSFORMER_MAX_MB, f"transformer image is {size_mb:.0f} MB"


def test_predictor_image_has_torch_and_transformers(images):
    versions = run_python(images.predictor, "import torch, transformers; print(torch.__version__)")
    assert versions.startswith("2.")


def normalised_pems(data: bytes) -> set[bytes]:
    return {re.sub(rb"\s+", b"", m) for m in PEM_BLOCK.findall(data)}


_scans: dict[str, dict[str, list[str]]] = {}


def scan(images, component: str) -> dict[str, list[str]]:
    """One pass over the final image's filesystem (cached): build-stage leftovers and models
    (Debian's own /usr/share/python-wheels, which python3-venv ships, is the base's),
    and files that hold an extra CA certificate (EXTRA_CA_CERTS) that the base image does not
    ship itself (such as a proxy's CA, which only the build may see)."""
    image = getattr(images, component)
    if image in _scans:
        return _scans[image]
    ca_files = images.settings.extra_ca_files()
    extra = set().union(*(normalised_pems(p.read_bytes()) for p in ca_files)) if ca_files else set()
    if extra:
        base_bundle = docker(
            "run",
            "--rm",
            "--entrypoint",
            "cat",
            images.settings.base_image,
            "/etc/ssl/certs/ca-certificates.crt",
            check=False,
        ).stdout.encode()
        extra -= normalised_pems(base_bundle)
    digests = {hashlib.sha256(p.read_bytes()).hexdigest() for p in ca_files}
    found: dict[str, list[str]] = {"leftovers": [], "ca": []}
    for name, data in exported_files(image):
        path = "/" + name.removeprefix("./").lstrip("/")
        wheel = path.endswith(".whl") and not path.startswith("/usr/share/python-wheels/")
        if (
            wheel
            or path.startswith(("/build/", "/mnt/models/"))
            or path.endswith((".safetensors", "pytorch_model.bin", "pip.conf"))
        ):
            found["leftovers"].append(path)
        if digests and hashlib.sha256(data).hexdigest() in digests:
            found["ca"].append(f"{path} (a copy of an extra CA file)")
        elif extra and b"BEGIN CERTIFICATE" in data and normalised_pems(data) & extra:
            found["ca"].append(f"{path} (holds an extra CA certificate)")
    _scans[image] = found
    return found


@pytest.mark.parametrize("component", ["predictor", "transformer"])
def test_final_image_has_no_model_and_no_build_stage_leftovers(images, component):
    assert scan(images, component)["leftovers"] == []


@pytest.mark.parametrize("component", ["predictor", "transformer"])
def test_extra_ca_certificates_never_reach_the_final_image(images, component):
    if not images.settings.extra_ca_files():
        pytest.skip("images built without EXTRA_CA_CERTS: no extra CA to look for")
    assert scan(images, component)["ca"] == []
    history = docker(
        "history", "--no-trunc", "--format", "{{.CreatedBy}}", getattr(images, component)
    ).stdout
    assert "ca-certs" not in history and "pip.conf" not in history


# --- serving through the containers ---------------------------------------------------------


def test_predictor_container_serves_v2_metadata(deployment):
    with urllib.request.urlopen(
        f"{deployment.predictor.url}/v2/models/{deployment.model_name}/ready", timeout=10
    ) as r:
        assert r.status == 200


def test_rest_v2_through_the_transformer_container(deployment):
    answers = client.classify_rest(
        deployment.transformer.url,
        [BILLING, RECIPE],
        model_name=deployment.model_name,
        timeout_s=120,
    )
    assert [a.label for a in answers] == ["billing", deployment.others_label]
    billing, recipe = answers
    assert billing.confidence >= 0.9
    assert len(billing.probabilities) == len(deployment.labels)
    assert abs(sum(billing.probabilities) - 1) < 1e-3
    assert recipe.confidence < 0.9


def test_grpc_v2_through_the_transformer_container(deployment):
    target = f"127.0.0.1:{deployment.transformer.grpc_port}"
    answers = asyncio.run(
        client.classify_grpc(target, [RECIPE, BILLING], model_name=deployment.model_name)
    )
    assert [a.label for a in answers] == [deployment.others_label, "billing"]


def test_threshold_override_through_the_transformer_container(deployment):
    # With a threshold of 0.01 the recipe gets the model's own best label, not `others`.
    (answer,) = client.classify_rest(
        deployment.transformer.url,
        [RECIPE],
        threshold=0.01,
        model_name=deployment.model_name,
        timeout_s=120,
    )
    assert answer.label in deployment.labels
    assert answer.label != deployment.others_label


def test_bad_request_is_a_4xx_from_the_container(deployment):
    request = urllib.request.Request(
        f"{deployment.transformer.url}/v2/models/{deployment.model_name}/infer",
        data=json.dumps(
            {"inputs": [{"name": "wrong", "datatype": "FP32", "shape": [1], "data": [1.0]}]}
        ).encode(),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(request, timeout=30)
    assert 400 <= excinfo.value.code < 500
