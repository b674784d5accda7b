"""The calibration command's report: `calibration-report.md` and `.json`, the reliability and
risk-coverage plots, written with the policy and the drift reference under temporary names and
renamed into place together."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from kserve_kit import calibration as cal
from kserve_kit import drift
from kserve_kit.calibration import Scored
from kserve_kit.policy import FILE_NAME, DecisionPolicy
from offline.labelled import DataError

REPORT_MD = "calibration-report.md"
REPORT_JSON = "calibration-report.json"
RELIABILITY_PNG = "reliability.png"
RISK_COVERAGE_PNG = "risk-coverage.png"
OUTPUTS = (RELIABILITY_PNG, RISK_COVERAGE_PNG, REPORT_JSON, REPORT_MD, drift.FILE_NAME, FILE_NAME)


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


def percent(value: float | None) -> str:
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
        ("coverage (answered / all rows)", "coverage", percent),
        ("in-domain coverage", "in_domain_coverage", percent),
        ("answered precision", "precision", percent),
        ("answered precision, 95 % interval", "precision_interval_95", _interval),
        (f"`{report['others_label']}` rows refused", "others_refused_share", percent),
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
            f"{figures['answered_as']} | {percent(figures['precision'])} | "
            f"{percent(figures['recall'])} |"
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


def pyplot():
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
    plt = pyplot()
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
    plt = pyplot()
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
