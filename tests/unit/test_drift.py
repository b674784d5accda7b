"""Drift scores against hand-computed values: PSI, confidence bins, the sliding window."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kserve_kit.drift import EPSILON, DriftWindow, Reference, confidence_bin, psi

pytestmark = pytest.mark.unit

LABELS = ("a", "b", "others")


def test_psi_of_a_known_shift():
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5)
    expected = 0.25 * math.log(2) + 0.25 * math.log(1.5)
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(expected, rel=1e-12)
    assert psi([1, 1], [1, 3]) == pytest.approx(expected, rel=1e-12)  # counts are normalised


def test_psi_is_zero_for_the_same_distribution_and_finite_for_an_empty_bin():
    assert psi([0.2, 0.3, 0.5], [20, 30, 50]) == pytest.approx(0.0, abs=1e-12)
    # An empty bin counts as EPSILON: (1 - EPSILON) ln((1 - EPSILON)/0.5)... per bin, by hand.
    shares = np.maximum(np.array([1.0, 0.0]), EPSILON)
    by_hand = sum((a - 0.5) * math.log(a / 0.5) for a in shares)
    assert psi([0.5, 0.5], [1.0, 0.0]) == pytest.approx(by_hand, rel=1e-12)


def test_psi_refuses_vectors_of_different_lengths():
    with pytest.raises(ValueError, match="one length"):
        psi([0.5, 0.5], [1.0])


def test_confidence_bins_are_equal_widths_with_one_in_the_last():
    assert confidence_bin(np.array([0.0, 0.09, 0.1, 0.55, 0.999, 1.0])).tolist() == [
        0,
        0,
        1,
        5,
        9,
        9,
    ]


def test_the_window_keeps_the_last_decisions_and_scores_them():
    reference = Reference(LABELS, (0.5, 0.5, 0.0), (0.0,) * 9 + (1.0,), rows=10)
    window = DriftWindow(reference, size=4)
    assert window.scores() == {"label": 0.0, "confidence": 0.0}
    window.add(["a", "b", "a", "b"], np.array([1.0, 1.0, 1.0, 1.0]))
    assert window.scores()["label"] == pytest.approx(0.0, abs=1e-12)
    assert window.scores()["confidence"] == pytest.approx(0.0, abs=1e-12)
    # Four more push the first four out: all "others", all at 0.45 confidence.
    window.add(["others"] * 4, np.full(4, 0.45))
    assert len(window) == 4
    label_psi = psi([0.5, 0.5, 0.0], [0.0, 0.0, 1.0])
    confidence_psi = psi([0.0] * 9 + [1.0], [0.0] * 4 + [1.0] + [0.0] * 5)
    assert window.scores() == pytest.approx({"label": label_psi, "confidence": confidence_psi})
    assert label_psi > 0.2  # a large shift, as the alert reads it


def test_a_reference_round_trips_and_refuses_other_labels(tmp_path):
    reference = Reference.from_decisions(LABELS, ["a", "a", "others", "b"], [0.95, 0.99, 0.3, 0.8])
    assert reference.label_shares == (0.5, 0.25, 0.25)
    assert reference.confidence_shares[3] == 0.25 and reference.confidence_shares[9] == 0.5
    path = tmp_path / "drift-reference.json"
    path.write_text(reference.to_json())
    assert Reference.load(path, LABELS) == reference
    with pytest.raises(ValueError, match="labels: expected"):
        Reference.load(path, ("a", "b", "c", "others"))
    path.write_text("{}")
    with pytest.raises(ValueError, match="not a drift reference"):
        Reference.load(path, LABELS)
