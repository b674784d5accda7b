"""The pod-equivalent run: start both servers locally with exactly the args and env that the
rendered kind overlay gives their containers, changed only where a pod differs from one host:
  - /mnt/models (where KServe mounts pvc://kserve-kit-models/demo) is the local demo model;
  - each pod has its own network namespace, here both share one: free ports replace 8080/8081;
  - text-classifier-predictor:8081 (KServe's predictor Service) resolves to the predictor here.
KServe's controller adds nothing to a custom predictor, and to a custom transformer only
--model_name, --predictor_host and --http_port when missing: the overlay sets all three, which
test_consistency.py checks. Then one V2 request through the transformer must return a label."""

from __future__ import annotations

import json
import sys
import urllib.request

import pytest
from conftest import REPO, container, demo_model, inference_services

sys.path.insert(0, str(REPO / "tests"))
from support.servers import Server, free_port, running  # noqa: E402

pytestmark = pytest.mark.manifests

MOUNT = "/mnt/models"
# What the controller would add to the transformer if missing (KServe, v1beta1 transformer).
CONTROLLER_DEFAULTS = ("--model_name", "--predictor_host", "--http_port")


def localize(args: list[str], replacements: dict[str, str]) -> list[str]:
    out = []
    for arg in args:
        name = arg.split("=", 1)[0]
        out.append(f"{name}={replacements[name]}" if name in replacements else arg)
    return out


def test_rendered_kind_pods_serve_a_label(objects, tmp_path):
    model = demo_model()
    (isvc,) = inference_services(objects["overlay-kind"])
    p, t = container(isvc, "predictor"), container(isvc, "transformer")
    for flag in CONTROLLER_DEFAULTS:
        assert any(a.startswith(f"{flag}=") for a in t["args"]), f"controller would add {flag}"
    assert f"--model_dir={MOUNT}" in p["args"] and f"--model_dir={MOUNT}" in t["args"]

    p_http, p_grpc, t_http, t_grpc = (free_port() for _ in range(4))
    p_args = localize(
        p["args"],
        {"--model_dir": str(model), "--http_port": str(p_http), "--grpc_port": str(p_grpc)},
    )
    t_args = localize(
        t["args"],
        {
            "--model_dir": str(model),
            "--http_port": str(t_http),
            "--grpc_port": str(t_grpc),
            "--predictor_host": f"127.0.0.1:{p_grpc}",
        },
    )
    scratch = tmp_path / "scratch"  # the /tmp emptyDir of each pod
    scratch.mkdir()

    def env_of(c: dict) -> dict[str, str]:
        env = {e["name"]: e["value"] for e in c["env"]}
        env["HOME"] = str(scratch)
        return env

    pred = Server(
        "predictor",
        ["predictor", *p_args],
        p_http,
        p_grpc,
        tmp_path / "predictor.log",
        env=env_of(p),
    )
    trans = Server(
        "transformer",
        ["transformer", *t_args],
        t_http,
        t_grpc,
        tmp_path / "transformer.log",
        env=env_of(t),
    )
    with running(pred, trans):
        model_name = next(a.split("=", 1)[1] for a in t["args"] if a.startswith("--model_name="))
        body = {
            "inputs": [
                {
                    "name": "text",
                    "shape": [1],
                    "datatype": "BYTES",
                    "data": ["I was charged twice for my subscription this month"],
                }
            ]
        }
        request = urllib.request.Request(
            f"{trans.url}/v2/models/{model_name}/infer",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.load(response)
        # The readiness probe path of the overlay answers 200 on both.
        for server, c in ((pred, p), (trans, t)):
            path = c["readinessProbe"]["httpGet"]["path"]
            with urllib.request.urlopen(f"{server.url}{path}", timeout=10) as r:
                assert r.status == 200
    labels = [o for o in answer["outputs"] if o["name"] == "label"]
    assert labels and labels[0]["data"] and all(isinstance(v, str) and v for v in labels[0]["data"])
