"""The decision policy as data: what it decides, what it refuses to load, where it is found."""

import json

import numpy as np
import pytest

from kserve_kit.decision import decide
from kserve_kit.policy import (
    FILE_NAME,
    DecisionPolicy,
    PolicyError,
    load_policy,
    parse_policy,
    policy_file_for,
    resolve_policy,
)

pytestmark = pytest.mark.unit

LABELS = ("billing", "shipping", "account")
MODEL = "demo-0123456789ab"
GOOD = {
    "format": 1,
    "version": "cal-test",
    "model_version": MODEL,
    "others_label": "others",
    "temperature": 2.0,
    "threshold": 0.6,
    "class_thresholds": {"shipping": 0.9},
    "provenance": {"data": {"sha256": "ab" * 32, "rows": 10}},
}


def parse(doc, model_version=MODEL):
    return parse_policy(doc, "policy.json", LABELS, model_version)


def test_flags_policy_decides_as_decide_and_has_a_version_from_its_content():
    policy = DecisionPolicy.from_flags(0.9, "others")
    logits = np.array([[8.0, 0.0, 0.0], [0.3, 0.2, 0.1], [0.0, 9.0, 0.0]])
    got, want = policy.decide(logits, LABELS), decide(logits, LABELS, 0.9, "others")
    assert got.labels == want.labels == ["billing", "others", "shipping"]
    np.testing.assert_array_equal(got.probabilities, want.probabilities)
    assert policy.version == DecisionPolicy.from_flags(0.9, "others").version
    assert policy.version.startswith("flags-") and len(policy.version) == len("flags-") + 12
    assert policy.version != DecisionPolicy.from_flags(0.8, "others").version
    assert policy.version != DecisionPolicy.from_flags(0.9, "unsure").version
    with pytest.raises(ValueError, match=r"in \(0, 1\)"):
        DecisionPolicy.from_flags(1.0, "others")


def test_temperature_and_the_top_class_threshold_decide():
    policy = parse(GOOD)
    # logits / 2 -> [3, 0, 0]: p = 0.910 billing (threshold 0.6: answered);
    # [0, 3, 0]: 0.910 shipping (threshold 0.9: answered); [0, 2, 0]: 0.787 shipping (refused)
    logits = np.array([[6.0, 0.0, 0.0], [0.0, 6.0, 0.0], [0.0, 4.0, 0.0]])
    d = policy.decide(logits, LABELS)
    assert d.labels == ["billing", "shipping", "others"]
    np.testing.assert_allclose(d.confidence, [0.9094, 0.9094, 0.7870], atol=1e-4)
    np.testing.assert_allclose(d.probabilities, decide(logits / 2, LABELS, 0.5, "x").probabilities)


def test_a_request_threshold_replaces_the_default_and_every_class_threshold():
    policy = parse(GOOD)
    logits = np.array([[6.0, 0.0, 0.0], [0.0, 4.0, 0.0]])  # 0.909 billing, 0.787 shipping
    assert policy.decide(logits, LABELS, threshold_override=0.95).labels == ["others", "others"]
    assert policy.decide(logits, LABELS, threshold_override=0.7).labels == ["billing", "shipping"]
    with pytest.raises(ValueError, match=r"in \(0, 1\)"):
        policy.decide(logits, LABELS, threshold_override=1.5)


def test_to_json_reads_back_to_an_equal_policy(tmp_path):
    policy = parse(GOOD)
    path = tmp_path / FILE_NAME
    path.write_text(policy.to_json())
    again = load_policy(path, LABELS, MODEL)
    assert again == policy
    assert json.loads(path.read_text()) == GOOD
    assert list(json.loads(path.read_text())) == list(GOOD)  # the documented key order


def test_the_policy_cannot_be_changed_under_its_readers():
    policy = parse(GOOD)
    with pytest.raises(TypeError):
        policy.class_thresholds["billing"] = 0.1
    with pytest.raises(AttributeError):
        policy.threshold = 0.1


def test_optional_keys_may_be_left_out_and_a_null_model_version_fits_any_model():
    minimal = {k: GOOD[k] for k in ("format", "version", "others_label", "temperature")}
    policy = parse({**minimal, "threshold": 0.5}, model_version="another-model")
    assert policy.class_thresholds == {} and policy.model_version is None
    assert policy.provenance == {}


def bad(**changes):
    doc = {**GOOD, **changes}
    return {k: v for k, v in doc.items() if v is not DROP}


DROP = object()


@pytest.mark.parametrize(
    "doc, key, expected, got",
    [
        ("{not json", "(file)", "JSON", "invalid JSON"),
        ("[1, 2]", "(file)", "a JSON object", "list"),
        (bad(colour="blue"), "colour", "only the keys format, version", "unknown keys"),
        (bad(temperature=DROP), "temperature", "a value (required)", "nothing"),
        (bad(format=2), "format", "1 (the layout this kit reads)", "2"),
        (bad(format=True), "format", "1", "true"),
        (bad(version=""), "version", "a non-empty string", '""'),
        (bad(others_label=3), "others_label", "a non-empty string", "3"),
        (bad(threshold=0), "threshold", "a number in (0, 1)", "0"),
        (bad(threshold=1), "threshold", "a number in (0, 1)", "1"),
        (bad(threshold=1.5), "threshold", "a number in (0, 1)", "1.5"),
        (bad(threshold="0.9"), "threshold", "a number in (0, 1)", '"0.9"'),
        (bad(threshold=None), "threshold", "a number in (0, 1)", "null"),
        (bad(temperature=0), "temperature", "a finite number > 0", "0"),
        (bad(temperature=-1.5), "temperature", "a finite number > 0", "-1.5"),
        (bad(temperature=float("inf")), "temperature", "a finite number > 0", "Infinity"),
        (bad(temperature=float("nan")), "temperature", "a finite number > 0", "NaN"),
        (bad(temperature="1"), "temperature", "a finite number > 0", '"1"'),
        (bad(temperature=False), "temperature", "a finite number > 0", "false"),
        (
            bad(class_thresholds={"refunds": 0.5}),
            "class_thresholds.refunds",
            "a label of the model (billing, shipping, account)",
            '"refunds"',
        ),
        (
            bad(class_thresholds={"billing": 1.0}),
            "class_thresholds.billing",
            "a number in (0, 1)",
            "1.0",
        ),
        (bad(class_thresholds=[0.5]), "class_thresholds", "an object of label", "[0.5]"),
        (
            bad(model_version="demo-other"),
            "model_version",
            f"the served model's version '{MODEL}'",
            '"demo-other"',
        ),
        (bad(model_version=7), "model_version", "a string or null", "7"),
        (bad(provenance="hand-made"), "provenance", "an object", '"hand-made"'),
    ],
)
def test_a_bad_policy_is_refused_in_one_line_naming_file_key_expected_and_got(
    doc, key, expected, got
):
    with pytest.raises(PolicyError) as caught:
        parse(doc)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"policy.json: {key}: expected ")
    assert expected in message and f", got {got}" in message
    assert caught.value.key == key


def test_nan_and_infinity_in_the_file_text_are_refused(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(GOOD).replace('"temperature": 2.0', '"temperature": NaN'))
    with pytest.raises(PolicyError, match=r"p\.json: temperature: expected a finite number > 0"):
        load_policy(path, LABELS, MODEL)


def test_a_file_that_is_missing_or_not_text_is_refused(tmp_path):
    with pytest.raises(PolicyError, match=r"nope\.json: \(file\): expected a policy file, got"):
        load_policy(tmp_path / "nope.json", LABELS, MODEL)
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(PolicyError, match=r"bin\.json: \(file\): expected a readable UTF-8 file"):
        load_policy(tmp_path / "bin.json", LABELS, MODEL)


def test_policy_file_for_prefers_the_flag_then_the_model_directory(tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    assert policy_file_for(None, model_dir) is None
    assert policy_file_for("", model_dir) is None
    (model_dir / FILE_NAME).write_text("{}")
    assert policy_file_for(None, model_dir) == model_dir / FILE_NAME
    other = tmp_path / "other.json"
    other.write_text("{}")
    assert policy_file_for(str(other), model_dir) == other
    assert policy_file_for("none", model_dir) is None  # the flags, whatever the directory holds
    with pytest.raises(PolicyError, match=r"missing\.json: --policy_file: expected an existing"):
        policy_file_for(str(tmp_path / "missing.json"), model_dir)


def test_resolve_policy_falls_back_to_the_flags(tmp_path):
    flags = resolve_policy(None, tmp_path, LABELS, MODEL, 0.8, "unsure")
    assert flags == DecisionPolicy.from_flags(0.8, "unsure")
    (tmp_path / FILE_NAME).write_text(json.dumps(GOOD))
    assert resolve_policy(None, tmp_path, LABELS, MODEL, 0.8, "unsure").version == "cal-test"
    with pytest.raises(PolicyError, match="model_version"):
        resolve_policy(None, tmp_path, LABELS, "demo-another", 0.8, "unsure")
    assert resolve_policy("none", tmp_path, LABELS, MODEL, 0.8, "unsure") == flags


def test_the_shared_flag_exists_with_its_default():
    import argparse

    from kserve_kit.settings import TextSettings, add_text_arguments

    parser = argparse.ArgumentParser()
    add_text_arguments(parser)
    args = parser.parse_args([])
    assert args.policy_file is None
    assert TextSettings.from_namespace(args).policy_file is None
    args = parser.parse_args(["--policy_file", "/etc/kit/policy.json"])
    assert TextSettings.from_namespace(args).policy_file == "/etc/kit/policy.json"
    assert "policy.json" in parser.format_help()
    no_policy = argparse.ArgumentParser()
    add_text_arguments(no_policy, policy_file=False)
    assert "policy_file" not in vars(no_policy.parse_args([]))
