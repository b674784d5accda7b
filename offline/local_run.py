"""A local JSONL or CSV file scored into a local JSONL or CSV file, restartably.

Rows are scored in chunks; after each chunk the output is flushed and fsynced and a checkpoint
(`<output>.checkpoint.json`) records the input position and the output sizes. A run that finds
a checkpoint truncates the output to the recorded sizes (dropping anything a crash left
half-written) and continues from the recorded input position: no row is scored twice, none is
skipped. (Parquet, object stores and shards are `offline.parts_run`: they cannot append.)
"""

from __future__ import annotations

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

from kserve_kit.modeldir import ModelInfo
from offline.faults import fault_after_write
from offline.progress import Progress, summary
from offline.rows import BadRow, Row, format_of, read_csv, read_jsonl
from offline.scoring import Scorer
from offline.settings import BatchSettings

CHECKPOINT_VERSION = 2  # 2: rows carry policy_version, the checkpoint records it


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


class Sink:
    """The output and errors files, appended to and made durable chunk by chunk."""

    def __init__(self, output: Path, labels: Sequence[str], resume: Checkpoint | None):
        self.output = output
        self.errors = output.with_name(output.name + ".errors.jsonl")
        self.format = format_of(output)
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


def run_local(config: BatchSettings) -> Checkpoint:
    """A local JSONL or CSV file to a local JSONL or CSV file, appended to and truncated back
    on resume (the behaviour before Parquet and object storage, unchanged)."""
    info = ModelInfo.load(config.runtime.model_dir)
    input_format = format_of(config.input)
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
        self.fault_chunk = fault_after_write()
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
