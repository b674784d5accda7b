"""Offline scoring, the command: the online service's answers for a whole file, in-process.

    python -m offline.batch --model_dir models/demo --input tickets.jsonl --output scored.jsonl

The same code as the online path, not a copy (`offline.scoring.Scorer`: the transformer's
tokenization, the predictor's forward, the transformer's decision), with the same flags
(`--max_length`, `--policy_file`, `--confidence_threshold`, `--others_label`, `--device`, ...)
and the same policy: `--policy_file`, else `policy.json` in the model directory when there is
one, else the threshold flags.

Input is JSONL (a `text` field, an optional `id`), CSV (a `text` column, an optional `id`
column) or Parquet. Output is JSONL, CSV or Parquet, by extension, with `id`, `label`,
`confidence`, `probabilities`, `model_version` and `policy_version` per row. A bad row goes to
`<output>.errors.jsonl` with its line number and does not stop the run.

Local JSONL/CSV runs append and truncate back on restart (`offline.local_run`); Parquet, object
storage (`s3://`, `gs://`, `az://`) and `--shard K/N` write chunk objects, a checkpoint object
and a commit marker, with `--shard` one part per shard plus a manifest (`offline.parts_run`).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from kserve_kit.modeldir import ModelInfo
from kserve_kit.settings import TextSettings
from offline.flags import offline_parser
from offline.local_run import run_local
from offline.parts_run import run_parts
from offline.rows import format_of
from offline.scoring import Scorer
from offline.settings import BatchSettings
from offline.shards import INDEX_ENV, parse_shard
from offline.stores import Url, is_url
from predictor.config import PredictorSettings


def run(config: BatchSettings):
    if config.as_parts:
        info = ModelInfo.load(config.runtime.model_dir)
        policy = config.text.policy(info)  # a bad policy file stops here, before any write
        return run_parts(
            config,
            info,
            policy,
            lambda: Scorer(config.runtime, info, config.text.max_length, policy),
        )
    return run_local(config)


# ----------------------------------------------------------------------------- command line


def _location(text: str) -> Path | Url:
    """A local path, or an s3:// gs:// az:// URL (kept as text: a Path would fold its //)."""
    return Url(text) if is_url(text) else Path(text)


def _output_path(text: str) -> Path | Url:
    return _location(text.replace("{date}", time.strftime("%Y-%m-%d", time.gmtime())))


def build_parser() -> argparse.ArgumentParser:
    """The offline flags, plus the files."""
    parser = offline_parser(
        "Score a JSONL, CSV or Parquet file of texts offline, as the online service would"
    )
    parser.add_argument(
        "--input",
        type=_location,
        required=True,
        help="JSONL, CSV or Parquet file (by extension) with a text field; a path or an "
        "s3:// gs:// az:// URL",
    )
    parser.add_argument(
        "--output",
        type=_output_path,
        required=True,
        help="JSONL, CSV or Parquet file to write (a path or URL); {date} becomes today's UTC "
        "date (YYYY-MM-DD), so a nightly job writes one file a day and a retry on the same day "
        "resumes it. With --shard: the directory of the parts and the manifest",
    )
    parser.add_argument(
        "--chunk_rows", type=int, default=4096, help="rows scored between two checkpoints"
    )
    parser.add_argument(
        "--shard",
        default=None,
        help="K/N: score shard K of N (Parquet row groups) into its own part; index/N takes K "
        f"from {INDEX_ENV} (a Kubernetes Indexed Job). Without it: one output, no manifest",
    )
    parser.add_argument("--text_column", default="text", help="the input's text field/column")
    parser.add_argument(
        "--id_column", default="id", help="the input's id field/column; rows without one get "
        "their row number",
    )  # fmt: skip
    parser.add_argument(
        "--passthrough_columns",
        default="",
        help="comma-separated Parquet input columns copied to each output row",
    )
    parser.add_argument(
        "--s3_endpoint_url",
        default=None,
        help="an S3-compatible store's endpoint (default: AWS_ENDPOINT_URL, else AWS)",
    )
    parser.add_argument(
        "--log_every_rows",
        type=int,
        default=100_000,
        help="without a progress bar, a progress line every this many rows (0: none)",
    )
    return parser


def parse_config(argv: Sequence[str] | None = None) -> BatchSettings:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.chunk_rows <= 0:
            raise ValueError(f"--chunk_rows must be > 0, got {args.chunk_rows}")
        format_of(args.input)
        format_of(args.output)
        if isinstance(args.input, Path) and not args.input.is_file():
            raise ValueError(f"--input {args.input} is not a file")
        shard = parse_shard(args.shard) if args.shard is not None else None
        passthrough = tuple(c for c in args.passthrough_columns.split(",") if c)
        clash = sorted(set(passthrough) & {"id", "label", "confidence", "probabilities",
                                           "model_version", "policy_version"})  # fmt: skip
        if clash:
            raise ValueError(f"--passthrough_columns: expected no output column, got {clash}")
        return BatchSettings(
            input=args.input,
            output=args.output,
            runtime=PredictorSettings.from_namespace(args),
            text=TextSettings.from_namespace(args),
            chunk_rows=args.chunk_rows,
            progress=args.progress == "on" or (args.progress == "auto" and sys.stderr.isatty()),
            shard=shard,
            text_column=args.text_column,
            id_column=args.id_column,
            passthrough_columns=passthrough,
            s3_endpoint_url=args.s3_endpoint_url,
            log_every_rows=args.log_every_rows,
        )
    except ValueError as exc:
        parser.error(str(exc))


def main(argv: Sequence[str] | None = None) -> None:
    config = parse_config(argv)
    try:
        run(config)
    except ValueError as exc:
        # A refusal that no retry can change (a finished output, another input's checkpoint):
        # exit 2 like a bad command line, which the Job's podFailurePolicy fails at once.
        print(f"batch: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
