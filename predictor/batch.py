"""Offline scoring: the online service's answers for a whole file, in-process, no HTTP.

    python -m predictor.batch --model_dir models/demo --input tickets.jsonl --output scored.jsonl

The same code as the online path, not a copy: `TextEncoder` (the transformer's tokenization),
`TorchRuntime.forward` (the predictor's forward), `DecisionPolicy.decide` (the transformer's
decision), with the same flags (`--max_length`, `--policy_file`, `--confidence_threshold`,
`--others_label`, `--device`, ...) and the same policy: `--policy_file`, else `policy.json` in
the model directory when there is one, else the threshold flags.

Input is JSONL (a `text` field, an optional `id`) or CSV (a `text` column, an optional `id`
column). Output is JSONL or CSV, by extension, with `id`, `label`, `confidence`,
`probabilities`, `model_version` and `policy_version` per row. A bad row goes to
`<output>.errors.jsonl` with its line number and does not stop the run.

Restartable: rows are scored in chunks; after each chunk the output is flushed and fsynced and
a checkpoint (`<output>.checkpoint.json`) records the input position and the output sizes. A
run that finds a checkpoint truncates the output to the recorded sizes (dropping anything a
crash left half-written) and continues from the recorded input position: no row is scored
twice, none is skipped.

Parquet (`.parquet`), object storage (`s3://`, `gs://`, `az://`) and `--shard K/N` run through
`predictor.batch_parts` instead: chunk objects, a checkpoint object, a commit marker, and with
`--shard` one part per shard plus a manifest (layout in that module and docs/deploy.md). Local
JSONL/CSV without `--shard` stays on the path above.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from kserve_kit.cli import add_model_dir_argument
from kserve_kit.contract import DEFAULT_MODEL_NAME
from kserve_kit.modeldir import ModelInfo
from kserve_kit.policy import DecisionPolicy
from kserve_kit.settings import TextSettings, add_text_arguments
from kserve_kit.shards import INDEX_ENV, ShardSpec, parse_shard
from kserve_kit.tokenization import TextEncoder
from predictor.batch_progress import Progress
from predictor.batch_storage import Url, is_url
from predictor.config import PredictorSettings, add_runtime_arguments

CHECKPOINT_VERSION = 2  # 2: rows carry policy_version, the checkpoint records it
# Testing hook: "after-write:N" kills this process with SIGKILL once chunk N's rows are written
# and before its checkpoint is, the worst moment for a crash. Never set it in production.
FAULT_ENV = "KSERVE_KIT_BATCH_FAULT"


@dataclass(frozen=True)
class Row:
    line: int  # 1-based line (JSONL) or record (CSV) number in the input
    id: str
    text: str


@dataclass(frozen=True)
class BadRow:
    line: int
    error: str


@dataclass
class Checkpoint:
    """Where a run stands: the input consumed and the outputs written, both made durable."""

    input: str
    input_size: int
    model_version: str
    records_done: int
    input_offset: int  # bytes of input consumed (JSONL); CSV re-reads and skips records
    output_bytes: int
    errors_bytes: int
    rows_scored: int
    rows_bad: int
    rows_others: int
    policy_version: str
    version: int = CHECKPOINT_VERSION


# ----------------------------------------------------------------------------- reading


def _format(path) -> str:
    """The format of a path or URL, by its extension."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    if suffix == ".parquet":
        return "parquet"
    raise ValueError(
        f"{path}: expected a .jsonl, .csv or .parquet file, got {suffix or 'no extension'}"
    )


format_of = _format


def read_jsonl(
    path, offset: int, first_line: int, text_field="text", id_field="id", opener=open
) -> Iterator[tuple[int, Row | BadRow]]:
    """(byte offset after the line, row) for each line from `offset`; blank lines are skipped."""
    with opener(path, "rb") as f:
        f.seek(offset)
        line_no = first_line
        for raw in f:
            offset += len(raw)
            line_no += 1
            if raw.strip():
                yield offset, _jsonl_row(raw, line_no, text_field, id_field)


def _jsonl_row(raw: bytes, line: int, text_field="text", id_field="id") -> Row | BadRow:
    try:
        record = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return BadRow(line, f"not JSON: {exc}")
    if not isinstance(record, dict):
        return BadRow(
            line,
            f"expected a JSON object with a '{text_field}' field, got {type(record).__name__}",
        )
    return _row(record.get(text_field, _MISSING), record.get(id_field), line, text_field)


_MISSING = object()


def _row(text, row_id, line: int, text_field: str = "text") -> Row | BadRow:
    if text is _MISSING:
        return BadRow(line, f"no '{text_field}' field")
    if not isinstance(text, str):
        return BadRow(line, f"'{text_field}' must be a string, got {type(text).__name__}")
    if not text.strip():
        return BadRow(line, f"'{text_field}' is empty")
    return Row(line, str(line) if row_id is None else str(row_id), text)


def read_csv(
    path, skip: int, text_field="text", id_field="id", opener=None
) -> Iterator[tuple[int, Row | BadRow]]:
    """(0, row) for each CSV record after the first `skip` records."""
    if opener is None or opener is open:
        handle = open(path, newline="", encoding="utf-8")  # noqa: SIM115 - closed by with
    else:
        handle = io.TextIOWrapper(opener(path, "rb"), encoding="utf-8", newline="")
    with handle as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or text_field not in reader.fieldnames:
            raise ValueError(
                f"{path}: expected a CSV header with a '{text_field}' column, "
                f"got {reader.fieldnames}"
            )
        for number, record in enumerate(reader, start=1):
            if number <= skip:
                continue
            if None in record:  # more fields than the header names
                fields, named = len(reader.fieldnames) + len(record[None]), len(reader.fieldnames)
                yield 0, BadRow(number, f"{fields} fields, the header names {named}")
                continue
            text = record.get(text_field)
            yield (
                0,
                _row(
                    _MISSING if text is None else text,
                    record.get(id_field) or None,
                    number,
                    text_field,
                ),
            )


# ----------------------------------------------------------------------------- writing


class Sink:
    """The output and errors files, appended to and made durable chunk by chunk."""

    def __init__(self, output: Path, labels: Sequence[str], resume: Checkpoint | None):
        self.output = output
        self.errors = output.with_name(output.name + ".errors.jsonl")
        self.format = _format(output)
        self.labels = labels
        if resume is None:
            for path in (self.output, self.errors):
                path.unlink(missing_ok=True)
        else:  # drop whatever a crash wrote after the last checkpoint
            _truncate(self.output, resume.output_bytes)
            _truncate(self.errors, resume.errors_bytes)
        self._out = open(self.output, "ab")  # noqa: SIM115 - closed in close()
        self._err = open(self.errors, "ab")  # noqa: SIM115
        if self.format == "csv" and self._out.tell() == 0:
            self._out.write(
                self._csv_line(
                    [
                        "id",
                        "label",
                        "confidence",
                        "probabilities",
                        "model_version",
                        "policy_version",
                    ]
                )
            )

    @staticmethod
    def _csv_line(fields: list) -> bytes:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(fields)
        return buffer.getvalue().encode()

    def write(self, rows: list[Row], decisions, version: str, policy_version: str) -> None:
        chunks = []
        for i, row in enumerate(rows):
            probabilities = [round(float(p), 7) for p in decisions.probabilities[i]]
            record = {
                "id": row.id,
                "label": decisions.labels[i],
                "confidence": round(float(decisions.confidence[i]), 7),
                "probabilities": probabilities,
                "model_version": version,
                "policy_version": policy_version,
            }
            if self.format == "jsonl":
                chunks.append(json.dumps(record, ensure_ascii=False).encode() + b"\n")
            else:
                record["probabilities"] = json.dumps(probabilities)
                chunks.append(self._csv_line(list(record.values())))
        self._out.write(b"".join(chunks))

    def write_errors(self, bad: list[BadRow]) -> None:
        self._err.write(b"".join(json.dumps(asdict(b)).encode() + b"\n" for b in bad))

    def sync(self) -> tuple[int, int]:
        """Flush both files to disk; return their sizes."""
        for f in (self._out, self._err):
            f.flush()
            os.fsync(f.fileno())
        return self._out.tell(), self._err.tell()

    def close(self) -> None:
        self._out.close()
        self._err.close()


def _truncate(path: Path, size: int) -> None:
    with open(path, "ab") as f:
        f.truncate(size)


def _save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(asdict(checkpoint)))
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)  # atomic: a reader sees the old checkpoint or the new one


# ----------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class BatchSettings:
    input: Path | Url
    output: Path | Url
    runtime: PredictorSettings
    text: TextSettings
    chunk_rows: int
    progress: bool
    shard: ShardSpec | None = None
    text_column: str = "text"
    id_column: str = "id"
    passthrough_columns: tuple[str, ...] = ()
    s3_endpoint_url: str | None = None
    log_every_rows: int = 100_000

    @property
    def as_parts(self) -> bool:
        """Parquet, object storage or --shard: the run of predictor.batch_parts."""
        ends = (self.input, self.output)
        return (
            self.shard is not None
            or any(isinstance(p, Url) for p in ends)
            or any(_format(p) == "parquet" for p in ends)
        )


class Scorer:
    """Tokenize, forward and decide, exactly as transformer + predictor do online. The
    calibration command (`predictor.calibrate`) takes its logits from here too."""

    def __init__(
        self,
        runtime: PredictorSettings,
        info: ModelInfo,
        max_length: int,
        policy: DecisionPolicy | None = None,
    ):
        from predictor.runtime import TorchRuntime

        self.info = info
        self.policy = policy
        self.rows_per_forward = runtime.max_batch_size
        self.encoder = TextEncoder(info, max_length)
        self.runtime = TorchRuntime.load(runtime)
        print(f"scoring with {self.runtime.summary}", file=sys.stderr)

    def logits(self, texts: list[str]):
        """float32 logits `[N, C]` for `texts`, in their order. Texts of similar length share a
        forward, so little of each forward is padding; the order is restored afterwards."""
        import numpy as np

        encoded = self.encoder.encode(texts)  # right-padded to the longest
        lengths = encoded.attention_mask.sum(axis=1)
        order = np.argsort(lengths, kind="stable")
        logits = np.empty((len(texts), len(self.info.labels)), dtype=np.float32)
        for start in range(0, len(texts), self.rows_per_forward):
            picked = order[start : start + self.rows_per_forward]
            width = int(lengths[picked].max())  # drop the columns that are padding for all
            logits[picked] = self.runtime.forward(
                encoded.input_ids[picked, :width], encoded.attention_mask[picked, :width]
            )
        return logits

    def score(self, rows: list[Row]):
        """Decisions for `rows`, in their order, by the scorer's policy."""
        return self.policy.decide(self.logits([row.text for row in rows]), self.info.labels)


def _fault_after_write() -> int | None:
    spec = os.environ.get(FAULT_ENV, "")
    return int(spec.split(":", 1)[1]) if spec.startswith("after-write:") else None


def run(config: BatchSettings):
    if config.as_parts:
        from predictor.batch_parts import run_parts

        info = ModelInfo.load(config.runtime.model_dir)
        policy = config.text.policy(info)  # a bad policy file stops here, before any write
        return run_parts(
            config,
            info,
            policy,
            lambda: Scorer(config.runtime, info, config.text.max_length, policy),
        )
    return run_local(config)


def run_local(config: BatchSettings) -> Checkpoint:
    """A local JSONL or CSV file to a local JSONL or CSV file, appended to and truncated back
    on resume (the behaviour before Parquet and object storage, unchanged)."""
    info = ModelInfo.load(config.runtime.model_dir)
    input_format = _format(config.input)
    checkpoint_path = config.output.with_name(config.output.name + ".checkpoint.json")
    input_size = config.input.stat().st_size
    policy = config.text.policy(info)  # a bad policy file stops here, before any write
    resume = _load_resume(checkpoint_path, config, input_size, info.version, policy.version)

    scorer = Scorer(config.runtime, info, config.text.max_length, policy)
    config.output.parent.mkdir(parents=True, exist_ok=True)
    sink = Sink(config.output, info.labels, resume)
    state = resume or _first_checkpoint(config, input_size, info.version, policy.version)
    state.output_bytes, state.errors_bytes = sink.sync()
    _save_checkpoint(checkpoint_path, state)

    records = _records(config, input_format, state)
    progress = _progress(config, input_format, state)
    started, scored_before = time.perf_counter(), state.rows_scored
    committer = _Committer(scorer, sink, state, checkpoint_path, progress)
    for chunk in _chunks(records, config.chunk_rows, state.records_done, state.input_offset):
        committer.commit(chunk)

    sink.close()
    if progress is not None:
        progress.close()
    checkpoint_path.unlink()
    print(
        summary(state, scored_before, started, sink.errors.name, policy, info)
        + f" -> {config.output}",
        file=sys.stderr,
    )
    return state


def _first_checkpoint(
    config: BatchSettings, input_size: int, version: str, policy_version: str
) -> Checkpoint:
    """A run's state before its first chunk: nothing read, nothing written."""
    return Checkpoint(
        input=str(config.input.resolve()),
        input_size=input_size,
        model_version=version,
        records_done=0,
        input_offset=0,
        output_bytes=0,
        errors_bytes=0,
        rows_scored=0,
        rows_bad=0,
        rows_others=0,
        policy_version=policy_version,
    )


def _records(
    config: BatchSettings, input_format: str, state: Checkpoint
) -> Iterator[tuple[int, Row | BadRow]]:
    """The input's records after those the checkpoint counts as done."""
    if input_format == "jsonl":
        return read_jsonl(
            config.input, state.input_offset, state.records_done, config.text_column,
            config.id_column,
        )  # fmt: skip
    return read_csv(config.input, state.records_done, config.text_column, config.id_column)


@dataclass
class Chunk:
    """Records scored and checkpointed together, and the input position after the last."""

    rows: list[Row]
    bad: list[BadRow]
    last_line: int
    offset: int  # bytes of input consumed (JSONL); CSV keeps the previous one


def _chunks(
    records: Iterator[tuple[int, Row | BadRow]], chunk_rows: int, last_line: int, offset: int
) -> Iterator[Chunk]:
    """`records` in chunks of `chunk_rows`, good and bad rows counted alike; the last chunk may
    be shorter. Lazy: a chunk is committed before the next one is read."""
    rows: list[Row] = []
    bad: list[BadRow] = []
    for offset_after, record in records:
        (rows if isinstance(record, Row) else bad).append(record)
        last_line, offset = record.line, offset_after or offset
        if len(rows) + len(bad) >= chunk_rows:
            yield Chunk(rows, bad, last_line, offset)
            rows, bad = [], []
    if rows or bad:
        yield Chunk(rows, bad, last_line, offset)


class _Committer:
    """Scores each chunk, appends it to the outputs, makes them durable, then checkpoints: a
    crash at any point leaves a checkpoint that the outputs reach at least."""

    def __init__(
        self,
        scorer: Scorer,
        sink: Sink,
        state: Checkpoint,
        checkpoint_path: Path,
        progress: Progress | None,
    ):
        self.scorer = scorer
        self.sink = sink
        self.state = state
        self.checkpoint_path = checkpoint_path
        self.progress = progress
        self.fault_chunk = _fault_after_write()
        self.chunks = 0

    def commit(self, chunk: Chunk) -> None:
        state, policy = self.state, self.scorer.policy
        if chunk.rows:
            decisions = self.scorer.score(chunk.rows)
            self.sink.write(chunk.rows, decisions, self.scorer.info.version, policy.version)
            state.rows_others += decisions.labels.count(policy.others_label)
        self.sink.write_errors(chunk.bad)
        self.chunks += 1
        if self.chunks == self.fault_chunk:
            self._crash()
        state.output_bytes, state.errors_bytes = self.sink.sync()
        state.records_done, state.input_offset = chunk.last_line, chunk.offset
        state.rows_scored += len(chunk.rows)
        state.rows_bad += len(chunk.bad)
        _save_checkpoint(self.checkpoint_path, state)
        if self.progress is not None:
            self.progress.update(len(chunk.rows) + len(chunk.bad))

    def _crash(self) -> None:
        """The testing hook (FAULT_ENV): die with this chunk written and not checkpointed."""
        self.sink.sync()
        os.kill(os.getpid(), signal.SIGKILL)


def summary(state, scored_before: int, started: float, errors: str, policy, info) -> str:
    """The run's last line on stderr: rows scored (in all and in this run), speed, bad rows,
    the share answered with the others label, and what decided."""
    elapsed = time.perf_counter() - started
    scored_now = state.rows_scored - scored_before
    others_share = state.rows_others / state.rows_scored if state.rows_scored else 0.0
    return (
        f"scored {state.rows_scored} rows ({scored_now} in this run, "
        f"{scored_now / elapsed if elapsed > 0 else 0:.1f} rows/s), {state.rows_bad} bad rows "
        f"in {errors}, {others_share:.1%} answered '{policy.others_label}'; "
        f"model {info.version}, policy {policy.version}"
    )


def _load_resume(
    path: Path, config: BatchSettings, input_size: int, version: str, policy_version: str
) -> Checkpoint | None:
    if not path.exists():
        if config.output.exists():
            raise ValueError(
                f"{config.output} exists and has no checkpoint: it is a finished run. "
                "Remove it (or choose another --output) to score again"
            )
        return None
    raw = json.loads(path.read_text())
    if raw.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{path} was written by another version of the batch command")
    saved = Checkpoint(**raw)
    if (saved.input, saved.input_size) != (str(config.input.resolve()), input_size):
        raise ValueError(
            f"{path} belongs to another input ({saved.input}, {saved.input_size} bytes)"
        )
    if saved.model_version != version:
        raise ValueError(f"{path} was scored with model {saved.model_version}, not {version}")
    if saved.policy_version != policy_version:
        raise ValueError(
            f"{path} was decided with policy {saved.policy_version}, not {policy_version}: "
            "one output holds one policy's answers"
        )
    print(
        f"resuming after input record {saved.records_done} ({saved.rows_scored} rows scored)",
        file=sys.stderr,
    )
    return saved


def _progress(config: BatchSettings, input_format: str, state: Checkpoint) -> Progress | None:
    """A bar on a terminal (the input counted first, for the ETA), else a log line every
    --log_every_rows rows."""
    if not config.progress and config.log_every_rows <= 0:
        return None
    total = None
    if config.progress:
        with open(config.input, "rb") as f:
            total = sum(1 for line in f if line.strip()) - (1 if input_format == "csv" else 0)
    return Progress(
        "rows", total, state.rows_scored + state.rows_bad, config.progress, config.log_every_rows
    )


# ----------------------------------------------------------------------------- command line


def _location(text: str) -> Path | Url:
    """A local path, or an s3:// gs:// az:// URL (kept as text: a Path would fold its //)."""
    return Url(text) if is_url(text) else Path(text)


def _output_path(text: str) -> Path | Url:
    return _location(text.replace("{date}", time.strftime("%Y-%m-%d", time.gmtime())))


def offline_parser(description: str, policy_file: bool = True) -> argparse.ArgumentParser:
    """The predictor's runtime flags and the transformer's text flags, for a command that
    scores in-process (this one, `predictor.calibrate`): no server flags, so building it does
    not import KServe's server."""
    # No abbreviations: a misspelt flag in a manifest must fail, not match a longer one.
    parser = argparse.ArgumentParser(description=description, allow_abbrev=False)
    add_model_dir_argument(parser)
    add_runtime_arguments(parser)
    add_text_arguments(parser, policy_file=policy_file)
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
        _format(args.input)
        _format(args.output)
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
