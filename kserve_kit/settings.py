"""Settings of the text side, shared by the transformer (online) and the batch command (offline):
one definition of each flag, one validation, so both paths decide the same way."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from kserve_kit.cli import positive
from kserve_kit.contract import DEFAULT_CONFIDENCE_THRESHOLD, DEFAULT_OTHERS_LABEL
from kserve_kit.decision import validate_threshold
from kserve_kit.modeldir import ModelInfo
from kserve_kit.policy import FILE_NAME, NO_POLICY, DecisionPolicy, resolve_policy


def add_text_arguments(
    parser: argparse.ArgumentParser, policy_file: bool = True, threshold_help: str | None = None
) -> None:
    """The text flags; `policy_file=False` leaves out --policy_file (for a command that writes
    policies rather than serving one), `threshold_help` says what --confidence_threshold means
    to such a command."""
    parser.add_argument(
        "--max_length",
        type=positive(int),
        default=128,
        help="tokens per text, special tokens included; longer texts are truncated",
    )
    if policy_file:
        parser.add_argument(
            "--policy_file",
            default=None,
            help=f"decision policy (JSON, docs/configuration.md); default: {FILE_NAME} in "
            f"--model_dir when present, else --confidence_threshold and --others_label; "
            f"'{NO_POLICY}': the flags even when the model directory holds a policy",
        )
    parser.add_argument(
        "--confidence_threshold",
        default=DEFAULT_CONFIDENCE_THRESHOLD,
        help=threshold_help
        or "below this top probability the label becomes --others_label; in (0, 1); "
        "a policy file, when there is one, replaces it",
    )
    parser.add_argument(
        "--others_label",
        default=DEFAULT_OTHERS_LABEL,
        help="the label answered when the model is not sure",
    )


@dataclass(frozen=True)
class TextSettings:
    max_length: int
    confidence_threshold: float
    others_label: str
    policy_file: str | None = None  # as given; `policy()` resolves the default

    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> TextSettings:
        """Validate the parsed flags; raises ValueError with a one-line reason."""
        if not args.others_label:
            raise ValueError("--others_label must not be empty")
        return cls(
            max_length=args.max_length,
            confidence_threshold=validate_threshold(args.confidence_threshold),
            others_label=args.others_label,
            policy_file=getattr(args, "policy_file", None) or None,
        )

    def policy(self, info: ModelInfo) -> DecisionPolicy:
        """The policy to serve `info`'s model with: the policy file checked against the model,
        or these flags as a policy. Raises PolicyError (a ValueError) with a one-line reason."""
        return resolve_policy(
            self.policy_file,
            info.path,
            info.labels,
            info.version,
            self.confidence_threshold,
            self.others_label,
        )
