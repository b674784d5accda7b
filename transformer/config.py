"""The transformer's settings: parsed from the command line in `main()`, validated once."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

from kserve_kit import contract
from kserve_kit.cli import base_parser, parse_or_exit, positive, str2bool
from kserve_kit.settings import TextSettings, add_text_arguments
from transformer.hop_contract import INPUT_DATATYPES, HopContract

PREDICTOR_PROTOCOLS = ("v2", "grpc-v2")


def build_parser() -> argparse.ArgumentParser:
    parser = base_parser("KServe V2 transformer: tokenization before, softmax and threshold after")
    # KServe's default is v1, which the kit does not speak; binary tensors over gRPC are cheapest.
    parser.set_defaults(predictor_protocol="grpc-v2")
    add_text_arguments(parser)
    parser.add_argument(
        "--max_batch_size",
        type=positive(int),
        default=32,
        help="most texts in one request; a larger request is refused with 413",
    )
    parser.add_argument(
        "--allow_threshold_override",
        type=str2bool,
        default=True,
        help="whether a request may set parameters.confidence_threshold (true/false)",
    )
    parser.add_argument(
        "--policy_reload_interval_seconds",
        type=float,
        default=2.0,
        help="seconds between checks of the policy file for a new version; 0: never reload",
    )
    parser.add_argument(
        "--drift_window",
        type=int,
        default=1000,
        help="recent decisions compared with the drift reference (kserve_kit_drift_psi); "
        "0: no drift scores",
    )
    parser.add_argument(
        "--drift_reference",
        default=None,
        help="label shares and confidence histogram to compare with (written by make "
        "calibrate); default: drift-reference.json in --model_dir when present, else no drift "
        "scores",
    )
    parser.add_argument(
        "--predictor_load_balancing",
        choices=("round_robin", "pick_first"),
        default="round_robin",
        help="gRPC hop: round_robin over every address --predictor_host resolves to; "
        "pick_first: one connection to one address (the hop before balancing)",
    )
    parser.add_argument(
        "--predictor_retry_attempts",
        type=positive(int),
        default=3,
        help="tries of one hop the predictor refused before doing the work (connection refused "
        "or reset, a pod shutting down), each to the next endpoint, within "
        "--predictor_request_timeout_seconds; 1: no retries. Timeouts and 4xx never retry",
    )
    parser.add_argument(
        "--predictor_retry_budget_ratio",
        type=float,
        default=0.2,
        help="retries earned by each request: with every predictor down, retries add at most "
        "this share of the load (plus --predictor_retry_budget_min_per_second)",
    )
    parser.add_argument(
        "--predictor_retry_budget_min_per_second",
        type=float,
        default=10.0,
        help="retries allowed each second whatever the traffic",
    )
    add_hop_contract_arguments(parser)
    return parser


def add_hop_contract_arguments(parser: argparse.ArgumentParser) -> None:
    """What the predictor takes and answers (transformer.hop_contract): the kit's predictor by
    default, any V2 backend (Triton serving an ONNX export...) when set."""
    parser.add_argument(
        "--predictor_model_name",
        default=None,
        help="the model name the predictor serves; default: --model_name",
    )
    parser.add_argument(
        "--predictor_input_ids_name",
        default=contract.INPUT_IDS.name,
        help="the predictor's input for the token ids",
    )
    parser.add_argument(
        "--predictor_attention_mask_name",
        default=contract.ATTENTION_MASK.name,
        help="the predictor's input for the attention mask",
    )
    parser.add_argument(
        "--predictor_token_type_ids",
        type=str2bool,
        default=False,
        help="whether to send token type ids (all 0 for one text a row) to a predictor "
        "that requires them (true/false)",
    )
    parser.add_argument(
        "--predictor_token_type_ids_name",
        default=contract.TOKEN_TYPE_IDS.name,
        help="the predictor's input for the token type ids, with --predictor_token_type_ids",
    )
    parser.add_argument(
        "--predictor_input_datatype",
        choices=INPUT_DATATYPES,
        default="INT64",
        help="the V2 datatype of the token tensors sent",
    )
    parser.add_argument(
        "--predictor_output_name",
        default=contract.LOGITS.name,
        help="the predictor's output holding the scores (FP32 [N, classes])",
    )
    parser.add_argument(
        "--predictor_metadata_timeout_seconds",
        type=float,
        default=5.0,
        help="at start, how long to wait for the predictor's V2 metadata to check the names "
        "and datatypes above against (a mismatch stops the transformer); no answer: not "
        "checked; 0: never checked",
    )


@dataclass(frozen=True)
class TransformerSettings:
    """Everything the transformer needs besides KServe's own server flags."""

    model_name: str
    model_dir: str
    predictor_host: str
    predictor_protocol: str
    predictor_request_timeout_s: float
    max_length: int
    max_batch_size: int
    confidence_threshold: float
    others_label: str
    allow_threshold_override: bool
    policy_file: str | None = None  # None: policy.json in model_dir when present, else the flags
    policy_reload_interval_s: float = 2.0  # 0: the policy is read once, at start
    drift_window: int = 1000  # 0: no drift scores
    drift_reference: str | None = None  # None: drift-reference.json in model_dir when present
    predictor_load_balancing: str = "round_robin"  # gRPC hop; pick_first: one connection
    predictor_retry_attempts: int = 3  # 1: no retries (transformer.balancing.RetryPolicy)
    predictor_retry_budget_ratio: float = 0.2
    predictor_retry_budget_min_per_s: float = 10.0
    enable_predictor_health_check: bool = False  # ready only while a predictor endpoint is
    # The hop's contract (transformer.hop_contract); None: --model_name.
    predictor_model_name: str | None = None
    predictor_input_ids_name: str = contract.INPUT_IDS.name
    predictor_attention_mask_name: str = contract.ATTENTION_MASK.name
    predictor_token_type_ids: bool = False
    predictor_token_type_ids_name: str = contract.TOKEN_TYPE_IDS.name
    predictor_input_datatype: str = "INT64"
    predictor_output_name: str = contract.LOGITS.name
    predictor_metadata_timeout_s: float = 5.0  # 0: never checked

    @property
    def hop(self) -> HopContract:
        return HopContract(
            model_name=self.predictor_model_name or self.model_name,
            input_ids_name=self.predictor_input_ids_name,
            attention_mask_name=self.predictor_attention_mask_name,
            token_type_ids_name=(
                self.predictor_token_type_ids_name if self.predictor_token_type_ids else None
            ),
            input_datatype=self.predictor_input_datatype,
            output_name=self.predictor_output_name,
        )

    @classmethod
    def from_args(cls, argv: Sequence[str] | None = None) -> TransformerSettings:
        return cls.parse(argv)[1]

    @classmethod
    def parse(
        cls, argv: Sequence[str] | None = None
    ) -> tuple[argparse.Namespace, TransformerSettings]:
        """The raw namespace (for KServe's server flags) and the validated config."""
        return parse_or_exit(build_parser(), argv, cls.from_namespace)

    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> TransformerSettings:
        if not args.predictor_host:
            raise ValueError(
                "--predictor_host is required: host:port of the predictor, or any gRPC target "
                "(dns:///name:port, ipv4:10.0.0.1:8081,10.0.0.2:8081)"
            )
        if args.predictor_protocol not in PREDICTOR_PROTOCOLS:
            raise ValueError(
                f"--predictor_protocol must be one of {', '.join(PREDICTOR_PROTOCOLS)} "
                f"(the kit speaks V2 only), got {args.predictor_protocol!r}"
            )
        if not args.policy_reload_interval_seconds >= 0:
            raise ValueError(
                "--policy_reload_interval_seconds must be >= 0 (0: never reload), "
                f"got {args.policy_reload_interval_seconds}"
            )
        if args.drift_window < 0:
            raise ValueError(f"--drift_window must be >= 0 (0: off), got {args.drift_window}")
        for flag in ("predictor_retry_budget_ratio", "predictor_retry_budget_min_per_second"):
            if not getattr(args, flag) >= 0:
                raise ValueError(f"--{flag} must be >= 0, got {getattr(args, flag)}")
        names = [
            args.predictor_input_ids_name,
            args.predictor_attention_mask_name,
            *([args.predictor_token_type_ids_name] if args.predictor_token_type_ids else []),
        ]
        if not all(names) or not args.predictor_output_name or len(set(names)) != len(names):
            raise ValueError(
                "--predictor_input_ids_name, --predictor_attention_mask_name (and "
                "--predictor_token_type_ids_name when sent) must be distinct, non-empty names "
                f"and --predictor_output_name non-empty, got {names} and "
                f"{args.predictor_output_name!r}"
            )
        if not args.predictor_metadata_timeout_seconds >= 0:
            raise ValueError(
                "--predictor_metadata_timeout_seconds must be >= 0 (0: never checked), "
                f"got {args.predictor_metadata_timeout_seconds}"
            )
        text = TextSettings.from_namespace(args)
        return cls(
            model_name=args.model_name,
            model_dir=args.model_dir,
            predictor_host=args.predictor_host,
            predictor_protocol=args.predictor_protocol,
            predictor_request_timeout_s=float(args.predictor_request_timeout_seconds),
            max_length=text.max_length,
            max_batch_size=args.max_batch_size,
            confidence_threshold=text.confidence_threshold,
            others_label=text.others_label,
            allow_threshold_override=args.allow_threshold_override,
            policy_file=text.policy_file,
            policy_reload_interval_s=args.policy_reload_interval_seconds,
            drift_window=args.drift_window,
            drift_reference=args.drift_reference,
            predictor_load_balancing=args.predictor_load_balancing,
            predictor_retry_attempts=args.predictor_retry_attempts,
            predictor_retry_budget_ratio=args.predictor_retry_budget_ratio,
            predictor_retry_budget_min_per_s=args.predictor_retry_budget_min_per_second,
            enable_predictor_health_check=args.enable_predictor_health_check,
            predictor_model_name=args.predictor_model_name or None,
            predictor_input_ids_name=args.predictor_input_ids_name,
            predictor_attention_mask_name=args.predictor_attention_mask_name,
            predictor_token_type_ids=args.predictor_token_type_ids,
            predictor_token_type_ids_name=args.predictor_token_type_ids_name,
            predictor_input_datatype=args.predictor_input_datatype,
            predictor_output_name=args.predictor_output_name,
            predictor_metadata_timeout_s=args.predictor_metadata_timeout_seconds,
        )
