"""Fit a decision policy from labelled texts: a temperature, thresholds, and what they buy.

    python -m predictor.calibrate --model_dir models/demo --data labelled.jsonl
    make calibrate MODEL_DIR=models/demo DATA=labelled.jsonl

The data is JSONL (`text` and `label` fields) or CSV (`text` and `label` columns). A row labelled
with the others label (`--others_label`, default `others`) is a text the model should refuse (an
out-of-domain one): answered with any class, it counts as an error.

The rows are scored with the serving code (`predictor.batch.Scorer`: the transformer's
tokenization and the predictor's forward), split, stratified by label and seeded, into a
calibration part and a held-out part. On the calibration part: the temperature that minimises
the negative log-likelihood of the in-domain rows, then thresholds on the calibrated
probabilities: per class the lowest whose precision reaches `--target_precision` (a class with
fewer than `--min_support` rows predicted as it takes the global threshold, chosen the same way
over all rows), or one global threshold answering `--target_coverage` of the rows. On the
held-out part only: ECE (15 equal-width bins) and Brier score before and after, coverage,
answered precision with its 95 % interval, per-class figures, and the same for the flags'
`--confidence_threshold` on raw probabilities (today's behaviour) beside them.

Writes into `--out` (default: the model directory): `policy.json`, `calibration-report.md`,
`calibration-report.json`, `reliability.png`, `risk-coverage.png` and `drift-reference.json`
(the label shares and confidence histogram of all the rows under the fitted policy, which the
transformer's drift scores compare with), each first to a temporary name and renamed at the end.
Bad input (an empty file, a row without text or label, a label the model does not know, too few
rows) is one line on stderr and exit 2, with nothing written.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import random
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from kserve_kit import calibration as cal
from kserve_kit import drift
from kserve_kit.decision import validate_threshold
from kserve_kit.modeldir import ModelInfo
from kserve_kit.policy import FILE_NAME, DecisionPolicy, content_hash
from kserve_kit.settings import TextSettings
from predictor.config import PredictorSettings

REPORT_MD = "calibration-report.md"
REPORT_JSON = "calibration-report.json"
RELIABILITY_PNG = "reliability.png"
RISK_COVERAGE_PNG = "risk-coverage.png"
OUTPUTS = (RELIABILITY_PNG, RISK_COVERAGE_PNG, REPORT_JSON, REPORT_MD, drift.FILE_NAME, FILE_NAME)
# Each part needs this many in-domain rows: below it a temperature or a threshold is noise.
MIN_PART_ROWS = 10
DEFAULT_TARGET_PRECISION = 0.95
TEXTS_PER_STEP = 256  # texts tokenized and scored between two progress-bar updates


class DataError(ValueError):
    """Labelled data the command cannot calibrate with; one line."""


@dataclass(frozen=True)
class Example:
    text: str
    label: str


@dataclass(frozen=True)
class Options:
    """How to fit: exactly one of target_precision and target_coverage is set."""

    target_precision: float | None = DEFAULT_TARGET_PRECISION
    target_coverage: float | None = None
    min_support: int = 20
    others_label: str = "others"
    baseline_threshold: float = 0.9  # the flags' threshold the report compares with


# ----------------------------------------------------------------------------- reading


def read_examples(path: Path) -> list[Example]:
    """Every row of a JSONL or CSV file with `text` and `label`; raises DataError at the
    first bad row, naming its line."""
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".ndjson", ".csv"):
        raise DataError(f"{path}: expected a .jsonl or .csv file, got {suffix or 'no extension'}")
    try:
        examples = _read_csv(path) if suffix == ".csv" else _read_jsonl(path)
    except OSError as exc:
        raise DataError(f"{path}: expected a readable file, got {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: expected UTF-8 text, got {exc.reason}") from None
    if not examples:
        raise DataError(f"{path}: expected labelled rows (text and label), got an empty file")
    return examples


def _read_jsonl(path: Path) -> list[Example]:
    examples = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{line_no}: expected a JSON object, got {exc}") from None
            if not isinstance(record, dict):
                raise DataError(
                    f"{path}:{line_no}: expected a JSON object with text and label, "
                    f"got {type(record).__name__}"
                )
            examples.append(_example(record.get("text"), record.get("label"), path, line_no))
    return examples


def _read_csv(path: Path) -> list[Example]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        if "text" not in fields or "label" not in fields:
            raise DataError(f"{path}: expected a header with text and label columns, got {fields}")
        return [
            _example(record.get("text"), record.get("label"), path, number)
            for number, record in enumerate(reader, start=2)  # line 1 is the header
        ]


def _example(text, label, path: Path, line: int) -> Example:
    for name, value in (("text", text), ("label", label)):
        if not isinstance(value, str) or not value.strip():
            got = "nothing" if value is None else repr(value)[:40]
            raise DataError(f"{path}:{line}: {name}: expected a non-empty string, got {got}")
    return Example(text, label.strip())


def check_labels(examples: Sequence[Example], labels: Sequence[str], others_label: str, source):
    known = set(labels) | {others_label}
    unknown = sorted({e.label for e in examples} - known)
    if unknown:
        raise DataError(
            f"{source}: label: expected one of the model's labels ({', '.join(labels)}) or "
            f"{others_label!r}, got {', '.join(map(repr, unknown[:5]))}"
        )


def split(
    examples: Sequence[Example], calibration_share: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """(calibration, held-out), stratified: each label's rows are shuffled with `seed` and
    the first `round(share * n)` go to calibration."""
    by_label: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        by_label[example.label].append(example)
    rng = random.Random(seed)
    calibration, heldout = [], []
    for label in sorted(by_label):
        rows = by_label[label]
        rng.shuffle(rows)
        cut = round(len(rows) * calibration_share)
        calibration += rows[:cut]
        heldout += rows[cut:]
    return calibration, heldout


def check_sizes(calibration, heldout, others_label: str, source) -> None:
    sizes = [sum(e.label != others_label for e in part) for part in (calibration, heldout)]
    if min(sizes) < MIN_PART_ROWS:
        raise DataError(
            f"{source}: expected at least {MIN_PART_ROWS} in-domain rows in the calibration "
            f"and in the held-out part, got {sizes[0]} and {sizes[1]} "
            f"(of {len(calibration) + len(heldout)} rows)"
        )


# ----------------------------------------------------------------------------- fitting


@dataclass(frozen=True)
class Scored:
    """One part's logits and targets (class index, or calibration.OTHERS)."""

    logits: np.ndarray
    targets: np.ndarray

    @property
    def in_domain(self) -> np.ndarray:
        return self.targets != cal.OTHERS


def fit(
    part: Scored, labels: Sequence[str], options: Options, model_version: str
) -> tuple[DecisionPolicy, dict]:
    """The policy fitted on the calibration part, and how (the report's `fit` section)."""
    mine = part.in_domain
    # Rounded first, so that the thresholds are chosen on the probabilities the policy serves.
    temperature = float(f"{cal.fit_temperature(part.logits[mine], part.targets[mine]):.4g}")
    low, high = cal.TEMPERATURE_BOUNDS
    probs = cal.probabilities(part.logits, temperature).astype(np.float32)
    predicted, confidence = probs.argmax(axis=1), probs.max(axis=1)
    details = {
        "temperature": temperature,
        "temperature_at_bound": not (low * 1.01 < temperature < high / 1.01),
        "nll_before": cal.nll(part.logits[mine], part.targets[mine]),
        "nll_after": cal.nll(part.logits[mine], part.targets[mine], temperature),
        "rows": len(part.targets),
        "in_domain_rows": int(mine.sum()),
        "others_rows": int((~mine).sum()),
    }
    class_thresholds: dict[str, float] = {}
    if options.target_coverage is not None:
        threshold = cal.coverage_threshold(confidence, options.target_coverage)
        details.update(mode="coverage", target=options.target_coverage, classes=[])
    else:
        threshold, choices = cal.choose_thresholds(
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


def evaluate(part: Scored, labels: Sequence[str], policy: DecisionPolicy, options: Options) -> dict:
    """The held-out figures: calibration before/after, and the answers of the policy and of
    the flags' threshold on raw probabilities."""
    mine = part.in_domain
    truth = [labels[t] if t >= 0 else options.others_label for t in part.targets]
    baseline = DecisionPolicy.from_flags(options.baseline_threshold, options.others_label)
    answers = policy.decide(part.logits, labels)
    raw_answers = baseline.decide(part.logits, labels)
    return {
        "before": cal.calibration_figures(part.logits[mine], part.targets[mine], 1.0),
        "after": cal.calibration_figures(part.logits[mine], part.targets[mine], policy.temperature),
        "policy": cal.answer_figures(answers.labels, truth, labels, options.others_label),
        "baseline": {
            "threshold": options.baseline_threshold,
            **cal.answer_figures(raw_answers.labels, truth, labels, options.others_label),
        },
    }


def with_provenance(policy: DecisionPolicy, report: dict) -> DecisionPolicy:
    """The policy with where it comes from: the data, the split, the target, the held-out
    figures. The version stays: it names the decisions, which provenance does not change."""
    held, fitted = report["heldout"], report["fit"]
    target = {"mode": fitted["mode"], "target": fitted["target"]}
    if "min_support" in fitted:
        target["min_support"] = fitted["min_support"]
    return replace(
        policy,
        provenance={
            "fitted_by": "predictor.calibrate",
            "date": report["date"],
            "data": report["data"],
            "split": report["split"],
            "target": target,
            "heldout": {
                "ece_before": _round(held["before"]["ece"]),
                "ece_after": _round(held["after"]["ece"]),
                "brier_before": _round(held["before"]["brier"]),
                "brier_after": _round(held["after"]["brier"]),
                "coverage": _round(held["policy"]["coverage"]),
                "precision": _round(held["policy"]["precision"]),
                "precision_interval_95": held["policy"]["precision_interval_95"],
                "others_refused_share": _round(held["policy"]["others_refused_share"]),
            },
        },
    )


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


# ----------------------------------------------------------------------------- the whole run


def calibrate(
    model_dir: str | Path,
    calibration: Sequence[Example],
    heldout: Sequence[Example],
    out: str | Path | None = None,
    options: Options = Options(),  # noqa: B008 - frozen, never mutated
    runtime: PredictorSettings | None = None,
    max_length: int = 128,
    progress: bool = False,
    data: dict | None = None,
    split_info: dict | None = None,
) -> dict:
    """Score both parts with the serving code, fit on `calibration`, evaluate on `heldout`,
    write the policy, the reports and the plots into `out` (default: the model directory).
    Returns the report. Raises DataError (nothing written) for data that cannot calibrate."""
    info = ModelInfo.load(model_dir)
    source = (data or {}).get("file", "data")
    check_labels([*calibration, *heldout], info.labels, options.others_label, source)
    check_sizes(calibration, heldout, options.others_label, source)
    _pyplot()  # a missing plotting library fails now, not after the scoring
    out = Path(out) if out is not None else info.path
    runtime = runtime or PredictorSettings.in_process(info.path, model_name="calibrate")

    from predictor.batch import Scorer

    started = time.perf_counter()
    scorer = Scorer(runtime, info, max_length)
    parts = score_parts(scorer, [calibration, heldout], info.labels, options, progress)
    policy, details = fit(parts[0], info.labels, options, info.version)
    report = {
        "model_dir": str(info.path),
        "model_version": info.version,
        "labels": list(info.labels),
        "others_label": options.others_label,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "data": data or {},
        "split": split_info or {},
        "fit": details,
        "heldout": evaluate(parts[1], info.labels, policy, options),
    }
    policy = with_provenance(policy, report)
    report["policy"] = policy.to_dict()
    report["seconds"] = round(time.perf_counter() - started, 1)
    reference = drift_reference(parts, info.labels, policy)
    write_outputs(out, policy, report, parts[1], reference)
    return report


def drift_reference(
    parts: Sequence[Scored], labels: Sequence[str], policy: DecisionPolicy
) -> drift.Reference:
    """What the transformer's drift scores compare with: the label shares and confidences of
    every scored row (both parts) under the fitted policy, so data that resembles production
    traffic gives a reference that production should resemble."""
    logits = np.concatenate([part.logits for part in parts])
    decisions = policy.decide(logits, labels)
    return drift.Reference.from_decisions(
        [*labels, policy.others_label], decisions.labels, decisions.confidence
    )


def score_parts(
    scorer, parts: Sequence[Sequence[Example]], labels, options: Options, progress: bool
) -> list[Scored]:
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(map(len, parts)), unit="text", file=sys.stderr)
    scored = []
    for part in parts:
        texts = [e.text for e in part]
        chunks = []
        for start in range(0, len(texts), TEXTS_PER_STEP):
            chunks.append(scorer.logits(texts[start : start + TEXTS_PER_STEP]))
            if bar is not None:
                bar.update(len(chunks[-1]))
        targets = cal.label_indices([e.label for e in part], labels, options.others_label)
        scored.append(Scored(np.concatenate(chunks), targets))
    if bar is not None:
        bar.close()
    return scored


# ----------------------------------------------------------------------------- writing


def write_outputs(
    out: Path, policy: DecisionPolicy, report: dict, heldout: Scored, reference: drift.Reference
) -> None:
    """Every file under a temporary name first; renamed into place only when all are written
    (policy.json last, so a watcher never sees a policy without its report)."""
    out.mkdir(parents=True, exist_ok=True)
    temps = {name: out / f".{name}.tmp-{os.getpid()}" for name in OUTPUTS}
    try:
        plot_reliability(temps[RELIABILITY_PNG], heldout, policy.temperature, report)
        plot_risk_coverage(temps[RISK_COVERAGE_PNG], heldout, policy, report)
        temps[REPORT_JSON].write_text(json.dumps(_plain(report), indent=2) + "\n")
        temps[REPORT_MD].write_text(markdown(report))
        temps[drift.FILE_NAME].write_text(reference.to_json() + "\n")
        temps[FILE_NAME].write_text(policy.to_json())
        for name in OUTPUTS:
            os.chmod(temps[name], 0o644)
            os.replace(temps[name], out / name)
    finally:
        for path in temps.values():
            path.unlink(missing_ok=True)


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return None if not math.isfinite(value) else value
    if isinstance(value, np.generic):
        return _plain(value.item())
    return value


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def markdown(report: dict) -> str:
    fitted, held, policy = report["fit"], report["heldout"], report["policy"]
    before, after, mine, base = held["before"], held["after"], held["policy"], held["baseline"]
    target = (
        f"precision {fitted['target']} per class (min support {fitted['min_support']})"
        if fitted["mode"] == "precision"
        else f"coverage {fitted['target']} (one global threshold)"
    )
    lines = [
        f"# Calibration report: {report['model_version']}",
        "",
        f"Policy **{policy['version']}** for model `{report['model_version']}`, fitted "
        f"{report['date']} on {fitted['rows']} calibration rows ({fitted['in_domain_rows']} "
        f"in domain, {fitted['others_rows']} `{report['others_label']}`); every figure below is "
        f"on the {mine['rows']} held-out rows ({mine['in_domain_rows']} in domain, "
        f"{mine['others_rows']} `{report['others_label']}`). Target: {target}.",
        "",
        f"Temperature **{fitted['temperature']:.4g}** (NLL on the calibration part "
        f"{fitted['nll_before']:.4f} -> {fitted['nll_after']:.4f})"
        + (
            ": at the search bound, the fit is degenerate" if fitted["temperature_at_bound"] else ""
        ),
        "",
        "| held-out, in domain | before (T = 1) | after |",
        "|---|---|---|",
        f"| ECE (15 bins) | {before['ece']:.4f} | {after['ece']:.4f} |",
        f"| Brier score | {before['brier']:.4f} | {after['brier']:.4f} |",
        f"| NLL | {before['nll']:.4f} | {after['nll']:.4f} |",
        "",
        f"| held-out answers | flags: raw threshold {base['threshold']} | policy |",
        "|---|---|---|",
    ]
    for name, key, fmt in (
        ("coverage (answered / all rows)", "coverage", _pct),
        ("in-domain coverage", "in_domain_coverage", _pct),
        ("answered precision", "precision", _pct),
        ("answered precision, 95 % interval", "precision_interval_95", _interval),
        (f"`{report['others_label']}` rows refused", "others_refused_share", _pct),
    ):
        lines.append(f"| {name} | {fmt(base[key])} | {fmt(mine[key])} |")
    lines.append(
        f"| answered right / answered | {base['answered_right']}/{base['answered']} "
        f"| {mine['answered_right']}/{mine['answered']} |"
    )
    lines += [
        "",
        "| class | threshold | chosen by | calibration support | held-out rows | "
        "answered as | precision | recall |",
        "|---|---|---|---|---|---|---|---|",
    ]
    choices = {c["label"]: c for c in fitted["classes"]}
    for label in report["labels"]:
        figures = mine["per_class"][label]
        choice = choices.get(label)
        threshold = policy["class_thresholds"].get(label, policy["threshold"])
        how = (
            "global (coverage)"
            if choice is None
            else {
                "class": "its own precision",
                "global": f"global: support {choice['support']} < {fitted.get('min_support')}",
                "unreachable": "target unreachable: refuses nearly all",
            }[choice["source"]]
        )
        lines.append(
            f"| {label} | {threshold:.4f} | {how} | "
            f"{'' if choice is None else choice['support']} | {figures['rows']} | "
            f"{figures['answered_as']} | {_pct(figures['precision'])} | "
            f"{_pct(figures['recall'])} |"
        )
    lines += [
        "",
        f"Global threshold {policy['threshold']:.4f}. Plots: `{RELIABILITY_PNG}` (reliability "
        f"before/after), `{RISK_COVERAGE_PNG}` (risk-coverage, the chosen point marked).",
        "",
    ]
    return "\n".join(lines)


def _interval(value) -> str:
    return f"{100 * value[0]:.1f} - {100 * value[1]:.1f} %"


def _pyplot():
    try:
        import matplotlib
    except ModuleNotFoundError:
        raise DataError(
            "the plots need matplotlib: pip install -c constraints.txt -e '.[calibrate]'"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_reliability(path: Path, part: Scored, temperature: float, report: dict) -> None:
    plt = _pyplot()
    mine = part.in_domain
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), sharey=True)
    for ax, t, title in ((axes[0], 1.0, "before"), (axes[1], temperature, "after")):
        probs = cal.probabilities(part.logits[mine], t)
        correct = probs.argmax(axis=1) == part.targets[mine]
        bins = cal.reliability(probs.max(axis=1), correct)
        width = bins.edges[1] - bins.edges[0]
        centres = bins.edges[:-1] + width / 2
        filled = bins.count > 0
        ax.bar(
            centres[filled],
            bins.accuracy[filled],
            width=width * 0.95,
            color="#4c72b0",
            edgecolor="white",
            label="accuracy in the bin",
        )
        ax.plot(
            bins.confidence[filled],
            bins.accuracy[filled],
            "o",
            color="#dd8452",
            label="(mean confidence, accuracy)",
        )
        ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
        for x, n, acc in zip(
            centres[filled], bins.count[filled], bins.accuracy[filled], strict=True
        ):
            ax.text(x, min(acc + 0.02, 1.02), str(int(n)), ha="center", fontsize=7)
        ece = cal.ece(probs.max(axis=1), correct)
        ax.set_title(f"{title}: T = {t:.3g}, ECE = {ece:.3f}")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.08)
        ax.set_xlabel("confidence (top probability), 15 bins")
    axes[0].set_ylabel("accuracy")
    axes[0].legend(loc="upper left", fontsize=8)
    fig.suptitle(
        f"Reliability on the held-out in-domain rows ({int(mine.sum())}; numbers: rows "
        f"per bin), {report['model_version']}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)


def plot_risk_coverage(path: Path, part: Scored, policy: DecisionPolicy, report: dict) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for t, name, colour in (
        (1.0, "raw softmax", "#999999"),
        (policy.temperature, "calibrated", "#4c72b0"),
    ):
        probs = cal.probabilities(part.logits, t)
        correct = probs.argmax(axis=1) == part.targets
        coverage, risk = cal.risk_coverage(probs.max(axis=1), correct)
        ax.plot(coverage, risk, color=colour, label=f"{name}: one global threshold swept")
    held = report["heldout"]
    for figures, name, marker in (
        (held["policy"], f"policy {policy.version}", "*"),
        (held["baseline"], f"flags: raw threshold {held['baseline']['threshold']}", "s"),
    ):
        if figures["answered"]:
            ax.plot(
                figures["coverage"],
                1 - figures["precision"],
                marker,
                markersize=12,
                linestyle="none",
                label=f"{name}",
            )
    in_domain = held["policy"]["in_domain_rows"] / held["policy"]["rows"]
    if in_domain < 1:
        ax.axvline(in_domain, linestyle=":", color="grey", label="every in-domain row answered")
    fitted = report["fit"]
    if fitted["mode"] == "precision":
        ax.axhline(
            1 - fitted["target"],
            linestyle=":",
            color="#c44e52",
            label=f"target risk {1 - fitted['target']:.3g}",
        )
    ax.set_xlabel(f"coverage: answered / all {len(part.targets)} held-out rows")
    ax.set_ylabel("risk: wrong answers / answered")
    ax.set_xlim(0, 1.01)
    ax.set_ylim(bottom=0)
    ax.set_title(
        f"Risk-coverage, held-out ({held['policy']['others_rows']} of them "
        f"'{report['others_label']}')",
        fontsize=10,
    )
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    from predictor.batch import offline_parser

    parser = offline_parser(
        "Fit a decision policy (temperature, thresholds) from labelled texts, with a report",
        policy_file=False,
    )
    for action in parser._actions:
        if action.dest == "confidence_threshold":
            action.help = (
                "the flags' threshold (on raw probabilities) that the report compares with"
            )
    parser.add_argument(
        "--data",
        type=Path,
        required=True,
        help="JSONL or CSV with text and label; label --others_label marks a text to refuse",
    )
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--target_precision",
        type=float,
        default=None,
        help=f"per class, the lowest threshold whose calibration precision reaches this "
        f"(default {DEFAULT_TARGET_PRECISION})",
    )
    target.add_argument(
        "--target_coverage",
        type=float,
        default=None,
        help="instead: one global threshold that answers this share of the calibration rows",
    )
    parser.add_argument(
        "--min_support",
        type=int,
        default=Options.min_support,
        help="calibration rows predicted as a class it needs for its own threshold; "
        "below, it takes the global one",
    )
    parser.add_argument(
        "--calibration_share",
        type=float,
        default=0.5,
        help="share of each label's rows used to fit; the rest is held out for the figures",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the split")
    parser.add_argument(
        "--out", type=Path, default=None, help="directory to write to; default: --model_dir"
    )
    return parser


def _share(name: str, value: float, closed: bool = False) -> float:
    ok = 0 < value <= 1 if closed else 0 < value < 1
    if not (math.isfinite(value) and ok):
        raise ValueError(f"--{name} must be in (0, 1{']' if closed else ')'}, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        runtime = PredictorSettings.from_namespace(args)
        text = TextSettings.from_namespace(args)
        if args.target_coverage is not None:
            precision, coverage = None, _share("target_coverage", args.target_coverage, True)
        else:
            precision = _share(
                "target_precision",
                DEFAULT_TARGET_PRECISION
                if args.target_precision is None
                else args.target_precision,
            )
            coverage = None
        if args.min_support < 1:
            raise ValueError(f"--min_support must be >= 1, got {args.min_support}")
        share = _share("calibration_share", args.calibration_share)
        options = Options(
            target_precision=precision,
            target_coverage=coverage,
            min_support=args.min_support,
            others_label=text.others_label,
            baseline_threshold=validate_threshold(text.confidence_threshold),
        )
    except ValueError as exc:
        parser.error(str(exc))
    try:
        examples = read_examples(args.data)
        info = ModelInfo.load(args.model_dir)
        check_labels(examples, info.labels, options.others_label, args.data)
        calibration, heldout = split(examples, share, args.seed)
        report = calibrate(
            info.path,
            calibration,
            heldout,
            out=args.out,
            options=options,
            runtime=runtime,
            max_length=text.max_length,
            progress=args.progress == "on" or (args.progress == "auto" and sys.stderr.isatty()),
            data={
                "file": str(args.data),
                "sha256": hashlib.sha256(args.data.read_bytes()).hexdigest(),
                "rows": len(examples),
            },
            split_info={
                "calibration_share": share,
                "seed": args.seed,
                "calibration_rows": len(calibration),
                "heldout_rows": len(heldout),
            },
        )
    except ValueError as exc:  # DataError, ModelUnfit, PolicyError: one line, exit 2
        print(f"calibrate: {exc}", file=sys.stderr)
        sys.exit(2)
    held = report["heldout"]
    print(
        f"policy {report['policy']['version']} -> {args.out or info.path}/{FILE_NAME}: "
        f"T={report['fit']['temperature']:.4g}; held-out ECE {held['before']['ece']:.4f} -> "
        f"{held['after']['ece']:.4f}, coverage {_pct(held['policy']['coverage'])}, "
        f"answered precision {_pct(held['policy']['precision'])}, "
        f"{report['others_label']} refused {_pct(held['policy']['others_refused_share'])} "
        f"({report['seconds']} s)",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
