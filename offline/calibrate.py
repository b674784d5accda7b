"""Fit a decision policy from labelled texts: a temperature, thresholds, and what they buy.

    python -m offline.calibrate --model_dir models/demo --data labelled.jsonl
    make calibrate MODEL_DIR=models/demo DATA=labelled.jsonl

The data is JSONL (`text` and `label` fields) or CSV (`text` and `label` columns). A row labelled
with the others label (`--others_label`, default `others`) is a text the model should refuse (an
out-of-domain one): answered with any class, it counts as an error.

The rows are scored with the serving code (`offline.scoring.Scorer`: the transformer's
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
import hashlib
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from kserve_kit import calibration as cal
from kserve_kit import drift
from kserve_kit.calibration import DEFAULT_TARGET_PRECISION, FitOptions, Scored, evaluate, fit
from kserve_kit.decision import validate_threshold
from kserve_kit.modeldir import ModelInfo
from kserve_kit.policy import FILE_NAME, DecisionPolicy
from kserve_kit.settings import TextSettings
from offline.calibration_report import percent, pyplot, write_outputs
from offline.flags import offline_parser
from offline.labelled import Example, check_labels, check_sizes, read_examples, split
from offline.scoring import Scorer
from predictor.config import PredictorSettings

TEXTS_PER_STEP = 256  # texts tokenized and scored between two progress-bar updates


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
            "fitted_by": "offline.calibrate",
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


def calibrate(
    model_dir: str | Path,
    calibration: Sequence[Example],
    heldout: Sequence[Example],
    out: str | Path | None = None,
    options: FitOptions = FitOptions(),  # noqa: B008 - frozen, never mutated
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
    pyplot()  # a missing plotting library fails now, not after the scoring
    out = Path(out) if out is not None else info.path
    runtime = runtime or PredictorSettings.in_process(info.path, model_name="calibrate")

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
    scorer, parts: Sequence[Sequence[Example]], labels, options: FitOptions, progress: bool
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


# ----------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    parser = offline_parser(
        "Fit a decision policy (temperature, thresholds) from labelled texts, with a report",
        policy_file=False,
        threshold_help="the flags' threshold (on raw probabilities) that the report compares with",
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
        default=FitOptions.min_support,
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
        options = FitOptions(
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
        f"{held['after']['ece']:.4f}, coverage {percent(held['policy']['coverage'])}, "
        f"answered precision {percent(held['policy']['precision'])}, "
        f"{report['others_label']} refused {percent(held['policy']['others_refused_share'])} "
        f"({report['seconds']} s)",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
