"""Calibration from labelled logits: the temperature, the thresholds, and the figures that say
what they buy, and the policy fitted with them. Pure numpy: no torch, no kserve;
`offline.calibrate` feeds it the serving model's logits.

Rows carry a target class index, or `OTHERS` (-1) for a row labelled with the others label (a
text the model should refuse): such a row answered with any class is an error. The temperature
is fitted on in-domain rows only (an others row has no right class to put probability on).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from kserve_kit.policy import DecisionPolicy, content_hash

OTHERS = -1
ECE_BINS = 15
# The bounds of the temperature search: far beyond any useful calibration on either side.
TEMPERATURE_BOUNDS = (0.05, 20.0)
# The prior on log T (see fit_temperature): sigma 1, T within [0.14, 7.4] at two sigmas.
PRIOR_SIGMA = 1.0
# The largest float32 below 1: the highest threshold a policy may hold ((0, 1) is open).
HIGHEST_THRESHOLD = float(np.nextafter(np.float32(1.0), np.float32(0.0)))
DEFAULT_TARGET_PRECISION = 0.95


# ----------------------------------------------------------------------------- probabilities


def log_softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise log-softmax of `logits / temperature`, float64."""
    x = np.asarray(logits, dtype=np.float64) / temperature
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def probabilities(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return np.exp(log_softmax(logits, temperature))


def nll(logits: np.ndarray, targets: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the target classes (all rows must be in domain)."""
    targets = np.asarray(targets)
    logp = log_softmax(logits, temperature)
    return float(-logp[np.arange(len(targets)), targets].mean())


def fit_temperature(
    logits: np.ndarray,
    targets: np.ndarray,
    prior_sigma: float | None = PRIOR_SIGMA,
    bounds: tuple[float, float] = TEMPERATURE_BOUNDS,
    tol: float = 1e-5,
) -> float:
    """The temperature that minimises the summed NLL of in-domain rows, plus, unless
    `prior_sigma` is None, a weak log-normal prior on T around 1: (log T)^2 / (2 sigma^2).

    Why the prior: when every calibration row is right (a small set, a good model) the NLL
    alone keeps falling as T -> 0, the probabilities saturate to 1.0 in float32, every row ties
    at the top and no threshold can separate anything. The prior weighs as much as one row's
    NLL, so it decides only where the data do not: with a few hundred rows and some errors it
    moves T by well under 1 %.

    The search: a grid over log T within `bounds`, then golden-section refinement to `tol`
    (relative) around the best grid point.
    """
    logits = np.asarray(logits, dtype=np.float64)
    targets = np.asarray(targets)
    if len(targets) == 0:
        raise ValueError("fitting a temperature needs at least one in-domain row, got none")
    if (targets < 0).any():
        raise ValueError("the temperature is fitted on in-domain rows only, got others rows")

    def objective(u: float) -> float:
        total = nll(logits, targets, math.exp(u)) * len(targets)
        return total if prior_sigma is None else total + u * u / (2 * prior_sigma**2)

    grid = np.linspace(math.log(bounds[0]), math.log(bounds[1]), 41)
    values = [objective(u) for u in grid]
    best = int(np.argmin(values))
    lo, hi = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = objective(a), objective(b)
    while hi - lo > tol:
        if fa <= fb:  # the minimum is left of b
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = objective(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = objective(b)
    return math.exp((lo + hi) / 2)


# ----------------------------------------------------------------------------- calibration error


@dataclass(frozen=True)
class Bins:
    """A reliability diagram's data: equal-width bins of confidence over [0, 1]."""

    edges: np.ndarray  # [B + 1]
    count: np.ndarray  # [B] rows whose confidence falls in the bin
    confidence: np.ndarray  # [B] mean confidence in the bin (nan when empty)
    accuracy: np.ndarray  # [B] share right in the bin (nan when empty)


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> Bins:
    """Bin i holds the confidences in (i/B, (i+1)/B]; bin 0 also holds 0."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(index, weights=confidence, minlength=bins) / count
        accuracy = np.bincount(index, weights=correct, minlength=bins) / count
    return Bins(edges=edges, count=count, confidence=mean_conf, accuracy=accuracy)


def ece(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error: the row-weighted mean over equal-width bins of
    |accuracy - mean confidence|."""
    b = reliability(confidence, correct, bins)
    filled = b.count > 0
    gaps = np.abs(b.accuracy[filled] - b.confidence[filled])
    return float((gaps * b.count[filled]).sum() / b.count.sum())


def brier(probs: np.ndarray, targets: np.ndarray) -> float:
    """Multi-class Brier score: the mean over rows of sum_c (p_c - [c is the target])^2,
    between 0 (certain and right) and 2 (certain and wrong)."""
    probs = np.asarray(probs, dtype=np.float64)
    onehot = np.zeros_like(probs)
    onehot[np.arange(len(targets)), np.asarray(targets)] = 1.0
    return float(((probs - onehot) ** 2).sum(axis=1).mean())


# ----------------------------------------------------------------------------- thresholds


def precision_threshold(confidence: np.ndarray, correct: np.ndarray, target: float) -> float | None:
    """The lowest threshold whose precision reaches `target`: among the rows' confidences,
    the lowest value t such that the rows with confidence >= t are right in at least `target`
    of cases. None when no threshold reaches it (or there are no rows)."""
    confidence = np.asarray(confidence, dtype=np.float32)
    if len(confidence) == 0:
        return None
    order = np.argsort(-confidence, kind="stable")
    conf = confidence[order]
    right = np.cumsum(np.asarray(correct, dtype=np.int64)[order])
    answered = np.arange(1, len(conf) + 1)
    # A threshold answers every row with the same confidence at once: look at tie-group ends.
    ends = np.flatnonzero(np.append(conf[1:] != conf[:-1], True))
    reaches = right[ends] >= target * answered[ends] - 1e-9
    if not reaches.any():
        return None
    return _as_threshold(conf[ends[reaches][-1]])


def coverage_threshold(confidence: np.ndarray, coverage: float) -> float:
    """The highest threshold that answers at least `coverage` of the rows."""
    conf = np.sort(np.asarray(confidence, dtype=np.float32))[::-1]
    if len(conf) == 0:
        raise ValueError("choosing a threshold for a coverage needs rows, got none")
    k = max(1, math.ceil(coverage * len(conf) - 1e-9))
    return _as_threshold(conf[min(k, len(conf)) - 1])


def _as_threshold(value) -> float:
    """A confidence as a threshold in (0, 1): exact in float32, at most HIGHEST_THRESHOLD."""
    return min(float(np.float32(value)), HIGHEST_THRESHOLD)


@dataclass(frozen=True)
class ClassChoice:
    """How one class's threshold was chosen on the calibration part."""

    label: str
    support: int  # calibration rows whose top class is this one
    threshold: float
    source: str  # "class", "global" (support below the minimum), "unreachable"
    precision: float | None  # calibration precision at the threshold (None: nothing answered)


def choose_thresholds(
    predicted: np.ndarray,
    confidence: np.ndarray,
    targets: np.ndarray,
    labels: Sequence[str],
    target_precision: float,
    min_support: int,
) -> tuple[float, list[ClassChoice]]:
    """(global threshold, per-class choices) for a target precision.

    The global threshold is the lowest whose precision over all rows reaches the target. Each
    class with at least `min_support` rows predicted as it gets its own: the lowest whose
    precision over those rows reaches the target, or HIGHEST_THRESHOLD (refuse nearly all)
    when none does. A class with less support takes the global threshold. Others rows count
    as errors wherever they are answered.
    """
    predicted, targets = np.asarray(predicted), np.asarray(targets)
    confidence = np.asarray(confidence, dtype=np.float32)
    correct = predicted == targets
    found = precision_threshold(confidence, correct, target_precision)
    global_threshold = HIGHEST_THRESHOLD if found is None else found
    choices = []
    for k, label in enumerate(labels):
        mine = predicted == k
        support = int(mine.sum())
        if support < min_support:
            threshold, source = global_threshold, "global"
        else:
            found = precision_threshold(confidence[mine], correct[mine], target_precision)
            threshold, source = (
                (HIGHEST_THRESHOLD, "unreachable") if found is None else (found, "class")
            )
        answered = mine & (confidence >= np.float32(threshold))
        precision = float(correct[answered].mean()) if answered.any() else None
        choices.append(ClassChoice(label, support, threshold, source, precision))
    return global_threshold, choices


def risk_coverage(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(coverage, risk) as one threshold sweeps from the highest confidence down: after the k
    most confident rows, coverage k/N and risk = the share of them that are wrong."""
    order = np.argsort(-np.asarray(confidence, dtype=np.float64), kind="stable")
    wrong = np.cumsum(~np.asarray(correct, dtype=bool)[order])
    answered = np.arange(1, len(order) + 1)
    return answered / len(order), wrong / answered


# ----------------------------------------------------------------------------- figures


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95 % by default); (0, 1) when n is 0."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def answer_figures(
    answers: Sequence[str],
    truth: Sequence[str],
    labels: Sequence[str],
    others_label: str,
) -> dict:
    """What a set of answers achieves against the truth (a label, or `others_label` for a text
    to refuse): coverage, precision of the answered labels with its 95 % interval, the share
    of others rows refused, and per-class figures."""
    answers, truth = np.asarray(answers, dtype=object), np.asarray(truth, dtype=object)
    answered = answers != others_label
    right = answered & (answers == truth)
    in_domain = truth != others_label
    n_answered, n_right = int(answered.sum()), int(right.sum())
    low, high = wilson(n_right, n_answered)
    per_class = {}
    for label in labels:
        as_label, is_label = answers == label, truth == label
        hits = int((as_label & is_label).sum())
        per_class[label] = {
            "rows": int(is_label.sum()),
            "answered_as": int(as_label.sum()),
            "right": hits,
            "precision": _share(hits, int(as_label.sum())),
            "recall": _share(hits, int(is_label.sum())),
        }
    return {
        "rows": len(truth),
        "in_domain_rows": int(in_domain.sum()),
        "others_rows": int((~in_domain).sum()),
        "answered": n_answered,
        "coverage": _share(n_answered, len(truth)),
        "in_domain_coverage": _share(int((answered & in_domain).sum()), int(in_domain.sum())),
        "answered_right": n_right,
        "precision": _share(n_right, n_answered),
        "precision_interval_95": [round(low, 4), round(high, 4)],
        "in_domain_accuracy": _share(int(right.sum()), int(in_domain.sum())),
        "others_refused": int((~answered & ~in_domain).sum()),
        "others_refused_share": _share(
            int((~answered & ~in_domain).sum()), int((~in_domain).sum())
        ),
        "per_class": per_class,
    }


def calibration_figures(logits: np.ndarray, targets: np.ndarray, temperature: float) -> dict:
    """ECE (15 bins), Brier score and NLL of the in-domain rows at `temperature`."""
    targets = np.asarray(targets)
    probs = probabilities(logits, temperature)
    correct = probs.argmax(axis=1) == targets
    return {
        "temperature": temperature,
        "ece": ece(probs.max(axis=1), correct),
        "brier": brier(probs, targets),
        "nll": nll(logits, targets, temperature),
    }


def label_indices(truth: Sequence[str], labels: Sequence[str], others_label: str) -> np.ndarray:
    """Target indices for truth labels: the model's index, or OTHERS for the others label.
    Raises ValueError for a label the model does not know."""
    index: Mapping[str, int] = {label: i for i, label in enumerate(labels)}
    out = np.empty(len(truth), dtype=np.int64)
    for i, label in enumerate(truth):
        if label == others_label:
            out[i] = OTHERS
        elif label in index:
            out[i] = index[label]
        else:
            raise ValueError(
                f"label {label!r}: expected one of the model's labels ({', '.join(labels)}) "
                f"or {others_label!r}"
            )
    return out


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


# ----------------------------------------------------------------------------- fitting a policy


@dataclass(frozen=True)
class FitOptions:
    """How to fit: exactly one of target_precision and target_coverage is set."""

    target_precision: float | None = DEFAULT_TARGET_PRECISION
    target_coverage: float | None = None
    min_support: int = 20
    others_label: str = "others"
    baseline_threshold: float = 0.9  # the flags' threshold the report compares with


@dataclass(frozen=True)
class Scored:
    """One part's logits and targets (class index, or calibration.OTHERS)."""

    logits: np.ndarray
    targets: np.ndarray

    @property
    def in_domain(self) -> np.ndarray:
        return self.targets != OTHERS


def fit(
    part: Scored, labels: Sequence[str], options: FitOptions, model_version: str
) -> tuple[DecisionPolicy, dict]:
    """The policy fitted on the calibration part, and how (the report's `fit` section)."""
    mine = part.in_domain
    # Rounded first, so that the thresholds are chosen on the probabilities the policy serves.
    temperature = float(f"{fit_temperature(part.logits[mine], part.targets[mine]):.4g}")
    low, high = TEMPERATURE_BOUNDS
    probs = probabilities(part.logits, temperature).astype(np.float32)
    predicted, confidence = probs.argmax(axis=1), probs.max(axis=1)
    details = {
        "temperature": temperature,
        "temperature_at_bound": not (low * 1.01 < temperature < high / 1.01),
        "nll_before": nll(part.logits[mine], part.targets[mine]),
        "nll_after": nll(part.logits[mine], part.targets[mine], temperature),
        "rows": len(part.targets),
        "in_domain_rows": int(mine.sum()),
        "others_rows": int((~mine).sum()),
    }
    class_thresholds: dict[str, float] = {}
    if options.target_coverage is not None:
        threshold = coverage_threshold(confidence, options.target_coverage)
        details.update(mode="coverage", target=options.target_coverage, classes=[])
    else:
        threshold, choices = choose_thresholds(
            predicted,
            confidence,
            part.targets,
            labels,
            options.target_precision,
            options.min_support,
        )
        class_thresholds = {c.label: c.threshold for c in choices if c.source != "global"}
        details.update(
            mode="precision",
            target=options.target_precision,
            min_support=options.min_support,
            classes=[asdict(c) for c in choices],
        )
    details["threshold"] = threshold
    content = {
        "model_version": model_version,
        "others_label": options.others_label,
        "temperature": temperature,
        "threshold": threshold,
        "class_thresholds": class_thresholds,
    }
    policy = DecisionPolicy(
        version="cal-" + content_hash(content),
        threshold=threshold,
        others_label=options.others_label,
        temperature=temperature,
        class_thresholds=class_thresholds,
        model_version=model_version,
    )
    return policy, details


def evaluate(
    part: Scored, labels: Sequence[str], policy: DecisionPolicy, options: FitOptions
) -> dict:
    """The held-out figures: calibration before/after, and the answers of the policy and of
    the flags' threshold on raw probabilities."""
    mine = part.in_domain
    truth = [labels[t] if t >= 0 else options.others_label for t in part.targets]
    baseline = DecisionPolicy.from_flags(options.baseline_threshold, options.others_label)
    answers = policy.decide(part.logits, labels)
    raw_answers = baseline.decide(part.logits, labels)
    return {
        "before": calibration_figures(part.logits[mine], part.targets[mine], 1.0),
        "after": calibration_figures(part.logits[mine], part.targets[mine], policy.temperature),
        "policy": answer_figures(answers.labels, truth, labels, options.others_label),
        "baseline": {
            "threshold": options.baseline_threshold,
            **answer_figures(raw_answers.labels, truth, labels, options.others_label),
        },
    }
