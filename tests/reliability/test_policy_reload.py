"""Live reload of the decision policy under load, the way a Kubernetes ConfigMap volume updates.

The transformer serves `policy.json` from a directory laid out as the kubelet lays out a
ConfigMap (`policy.json -> ..data/policy.json`, `..data -> ..<timestamp>/`), and every update
writes a new timestamped directory and swaps the `..data` symlink. 8 clients send requests for
KIT_RELOAD_SECONDS (20) while the policy is replaced 5 times, once by an invalid file.

Asserted: no request fails; every answer names a valid version and never the invalid one; each
answer is wholly the named policy's (its probabilities are the softmax of the same logits at the
named temperature, its labels the named thresholds' decisions): no mix of two policies; the last
valid version serves at the end, and the refusal was counted once.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import aiohttp
import numpy as np
import pytest

from tests.reliability.conftest import env_int
from tests.reliability.load import metric
from tests.support import servers
from tests.support.configmap import ConfigMapVolume

pytestmark = pytest.mark.reliability

RELOAD_SECONDS = env_int("KIT_RELOAD_SECONDS", 20)
CLIENTS = 8
LABELS = ("negative", "neutral", "positive")  # the tiny model's id2label
TEXTS = ["I was charged twice", "where is my parcel", "great service, thanks", "cancel it now"]
# The tiny model is random: its top probabilities sit around 0.35-0.45 at temperature 1, so
# these thresholds and temperatures split the texts differently for every version.
POLICIES = [
    {"version": "v1", "temperature": 1.0, "threshold": 0.36},
    {"version": "v2", "temperature": 0.5, "threshold": 0.40, "class_thresholds": {"neutral": 0.3}},
    {"version": "v3", "temperature": 2.0, "threshold": 0.34},
    {"version": "bad", "temperature": 1.0, "threshold": 1.5},  # refused: outside (0, 1)
    {"version": "v4", "temperature": 0.7, "threshold": 0.45},
    {"version": "v5", "temperature": 1.3, "threshold": 0.35, "class_thresholds": {"positive": 0.5}},
]
VALID = {p["version"]: p for p in POLICIES if p["version"] != "bad"}


def policy_json(policy: dict) -> str:
    return json.dumps({"format": 1, "others_label": "others", "model_version": None, **policy})


@pytest.fixture
def reloading_chain(tiny_model_dir, tmp_path):
    volume = ConfigMapVolume(tmp_path / "policy")
    volume.publish({"policy.json": policy_json(POLICIES[0])})
    predictor = servers.predictor(tiny_model_dir, tmp_path)
    transformer = servers.transformer(
        tiny_model_dir,
        tmp_path,
        predictor,
        extra=[
            "--policy_file",
            str(volume.root / "policy.json"),
            "--policy_reload_interval_seconds",
            "0.2",
        ],
    )
    with servers.running(predictor, transformer):
        yield transformer, volume


def expected_labels(probabilities: np.ndarray, policy: dict) -> list[str]:
    labels = []
    for row in probabilities:
        top = int(row.argmax())
        threshold = policy.get("class_thresholds", {}).get(LABELS[top], policy["threshold"])
        labels.append(LABELS[top] if row[top] >= np.float32(threshold) else "others")
    return labels


async def clients(url: str, seconds: float) -> list[dict]:
    body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [4], "data": TEXTS}]}
    answers: list[dict] = []
    deadline = time.monotonic() + seconds
    timeout = aiohttp.ClientTimeout(total=30)

    async def one_client(session):
        while time.monotonic() < deadline:
            async with session.post(url, json=body) as response:
                answers.append({"status": response.status, "body": await response.json()})

    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(one_client(session) for _ in range(CLIENTS)))
    return answers


def test_policy_replaced_under_load_without_a_failed_request_or_a_mix(reloading_chain):
    transformer, volume = reloading_chain
    stop = threading.Event()

    def replace_five_times():
        for policy in POLICIES[1:]:
            if stop.wait(RELOAD_SECONDS / (len(POLICIES) + 1)):
                return
            volume.publish({"policy.json": policy_json(policy)})

    replacer = threading.Thread(target=replace_five_times)
    replacer.start()
    try:
        url = f"{transformer.url}/v2/models/text-classifier/infer"
        answers = asyncio.run(clients(url, RELOAD_SECONDS))
    finally:
        stop.set()
        replacer.join()

    failed = [a for a in answers if a["status"] != 200]
    assert not failed, failed[:3]
    served = [a["body"]["parameters"]["policy_version"] for a in answers]
    assert set(served) <= set(VALID), set(served)
    assert "bad" not in served
    assert served[-1] == "v5" and len(set(served)) >= 4, sorted(set(served))

    # Each answer is one policy's whole: logits recovered at the named temperature agree, and
    # the labels are the named thresholds' decisions on the answered probabilities.
    reference = None
    for answer in answers:
        body = answer["body"]
        policy = VALID[body["parameters"]["policy_version"]]
        out = {o["name"]: o for o in body["outputs"]}
        probabilities = np.array(out["probabilities"]["data"], dtype=np.float32).reshape(4, 3)
        logit_gaps = policy["temperature"] * np.log(probabilities / probabilities[:, :1])
        if reference is None:
            reference = logit_gaps
        np.testing.assert_allclose(logit_gaps, reference, atol=1e-3)
        assert out["label"]["data"] == expected_labels(probabilities, policy)

    assert metric(transformer, "kserve_kit_policy_reload_errors_total") == 1
    print(
        f"policy reload: {len(answers)} requests from {CLIENTS} clients in {RELOAD_SECONDS} s, "
        f"0 failed, versions served {sorted(set(served))}"
    )
