"""The transformer's own metrics: what it decided, how sure it was, how the hop to the predictor
went, and how far recent decisions drift from the reference (docs/observability.md).

Label values are bounded: labels come from the model's id2label and the policy's others label,
versions from the model and the policies served, error kinds from the kit's own set.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DECISIONS = Counter(
    "kserve_kit_decisions",
    "Texts answered, by the label answered (the others label included) and the versions",
    ["label", "model_version", "policy_version"],
)
CONFIDENCE = Histogram(
    "kserve_kit_decision_confidence",
    "Top probability of each text answered, under the policy that answered it",
    ["policy_version"],
    buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0),
)
HOP_SECONDS = Histogram(
    "kserve_kit_hop_seconds",
    "Time of the call from the transformer to the predictor",
    ["protocol"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
HOP_ERRORS = Counter(
    "kserve_kit_hop_errors",
    "Calls to the predictor that failed, by the error the client was answered",
    ["error"],
)
DRIFT_PSI = Gauge(
    "kserve_kit_drift_psi",
    "Population stability index of the recent decisions against the reference, per dimension",
    ["dimension"],
)
DRIFT_WINDOW = Gauge(
    "kserve_kit_drift_window_decisions",
    "Decisions in the drift window (the scores mean most once it is full)",
)
DRIFT_WINDOW_SIZE = Gauge(
    "kserve_kit_drift_window_size", "Decisions the drift window holds when full"
)


def watch_drift(window) -> None:
    """The drift gauges read `window` when scraped: a score costs its bins once per scrape
    instead of once per request. (The scrape and the requests share the event loop.)"""
    DRIFT_WINDOW_SIZE.set(window.size)
    DRIFT_WINDOW.set_function(lambda: len(window))
    for dimension in ("label", "confidence"):
        DRIFT_PSI.labels(dimension).set_function(lambda d=dimension: window.scores()[d])


def start_series(labels, model_version: str, policy_version: str) -> None:
    """Every decision series at zero for a policy coming into service, so that a share or a
    rate over them has a beginning (a series that first appears at 1 hides that first count)."""
    for label in labels:
        DECISIONS.labels(label, model_version, policy_version)
    CONFIDENCE.labels(policy_version)
