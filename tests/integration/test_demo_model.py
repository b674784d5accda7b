"""The trained demo model through both servers: right labels in domain, `others` outside it."""

import json
from pathlib import Path

import numpy as np
import pytest

from demo.build import load_examples, load_out_of_domain, split
from tests.support.http import infer_url, outputs, post, texts_body

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[1] / "data"


def classify(transformer, texts, **extra):
    labels, probabilities = [], []
    for start in range(0, len(texts), 32):
        status, body = post(infer_url(transformer), texts_body(texts[start : start + 32], **extra))
        assert status == 200, body
        out = outputs(body)
        labels += out["label"]["data"]
        probabilities += (
            np.array(out["probabilities"]["data"]).reshape(out["probabilities"]["shape"]).tolist()
        )
    return labels, np.array(probabilities)


def test_held_out_texts_get_their_labels(demo_chain):
    transformer, _ = demo_chain
    _, heldout = split(load_examples())
    texts, expected = zip(*heldout, strict=True)
    labels, _ = classify(transformer, list(texts), parameters={"confidence_threshold": 0.01})
    accuracy = np.mean([a == b for a, b in zip(labels, expected, strict=True)])
    assert accuracy >= 0.9, f"held-out accuracy through the servers: {accuracy:.3f}"
    # At the default threshold the model may refuse a few, but never answers a wrong class often.
    labels, _ = classify(transformer, list(texts))
    wrong = [
        (t, a, b) for t, a, b in zip(texts, labels, expected, strict=True) if a not in (b, "others")
    ]
    assert len(wrong) <= 2, wrong


def test_out_of_domain_texts_get_others(demo_chain):
    transformer, _ = demo_chain
    texts = load_out_of_domain()
    labels, _ = classify(transformer, texts)
    share = labels.count("others") / len(texts)
    assert share >= 0.9, f"only {share:.0%} of out-of-domain texts became 'others'"


def test_golden_request_gives_the_golden_response(demo_chain):
    transformer, _ = demo_chain
    request = json.loads((DATA / "golden_request.json").read_text())
    golden = json.loads((DATA / "golden_response.json").read_text())
    status, body = post(infer_url(transformer), request)
    assert status == 200, body
    assert body["id"] == golden["id"] and body["model_name"] == golden["model_name"]
    assert body["model_version"].startswith("demo-")
    got, want = outputs(body), outputs(golden)
    assert got.keys() == want.keys()
    for name in want:
        assert (got[name]["datatype"], got[name]["shape"]) == (
            want[name]["datatype"],
            want[name]["shape"],
        )
    assert got["label"]["data"] == want["label"]["data"]
    # Training is seeded but float sums depend on the CPU's thread count: allow for that.
    np.testing.assert_allclose(
        got["probabilities"]["data"], want["probabilities"]["data"], atol=0.02
    )
