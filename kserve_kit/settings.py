"""Settings of the text side, shared by the transformer (online) and the batch command (offline):
one definition of each flag, one validation, so both paths decide the same way."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from kserve_kit.cli import positive
from kserve_kit.decision import validate_threshold


def add_text_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max_length",
        type=positive(int),
        default=128,
        help="tokens per text, special tokens included; longer texts are truncated",
    )
    parser.add_argument(
        "--confidence_threshold",
        default=0.9,
        help="below this top probability the label becomes --others_label; in (0, 1)",
    )
    parser.add_argument(
        "--others_label", default="others", help="the label answered when the model is not sure"
    )
    parser.add_argument(
        "--policy_file",
        default=None,
        help="decision policy JSON (temperature, thresholds, others label); default: policy.json "
        "in --model_dir when present, otherwise the threshold flags",
    )


@dataclass(frozen=True)
class TextSettings:
    max_length: int
    confidence_threshold: float
    others_label: str

    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> TextSettings:
        """Validate the parsed flags; raises ValueError with a one-line reason."""
        if not args.others_label:
            raise ValueError("--others_label must not be empty")
        return cls(
            max_length=args.max_length,
            confidence_threshold=validate_threshold(args.confidence_threshold),
            others_label=args.others_label,
        )
