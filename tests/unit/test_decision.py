import numpy as np
import pytest

from kserve_kit.decision import decide, softmax, validate_threshold

pytestmark = pytest.mark.unit

LABELS = ("billing", "shipping", "account")


def test_softmax_rows_sum_to_one_and_keep_order():
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    p = softmax(logits)
    assert p.dtype == np.float32
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
    assert list(p[0].argsort()) == [0, 1, 2]
    np.testing.assert_allclose(p[1], 1 / 3, rtol=1e-6)


def test_softmax_is_stable_for_huge_logits():
    # exp(1000) overflows a naive softmax to inf/inf = nan.
    p = softmax(np.array([[1000.0, 999.0, -1000.0]]))
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p[0, :2], [1 / (1 + np.e**-1), 1 / (1 + np.e)], rtol=1e-5)


def test_softmax_rejects_wrong_rank():
    with pytest.raises(ValueError, match=r"\[N, C\]"):
        softmax(np.array([1.0, 2.0]))


def test_confident_rows_keep_their_label_and_unsure_rows_become_others():
    logits = np.array([[8.0, 0.0, 0.0], [0.3, 0.2, 0.1]])
    d = decide(logits, LABELS, threshold=0.9, others_label="others")
    assert d.labels == ["billing", "others"]
    assert d.confidence[0] > 0.99
    np.testing.assert_allclose(d.confidence, d.probabilities.max(axis=1))


def test_probability_exactly_at_threshold_keeps_label():
    # Two equal logits give exactly 0.5 each: at a threshold of 0.5 the label stands.
    logits = np.array([[0.0, 0.0]])
    d = decide(logits, ("a", "b"), threshold=0.5, others_label="others")
    assert d.confidence[0] == np.float32(0.5)
    assert d.labels == ["a"]
    just_above = np.nextafter(np.float32(0.5), np.float32(1.0))
    assert decide(logits, ("a", "b"), float(just_above), "others").labels == ["others"]


def test_ties_go_to_the_lowest_class_index():
    logits = np.array([[5.0, 5.0, 5.0], [1.0, 9.0, 9.0]])
    d = decide(logits, LABELS, threshold=0.1, others_label="others")
    assert d.labels == ["billing", "shipping"]


def test_single_class_is_always_certain():
    d = decide(np.array([[-3.0], [42.0]]), ("only",), threshold=0.99, others_label="others")
    assert d.labels == ["only", "only"]
    np.testing.assert_array_equal(d.confidence, [1.0, 1.0])


def test_labels_must_match_the_number_of_logits():
    with pytest.raises(ValueError, match="3 logits per row but has 2 labels"):
        decide(np.zeros((1, 3)), ("a", "b"), 0.5, "others")


@pytest.mark.parametrize("value", [0.5, "0.25", 0.999, 1e-9])
def test_valid_thresholds(value):
    assert 0 < validate_threshold(value) < 1


@pytest.mark.parametrize(
    "value, message",
    [
        (0, "in \\(0, 1\\)"),
        (1, "in \\(0, 1\\)"),
        (1.5, "in \\(0, 1\\)"),
        (-0.1, "in \\(0, 1\\)"),
        ("nan", "in \\(0, 1\\)"),
        ("inf", "in \\(0, 1\\)"),
        ("high", "a number"),
        (True, "got bool"),
        (None, "got NoneType"),
        ([0.5], "got list"),
    ],
)
def test_invalid_thresholds_say_why(value, message):
    with pytest.raises(ValueError, match=message):
        validate_threshold(value)


def test_temperature_divides_the_logits_before_the_softmax():
    logits = np.array([[4.0, 2.0, 0.0]])
    scaled = decide(logits, LABELS, 0.5, "others", temperature=2.0)
    np.testing.assert_allclose(scaled.probabilities, softmax(logits / 2.0))
    assert scaled.labels == ["billing"]  # 0.665 at T = 2
    assert decide(logits, LABELS, 0.7, "others", temperature=2.0).labels == ["others"]
    assert decide(logits, LABELS, 0.7, "others", temperature=0.5).labels == ["billing"]
    unscaled = decide(logits, LABELS, 0.5, "others", temperature=1.0)
    np.testing.assert_array_equal(unscaled.probabilities, softmax(logits))


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan"), float("inf")])
def test_a_temperature_must_be_finite_and_positive(temperature):
    with pytest.raises(ValueError, match="finite number > 0"):
        decide(np.zeros((1, 3)), LABELS, 0.5, "others", temperature=temperature)


def test_the_threshold_of_the_top_class_applies():
    # Both rows have top probability 0.787 (logits 3, 1, 1): billing's own threshold 0.9 refuses
    # it, shipping falls back to the default 0.75 and keeps it.
    logits = np.array([[3.0, 1.0, 1.0], [1.0, 3.0, 1.0]])
    d = decide(logits, LABELS, 0.75, "others", class_thresholds={"billing": 0.9})
    assert d.labels == ["others", "shipping"]
    d = decide(logits, LABELS, 0.95, "others", class_thresholds={"shipping": 0.5})
    assert d.labels == ["others", "shipping"]
    assert decide(logits, LABELS, 0.75, "others", class_thresholds={}).labels == [
        "billing",
        "shipping",
    ]


def test_a_class_threshold_equal_to_the_confidence_keeps_the_label():
    logits = np.array([[0.0, 0.0, -50.0]])  # 0.5, 0.5: billing by the tie rule
    d = decide(logits, LABELS, 0.9, "others", class_thresholds={"billing": 0.5})
    assert d.confidence[0] == np.float32(0.5) and d.labels == ["billing"]


def test_a_request_s_threshold_is_read_from_what_the_codec_found():
    from kserve_kit.decision import requested_threshold

    assert requested_threshold(None, allow_override=False) is None  # none sent: nothing refused
    assert requested_threshold(("double_param", 0.25), allow_override=True) == 0.25
    assert requested_threshold(("string", "0.5"), allow_override=True) == 0.5
    with pytest.raises(ValueError, match="number or string or double_param or string_param"):
        requested_threshold(("bool_param", True), allow_override=True)
    with pytest.raises(ValueError, match="its threshold is fixed"):
        requested_threshold(("number", 0.5), allow_override=False)
