"""docs/configuration.md against the parsers: every flag the kit adds to a command has a row in
that command's section (or in "Both servers"), and the default the row names is the parser's.

KServe's own server flags are not the kit's to document (the page points to KServe's); the ones
it documents anyway are checked like the rest. Defaults written in words (resolved at start, or
derived from another flag) are listed in WORDS with the reason."""

import argparse
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
ROW = re.compile(r"^\| (`--[^|]+`) \| ([^|]+) \|")
# flag -> why its row's default is words, not the parser's value
WORDS = {
    "--predictor_host": "required",
    "--predictor_model_name": "--model_name's value when unset",
    "--policy_file": "policy.json beside the model when present: resolved at start",
    "--drift_reference": "drift-reference.json beside the model when present: resolved at start",
    "--grpc_max_connection_age_grace_seconds": "--grace_period's value when unset",
    "--predictor_protocol": "KServe's flag and default, which the kit refuses: 'set it'",
    "--enable_predictor_health_check": "KServe's store_true flag: 'off'",
    "--input": "required",
    "--output": "required",
    "--data": "required",
    "--target_coverage": "none: --target_precision decides",
    "--target_precision": "0.95 when --target_coverage is not given (one of the two decides)",
    "--out": "--model_dir's value when unset",
    "--shard": "none: one output, no manifest",
    "--s3_endpoint_url": "AWS_ENDPOINT_URL, else AWS",
    "--champion": "required",
    "--challenger": "required",
    "--champion_policy_file": "none: policy.json in --champion when present, else the flags",
    "--challenger_policy_file": "none: policy.json in --challenger when present, else the flags",
}


def sections() -> dict[str, dict[str, str]]:
    """{section title: {flag: the row's default cell}}."""
    out: dict[str, dict[str, str]] = {}
    title = ""
    for line in DOC.read_text().splitlines():
        if line.startswith("## "):
            title = line[3:]
            out[title] = {}
        match = ROW.match(line)
        if match and title:
            flags = re.findall(r"`(--[a-z0-9_]+)`", match.group(1))
            defaults = [d.strip() for d in match.group(2).split(" / ")]
            for i, flag in enumerate(flags):
                out[title][flag] = defaults[i] if len(defaults) == len(flags) else defaults[0]
    return out


def section(name: str) -> dict[str, str]:
    found = [rows for title, rows in sections().items() if title.startswith(name)]
    assert found, f"docs/configuration.md has no section starting {name!r}"
    return found[0]


def kserve_flags() -> set[str]:
    from kserve_kit.serving import import_model_server

    return {o for a in import_model_server().parser._actions for o in a.option_strings}


def own_flags(parser: argparse.ArgumentParser, skip: set[str]) -> dict[str, object]:
    """{flag: default} of the parser's flags; KServe's server flags, hidden ones and --help
    left out."""
    return {
        action.option_strings[-1]: action.default
        for action in parser._actions
        if action.option_strings
        and not set(action.option_strings) & skip
        and not isinstance(action, argparse._HelpAction)
        and action.help != argparse.SUPPRESS
    }


def same_default(cell: str, default: object) -> bool:
    written = re.findall(r"`([^`]*)`", cell)
    if not written:
        return False
    text = written[0]
    if isinstance(default, bool):
        return text == str(default).lower()
    if isinstance(default, (int, float)):
        try:
            return float(text) == float(default)
        except ValueError:
            return False
    return text == str(default)


def commands():
    from offline.batch import build_parser as batch_parser
    from offline.calibrate import build_parser as calibrate_parser
    from offline.compare import build_parser as compare_parser
    from predictor.config import build_parser as predictor_parser
    from transformer.config import build_parser as transformer_parser

    both = ("Both servers",)
    return [
        ("predictor", predictor_parser, ("Predictor",) + both),
        ("transformer", transformer_parser, ("Transformer",) + both),
        ("batch", batch_parser, ("Batch command", "Predictor", "Transformer") + both),
        ("calibrate", calibrate_parser, ("Calibration command", "Predictor", "Transformer")),
        ("compare", compare_parser, ("Comparison command", "Predictor", "Transformer")),
    ]


@pytest.mark.parametrize(
    "name, make_parser, where", commands(), ids=lambda c: c if isinstance(c, str) else ""
)
def test_every_flag_of_the_kit_has_a_row_with_the_parser_s_default(name, make_parser, where):
    documented: dict[str, str] = {}
    for title in reversed(where):  # the command's own section wins
        documented.update(section(title))
    kserve = kserve_flags() - set(documented)  # KServe's flags the page does not document
    missing, wrong = [], []
    for flag, default in own_flags(make_parser(), kserve).items():
        if flag not in documented:
            missing.append(flag)
        elif flag not in WORDS and not same_default(documented[flag], default):
            wrong.append(f"{flag}: the page says {documented[flag]!r}, the parser {default!r}")
    assert not missing, f"{name}: flags with no row in docs/configuration.md: {missing}"
    assert not wrong, f"{name}: " + "; ".join(wrong)


def test_the_words_list_names_only_documented_flags():
    every = {flag for rows in sections().values() for flag in rows}
    assert set(WORDS) <= every, sorted(set(WORDS) - every)
