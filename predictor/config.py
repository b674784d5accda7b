"""The predictor's settings: parsed from the command line in `main()`, validated once."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, replace

from kserve_kit.cli import base_parser, parse_or_exit, positive

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "float16", "bfloat16")
QUANTIZE_MODES = ("none", "int8")
COMPILE_MODES = ("none", "trace")


def build_parser() -> argparse.ArgumentParser:
    parser = base_parser("KServe V2 predictor for a Hugging Face sequence classifier")
    add_runtime_arguments(parser)
    add_serving_arguments(parser)
    return parser


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    """The model runtime's flags: the server's, and those of the commands that score in their
    own process (`offline.batch`, `offline.calibrate`), which have no server to configure."""
    parser.add_argument(
        "--device", choices=DEVICES, default="auto", help="where the model runs; auto: CUDA if any"
    )
    parser.add_argument(
        "--dtype",
        choices=DTYPES,
        default="auto",
        help="weights and activations. auto: float16 on CUDA, bfloat16 on a CPU with native "
        "bf16 (avx512_bf16 or AMX), else float32; a half type is checked against float32 at "
        "start and float32 serves if their decisions differ (docs/performance.md). float16 "
        "needs CUDA; bfloat16 runs on any CPU (slowly without native support)",
    )
    parser.add_argument(
        "--max_batch_size",
        type=positive(int),
        default=32,
        help="most rows in one forward pass, and in one request",
    )
    parser.add_argument(
        "--torch_threads",
        type=int,
        default=0,
        help="torch intra-op threads; 0 uses the CPUs this process may run on (cpuset and quota)",
    )
    parser.add_argument(
        "--compile",
        choices=COMPILE_MODES,
        default="trace",
        help="trace: run the model as one TorchScript graph, checked against the eager model "
        "at start (the eager model serves if they differ); none: eager PyTorch",
    )
    parser.add_argument(
        "--quantize",
        choices=QUANTIZE_MODES,
        default="none",
        help="int8: dynamic int8 quantization of the Linear layers (CPU only; a small accuracy "
        "change, see docs/performance.md)",
    )


def add_serving_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that only a server has: how requests are batched, how gRPC connections age."""
    parser.add_argument(
        "--max_batch_delay_ms",
        type=float,
        default=2.0,
        help="how long a batch forming under load may wait for more requests; 0 disables batching",
    )
    parser.add_argument(
        "--forward_workers",
        type=non_negative_int,
        default=0,
        help="forward passes run at once, each on its own batch; several at once share the "
        "torch threads, a lone one gets them all. 0 (auto): 2 on a CPU with 2 threads or more "
        "when the model is traced (--compile trace), else 1 (docs/performance.md)",
    )
    parser.add_argument(
        "--grpc_max_connection_age_seconds",
        type=non_negative_float,
        default=30.0,
        help="close each gRPC connection after about this long (+-10 %%) with a GOAWAY, so that "
        "clients balancing over a headless Service re-resolve and reach new pods; 0: never",
    )
    parser.add_argument(
        "--grpc_max_connection_age_grace_seconds",
        type=non_negative_float,
        default=None,
        help="how long calls on an aged connection may still finish; default: --grace_period",
    )


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


@dataclass(frozen=True)
class PredictorSettings:
    """Everything the predictor needs besides KServe's own server flags."""

    model_name: str
    model_dir: str
    device: str
    dtype: str  # as asked; auto is resolved by the runtime (predictor.precision)
    max_batch_size: int
    max_batch_delay_ms: float
    torch_threads: int
    quantize: str = "none"
    forward_workers: int = 0  # 0: auto, resolved by the runtime (predictor.runtime)
    compile: str = "trace"

    @classmethod
    def in_process(cls, model_dir, **overrides) -> PredictorSettings:
        """Settings for forwards run in this process, with no server in front (the calibration
        command, the demo builder, tests): batches of 64, no batching delay; `overrides` may
        set any field."""
        base = cls(
            model_name="in-process",
            model_dir=str(model_dir),
            device="auto",
            dtype="float32",
            max_batch_size=64,
            max_batch_delay_ms=0.0,
            torch_threads=0,
        )
        return replace(base, **overrides)

    @classmethod
    def from_args(cls, argv: Sequence[str] | None = None) -> PredictorSettings:
        return cls.parse(argv)[1]

    @classmethod
    def parse(
        cls, argv: Sequence[str] | None = None
    ) -> tuple[argparse.Namespace, PredictorSettings]:
        """The raw namespace (for KServe's server flags) and the validated config."""
        return parse_or_exit(build_parser(), argv, cls.from_namespace)

    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> PredictorSettings:
        if args.max_batch_delay_ms < 0:
            raise ValueError(f"--max_batch_delay_ms must be >= 0, got {args.max_batch_delay_ms}")
        if args.torch_threads < 0:
            raise ValueError(f"--torch_threads must be >= 0, got {args.torch_threads}")
        if args.device == "cpu" and args.dtype == "float16":
            raise ValueError(
                "--dtype float16 needs --device cuda (or auto on a GPU); on the CPU use "
                "--dtype auto, bfloat16 or float32"
            )
        if args.torch_threads and args.torch_threads < args.forward_workers:
            raise ValueError(
                f"--torch_threads {args.torch_threads} cannot feed {args.forward_workers} "
                "--forward_workers: each needs at least one thread (or use --torch_threads 0)"
            )
        if args.quantize != "none" and args.device == "cuda":
            raise ValueError(
                f"--quantize {args.quantize} runs on the CPU only; on a GPU use --dtype float16"
            )
        if args.quantize != "none" and args.dtype not in ("auto", "float32"):
            raise ValueError(
                f"--quantize {args.quantize} quantizes float32 weights: use --dtype float32 "
                f"(or auto), not {args.dtype}"
            )
        return cls(
            model_name=args.model_name,
            model_dir=args.model_dir,
            device=args.device,
            dtype=args.dtype,
            max_batch_size=args.max_batch_size,
            max_batch_delay_ms=args.max_batch_delay_ms,
            torch_threads=args.torch_threads,
            quantize=args.quantize,
            forward_workers=args.forward_workers,
            compile=args.compile,
        )
