"""Calibration with known answers: a temperature given back, thresholds computed by hand."""

import math

import numpy as np
import pytest

from kserve_kit import calibration as cal
from kserve_kit.calibration import OTHERS

pytestmark = pytest.mark.unit


def sampled(temperature: float, n: int = 15000, classes: int = 5, seed: int = 7):
    """Logits, and labels drawn from softmax(logits / temperature): the model's probabilities
    are right once divided by `temperature`."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 3.0, size=(n, classes))
    p = cal.probabilities(logits, temperature)
    targets = (rng.random((n, 1)) > p.cumsum(axis=1)).sum(axis=1)
    return logits, np.minimum(targets, classes - 1)


@pytest.mark.parametrize("true_t", [0.5, 1.0, 2.5])
@pytest.mark.parametrize("prior_sigma", [None, cal.PRIOR_SIGMA])
def test_a_known_temperature_is_given_back_within_5_percent(true_t, prior_sigma):
    logits, targets = sampled(true_t)
    fitted = cal.fit_temperature(logits, targets, prior_sigma=prior_sigma)
    assert abs(fitted / true_t - 1) < 0.05, (true_t, fitted)


def test_the_fit_minimises_the_nll():
    logits, targets = sampled(1.7, n=3000)
    t = cal.fit_temperature(logits, targets, prior_sigma=None)
    best = cal.nll(logits, targets, t)
    for other in (t * 0.97, t * 1.03):
        assert cal.nll(logits, targets, other) > best


def test_separable_rows_stop_at_the_bound_without_the_prior_and_stay_finite_with_it():
    # Every row right and confident: the NLL alone falls all the way to T -> 0.
    logits = np.array([[4.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 5.0]] * 10)
    targets = np.array([0, 1, 2] * 10)
    bare = cal.fit_temperature(logits, targets, prior_sigma=None)
    assert bare == pytest.approx(cal.TEMPERATURE_BOUNDS[0], rel=1e-3)
    regularised = cal.fit_temperature(logits, targets)
    assert 0.1 < regularised < 1.0
    assert cal.probabilities(logits, regularised).max() < np.float32(1.0)


def test_the_temperature_is_fitted_on_in_domain_rows_only():
    with pytest.raises(ValueError, match="in-domain rows only"):
        cal.fit_temperature(np.zeros((2, 3)), np.array([0, OTHERS]))
    with pytest.raises(ValueError, match="at least one"):
        cal.fit_temperature(np.zeros((0, 3)), np.array([], dtype=int))


def test_ece_by_hand():
    # 0.95 twice (one right): bin 15, gap 0.45; 0.65 twice (both right): bin 10, gap 0.35.
    confidence = np.array([0.95, 0.95, 0.65, 0.65])
    correct = np.array([True, False, True, True])
    assert cal.ece(confidence, correct) == pytest.approx(0.5 * 0.45 + 0.5 * 0.35)
    bins = cal.reliability(confidence, correct)
    assert len(bins.count) == 15 and bins.count.sum() == 4
    assert bins.count[14] == 2 and bins.count[9] == 2
    assert bins.accuracy[14] == 0.5 and bins.confidence[9] == pytest.approx(0.65)


def test_ece_bins_are_closed_on_the_right():
    bins = cal.reliability(np.array([0.0, 1.0, 0.5]), np.array([True, True, False]))
    assert bins.count[0] == 1 and bins.count[14] == 1 and bins.count[7] == 1  # 0.5 in (7/15, 8/15]
    assert cal.ece(np.array([1.0, 1.0]), np.array([True, True])) == 0.0


def test_brier_by_hand():
    probs = np.array([[0.7, 0.2, 0.1], [0.5, 0.5, 0.0]])
    # (0.09 + 0.04 + 0.01 + 0.25 + 0.25 + 0) / 2
    assert cal.brier(probs, np.array([0, 1])) == pytest.approx(0.32)


CONF = np.array([0.99, 0.95, 0.9, 0.8, 0.7, 0.6], dtype=np.float32)
RIGHT = np.array([True, True, False, True, True, False])


@pytest.mark.parametrize(
    "target, expected",
    [
        # answered from the top: 1/1, 2/2, 2/3, 3/4, 4/5, 4/6
        (0.75, 0.7),  # 3/4 and 4/5 reach it; the lowest is 0.7
        (0.8, 0.7),
        (0.81, 0.95),
        (1.0, 0.95),
        (0.5, 0.6),  # everything
    ],
)
def test_lowest_threshold_reaching_a_precision_by_hand(target, expected):
    assert cal.precision_threshold(CONF, RIGHT, target) == np.float32(expected)


def test_a_threshold_answers_a_whole_tie_at_once():
    conf = np.array([0.9, 0.9, 0.8], dtype=np.float32)
    right = np.array([True, False, True])
    assert cal.precision_threshold(conf, right, 0.6) == np.float32(0.8)  # 2/3
    assert cal.precision_threshold(conf, right, 0.9) is None  # 0.9 answers both tied rows: 1/2


def test_an_unreachable_precision_has_no_threshold():
    assert cal.precision_threshold(np.array([0.9, 0.8]), np.array([False, True]), 0.9) is None
    assert cal.precision_threshold(np.array([]), np.array([], dtype=bool), 0.9) is None


def test_per_class_thresholds_with_support_fallback_and_others_rows_by_hand():
    labels = ("a", "b")
    # class a: 0.9 right, 0.8 right, 0.7 an others row (wrong), 0.6 right
    # class b: 0.95 a wrong class, 0.85 right
    predicted = np.array([0, 0, 0, 0, 1, 1])
    confidence = np.array([0.9, 0.8, 0.7, 0.6, 0.95, 0.85], dtype=np.float32)
    targets = np.array([0, 0, OTHERS, 0, 0, 1])
    # a: 1/1, 2/2, 2/3, 3/4 -> 0.6. All: 0.95 x, 0.9, 0.85, 0.8 -> 3/4 at 0.8; 0.7 x -> 3/5,
    # 0.6 -> 4/6: the global threshold is 0.8. b has 2 rows: below min_support 3, global.
    global_t, choices = cal.choose_thresholds(predicted, confidence, targets, labels, 0.75, 3)
    assert global_t == np.float32(0.8)
    a, b = choices
    assert (a.label, a.support, a.threshold, a.source) == ("a", 4, np.float32(0.6), "class")
    assert a.precision == 0.75
    assert (b.support, b.threshold, b.source) == (2, np.float32(0.8), "global")
    assert b.precision == 0.5  # at 0.8 both its rows are answered, one of them wrong
    # With enough support b gets its own: 0/1 at 0.95, 1/2 at 0.85: unreachable.
    _, (_, b) = cal.choose_thresholds(predicted, confidence, targets, labels, 0.75, 2)
    assert (b.threshold, b.source) == (cal.HIGHEST_THRESHOLD, "unreachable")


def test_coverage_threshold_by_hand():
    conf = np.array([0.6, 0.9, 0.7, 0.8], dtype=np.float32)
    assert cal.coverage_threshold(conf, 0.5) == np.float32(0.8)
    assert cal.coverage_threshold(conf, 0.6) == np.float32(0.7)  # ceil(2.4) = 3 rows
    assert cal.coverage_threshold(conf, 1.0) == np.float32(0.6)


def test_thresholds_stay_below_one():
    assert cal.precision_threshold(np.array([1.0]), np.array([True]), 0.9) < 1.0
    assert cal.coverage_threshold(np.array([1.0, 1.0]), 0.5) < 1.0


def test_risk_coverage_by_hand():
    coverage, risk = cal.risk_coverage(np.array([0.5, 0.9, 0.7]), np.array([True, False, True]))
    np.testing.assert_allclose(coverage, [1 / 3, 2 / 3, 1.0])
    np.testing.assert_allclose(risk, [1.0, 0.5, 1 / 3])


def test_wilson_interval_known_values():
    low, high = cal.wilson(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = cal.wilson(95, 100)
    assert (low, high) == pytest.approx((0.8883, 0.9785), abs=1e-4)
    assert cal.wilson(0, 0) == (0.0, 1.0)


def test_answer_figures_count_answered_others_rows_as_errors():
    figures = cal.answer_figures(
        answers=["a", "others", "b", "a", "others"],
        truth=["a", "a", "others", "b", "others"],
        labels=("a", "b"),
        others_label="others",
    )
    assert (figures["rows"], figures["in_domain_rows"], figures["others_rows"]) == (5, 3, 2)
    assert figures["answered"] == 3 and figures["answered_right"] == 1
    assert figures["coverage"] == 0.6 and figures["precision"] == pytest.approx(1 / 3)
    assert figures["in_domain_coverage"] == pytest.approx(2 / 3)
    assert figures["others_refused"] == 1 and figures["others_refused_share"] == 0.5
    assert figures["per_class"]["a"] == {
        "rows": 2,
        "answered_as": 2,
        "right": 1,
        "precision": 0.5,
        "recall": 0.5,
    }
    assert figures["per_class"]["b"]["answered_as"] == 1 and figures["per_class"]["b"]["right"] == 0


def test_calibration_figures_get_better_at_the_fitted_temperature():
    logits, targets = sampled(3.0, n=5000)
    before = cal.calibration_figures(logits, targets, 1.0)
    after = cal.calibration_figures(logits, targets, cal.fit_temperature(logits, targets))
    assert after["ece"] < before["ece"] and after["nll"] < before["nll"]
    assert after["brier"] < before["brier"]
    assert math.isclose(before["temperature"], 1.0)


def test_label_indices():
    got = cal.label_indices(["b", "others", "a"], ("a", "b"), "others")
    assert got.tolist() == [1, OTHERS, 0]
    with pytest.raises(ValueError, match=r"label 'c': expected one of the model's labels \(a, b\)"):
        cal.label_indices(["c"], ("a", "b"), "others")
