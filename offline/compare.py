"""Champion against challenger, offline: a promotion gate for a new model version.

    python -m offline.compare --champion models/v1 --challenger models/v2 --data labelled.jsonl
    make compare CHAMPION=models/v1 CHALLENGER=models/v2 DATA=labelled.jsonl

Both versions score the same labelled rows (`offline.labelled`: `text` and `label`; a row
labelled with the others label is a text that should be refused) with the serving code
(`offline.scoring`), each decided by its own policy: `--champion_policy_file` /
`--challenger_policy_file`, else the `policy.json` in its directory, else the threshold flags.

The report (`--out`, default `compare-report`: `compare-report.md` and `.json`) has, for each
version, the in-domain accuracy (answered right / in-domain rows), the coverage, the answered
precision with its 95 % Wilson interval and the share of others rows refused; per class,
precision and recall and their deltas; and the texts the two answer differently.

The gate: on `--measure` (default `in_domain_accuracy`), the challenger may be worse than the
champion by at most `--max_regression` (absolute, default 0.01). Worse by more: exit 1, so a CI
step stops the rollout. Bad data or a bad model: one line, exit 2. Passed: exit 0.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from kserve_kit import calibration as cal
from kserve_kit.modeldir import ModelInfo
from kserve_kit.settings import TextSettings
from offline.flags import offline_parser
from offline.labelled import Example, check_labels, read_examples
from offline.scoring import Scorer
from predictor.config import PredictorSettings

MEASURES = ("in_domain_accuracy", "precision", "coverage", "others_refused_share")
EXIT_REGRESSED = 1
DISAGREEMENTS_SHOWN = 50  # in the markdown; the JSON has them all


@dataclass(frozen=True)
class Side:
    """One version's answers on the data, and what they achieve."""

    name: str  # champion | challenger
    model_version: str
    policy_version: str
    answers: list[str]
    figures: dict


def score_side(
    name: str,
    model_dir: str,
    policy_file: str | None,
    examples: Sequence[Example],
    runtime: PredictorSettings,
    text: TextSettings,
) -> Side:
    info = ModelInfo.load(model_dir)
    policy = replace(text, policy_file=policy_file).policy(info)
    check_labels(examples, info.labels, policy.others_label, f"{name} {model_dir}")
    scorer = Scorer(replace(runtime, model_dir=str(info.path)), info, text.max_length, policy)
    decisions = policy.decide(scorer.logits([e.text for e in examples]), info.labels)
    del scorer
    gc.collect()  # one model in memory at a time
    truth = [e.label for e in examples]
    labels = sorted({*info.labels})
    figures = cal.answer_figures(decisions.labels, truth, labels, policy.others_label)
    return Side(name, info.version, policy.version, list(decisions.labels), figures)


def gate(champion: Side, challenger: Side, measure: str, max_regression: float) -> dict:
    """Whether the challenger may be promoted: its `measure` at most `max_regression` below
    the champion's. A measure with no rows to count (None) on either side cannot pass."""
    a, b = champion.figures[measure], challenger.figures[measure]
    passed = a is not None and b is not None and b >= a - max_regression - 1e-12
    return {
        "measure": measure,
        "champion": a,
        "challenger": b,
        "delta": None if a is None or b is None else b - a,
        "max_regression": max_regression,
        "passed": passed,
    }


def compare(champion: Side, challenger: Side, examples, measure, max_regression) -> dict:
    classes = sorted(set(champion.figures["per_class"]) | set(challenger.figures["per_class"]))
    per_class = {}
    for label in classes:
        a = champion.figures["per_class"].get(label, {})
        b = challenger.figures["per_class"].get(label, {})
        per_class[label] = {
            "rows": a.get("rows", b.get("rows")),
            **{
                f"{k}_{side}": f.get(k)
                for k in ("precision", "recall")
                for side, f in (("champion", a), ("challenger", b))
            },
            "precision_delta": _delta(a.get("precision"), b.get("precision")),
            "recall_delta": _delta(a.get("recall"), b.get("recall")),
        }
    disagreements = [
        {"row": i + 1, "text": e.text, "label": e.label, "champion": x, "challenger": y}
        for i, (e, x, y) in enumerate(
            zip(examples, champion.answers, challenger.answers, strict=True)
        )
        if x != y
    ]
    return {
        "rows": len(examples),
        "champion": _side_report(champion),
        "challenger": _side_report(challenger),
        "per_class": per_class,
        "agreement": 1 - len(disagreements) / len(examples),
        "disagreements": disagreements,
        "gate": gate(champion, challenger, measure, max_regression),
    }


def _side_report(side: Side) -> dict:
    keep = (
        *MEASURES,
        "precision_interval_95",
        "answered",
        "answered_right",
        "in_domain_rows",
        "others_rows",
    )
    return {
        "model_version": side.model_version,
        "policy_version": side.policy_version,
        **{k: side.figures[k] for k in keep},
    }


def _delta(a, b):
    return None if a is None or b is None else b - a


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def markdown(report: dict) -> str:
    a, b, g = report["champion"], report["challenger"], report["gate"]
    verdict = "**passed**" if g["passed"] else "**failed**: the challenger regressed"
    lines = [
        f"# Champion {a['model_version']} vs challenger {b['model_version']}",
        "",
        f"{report['rows']} labelled rows ({a['in_domain_rows']} in domain, {a['others_rows']} to "
        f"refuse); the two answer alike on {_pct(report['agreement'])} of them.",
        "",
        f"Gate on `{g['measure']}`: champion {_pct(g['champion'])}, challenger "
        f"{_pct(g['challenger'])}, allowed regression {g['max_regression']}: {verdict}.",
        "",
        "| | champion | challenger |",
        "|---|---|---|",
        f"| model, policy | {a['model_version']}, {a['policy_version']} "
        f"| {b['model_version']}, {b['policy_version']} |",
    ]
    for name, key in (
        ("in-domain accuracy", "in_domain_accuracy"),
        ("coverage", "coverage"),
        ("answered precision", "precision"),
        ("others rows refused", "others_refused_share"),
    ):
        lines.append(f"| {name} | {_pct(a[key])} | {_pct(b[key])} |")
    lows = [f"{100 * s['precision_interval_95'][0]:.1f}-{100 * s['precision_interval_95'][1]:.1f} %"
            for s in (a, b)]  # fmt: skip
    lines += [
        f"| answered precision, 95 % interval | {lows[0]} | {lows[1]} |",
        "",
        "| class | rows | precision (champion / challenger / delta) | recall (same) |",
        "|---|---|---|---|",
    ]
    for label, c in report["per_class"].items():
        lines.append(
            f"| {label} | {c['rows']} | {_pct(c['precision_champion'])} / "
            f"{_pct(c['precision_challenger'])} / {_signed(c['precision_delta'])} | "
            f"{_pct(c['recall_champion'])} / {_pct(c['recall_challenger'])} / "
            f"{_signed(c['recall_delta'])} |"
        )
    shown = report["disagreements"][:DISAGREEMENTS_SHOWN]
    lines += ["", f"## Answered differently ({len(report['disagreements'])} rows)", ""]
    if shown:
        lines += ["| row | label | champion | challenger | text |", "|---|---|---|---|---|"]
        for d in shown:
            text = d["text"].replace("|", "\\|").replace("\n", " ")[:120]
            lines.append(
                f"| {d['row']} | {d['label']} | {d['champion']} | {d['challenger']} | {text} |"
            )
    return "\n".join(lines) + "\n"


def _signed(value) -> str:
    return "n/a" if value is None else f"{100 * value:+.1f}"


def build_parser() -> argparse.ArgumentParser:
    parser = offline_parser(
        "Score labelled texts with a champion and a challenger model version, report both, "
        "and fail when the challenger regresses",
        policy_file=False,
        model_dir=False,
    )
    parser.add_argument("--champion", required=True, help="the serving version's model directory")
    parser.add_argument("--challenger", required=True, help="the new version's model directory")
    parser.add_argument(
        "--champion_policy_file",
        default=None,
        help="the champion's policy; default: policy.json in --champion, else the flags",
    )
    parser.add_argument(
        "--challenger_policy_file",
        default=None,
        help="the challenger's policy; default: policy.json in --challenger, else the flags",
    )
    parser.add_argument(
        "--data",
        type=Path,
        required=True,
        help="JSONL or CSV with text and label; label --others_label marks a text to refuse",
    )
    parser.add_argument(
        "--measure", choices=MEASURES, default=MEASURES[0], help="the measure the gate compares"
    )
    parser.add_argument(
        "--max_regression",
        type=float,
        default=0.01,
        help="how far (absolute, e.g. 0.01: one point) the challenger may fall below the "
        "champion on --measure",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("compare-report"), help="directory of the report"
    )
    parser.set_defaults(model_dir="")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not (math.isfinite(args.max_regression) and 0 <= args.max_regression < 1):
        parser.error(f"--max_regression must be in [0, 1), got {args.max_regression}")
    try:
        runtime = PredictorSettings.from_namespace(args)
        text = TextSettings.from_namespace(args)
        examples = read_examples(args.data)
        sides = [
            score_side(name, directory, policy_file, examples, runtime, text)
            for name, directory, policy_file in (
                ("champion", args.champion, args.champion_policy_file),
                ("challenger", args.challenger, args.challenger_policy_file),
            )
        ]
    except ValueError as exc:  # DataError, ModelUnfit, PolicyError: one line, exit 2
        print(f"compare: {exc}", file=sys.stderr)
        sys.exit(2)
    report = compare(*sides, examples, args.measure, args.max_regression)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compare-report.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "compare-report.md").write_text(markdown(report))
    g = report["gate"]
    print(
        f"compare: {g['measure']} champion {_pct(g['champion'])}, challenger "
        f"{_pct(g['challenger'])} (allowed regression {g['max_regression']}): "
        f"{'passed' if g['passed'] else 'FAILED'}; agreement {_pct(report['agreement'])}; "
        f"report {args.out}/compare-report.md",
        file=sys.stderr,
    )
    if not g["passed"]:
        sys.exit(EXIT_REGRESSED)


if __name__ == "__main__":
    main()
