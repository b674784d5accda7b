"""The flags every in-process offline command shares: the predictor's runtime flags and the
transformer's text flags, and no server flags, so building the parser never imports KServe's
server (`--help` in well under a second)."""

from __future__ import annotations

import argparse

from kserve_kit.cli import add_model_dir_argument
from kserve_kit.contract import DEFAULT_MODEL_NAME
from kserve_kit.settings import add_text_arguments
from predictor.config import add_runtime_arguments


def offline_parser(
    description: str,
    policy_file: bool = True,
    threshold_help: str | None = None,
    model_dir: bool = True,
) -> argparse.ArgumentParser:
    """The parser of a command that scores in-process (`offline.batch`, `offline.calibrate`,
    `offline.compare`), with the shared flags; `policy_file` and `threshold_help` as in
    `add_text_arguments`; `model_dir=False` for a command that names its models otherwise."""
    # No abbreviations: a misspelt flag in a manifest must fail, not match a longer one.
    parser = argparse.ArgumentParser(description=description, allow_abbrev=False)
    if model_dir:
        add_model_dir_argument(parser)
    add_runtime_arguments(parser)
    add_text_arguments(parser, policy_file=policy_file, threshold_help=threshold_help)
    parser.add_argument(
        "--progress",
        choices=("auto", "on", "off"),
        default="auto",
        help="progress bar on stderr; auto: when stderr is a terminal",
    )
    # Offline there is no one to wait for: forwards of 64 rows, no batching delay, one forward
    # at a time. PredictorSettings reads these though no flag sets them here.
    parser.set_defaults(
        model_name=DEFAULT_MODEL_NAME, max_batch_size=64, max_batch_delay_ms=0.0, forward_workers=0
    )
    return parser
