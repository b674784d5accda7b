"""The offline run as parts: Parquet, object storage and `--shard K/N`.

Object stores cannot append or truncate, so a part is built from chunk objects: each chunk of
rows is scored, written as its own object under the part's work prefix, then recorded in the
part's checkpoint. A restarted run deletes the chunk objects its checkpoint does not list (a
crash between the two) and goes on after the recorded row: nothing is scored twice or lost.
At the end the chunks are concatenated (a row group per chunk for Parquet) into a temporary
object, moved into place, and a commit marker is written; only then is the part done.

Layout, for `--output OUT` (a path or URL, its extension the format):

without --shard (one part, no manifest):
    OUT                       the rows            OUT.errors.jsonl   the bad rows
    OUT.work/                 chunks + checkpoint while running, removed on commit
    OUT.committed.json        commit marker: written last; a run that finds it refuses
with --shard K/N (OUT is a directory / prefix):
    OUT/part-0000K-of-0000N.EXT        the rows of shard K
    OUT/_errors/part-0000K-of-0000N.errors.jsonl
    OUT/_work/part-0000K-of-0000N/     chunks + checkpoint while running
    OUT/_committed/part-0000K-of-0000N.json   the part's commit marker (rows, versions)
    OUT/_manifest.json        written by whichever shard commits the last missing part:
                              rows per part, model and policy versions; the run is complete
A re-run of a committed shard deletes its marker and the manifest, scores its rows again and
replaces its own part; the other parts are not touched.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import sys
import time
from dataclasses import asdict, dataclass

from kserve_kit.modeldir import ModelInfo
from offline import parquet
from offline.faults import fault_after_write
from offline.progress import Progress, summary
from offline.rows import BadRow, Row, format_of, read_csv, read_jsonl, row_of
from offline.shards import ShardSpec, build_manifest
from offline.stores import Store, check_readable, check_writable, open_store

PARTS_CHECKPOINT_VERSION = 1
COLUMNS = ("id", "label", "confidence", "probabilities", "model_version", "policy_version")
_CHUNK = re.compile(r"(chunk|errors)-(\d{6})\.")


@dataclass
class PartCheckpoint:
    input: str
    input_size: int
    shard: str
    model_version: str
    policy_version: str
    rows_done: int  # rows of this shard consumed (Parquet) / records (JSONL, CSV)
    input_offset: int  # bytes consumed (JSONL)
    chunks: int  # chunk objects written and recorded
    rows_scored: int
    rows_bad: int
    rows_others: int
    version: int = PARTS_CHECKPOINT_VERSION


@dataclass(frozen=True)
class Layout:
    store: Store
    data: str
    errors: str
    work: str
    marker: str
    manifest: str | None  # None: one part, no manifest
    committed_dir: str | None


def layout(store: Store, out: str, shard: ShardSpec | None, ext: str) -> Layout:
    if shard is None:
        return Layout(
            store, out, f"{out}.errors.jsonl", f"{out}.work", f"{out}.committed.json", None, None
        )
    j = store.join
    return Layout(
        store,
        data=j(out, f"{shard.name}{ext}"),
        errors=j(out, "_errors", f"{shard.name}.errors.jsonl"),
        work=j(out, "_work", shard.name),
        marker=j(out, "_committed", f"{shard.name}.json"),
        manifest=j(out, "_manifest.json"),
        committed_dir=j(out, "_committed"),
    )


# ----------------------------------------------------------------------------- encoding


def _records(rows_ids, decisions, version, policy_version) -> dict[str, list]:
    import numpy as np

    return {
        "id": rows_ids,
        "label": list(decisions.labels),
        "confidence": np.round(np.asarray(decisions.confidence, dtype=np.float64), 7).tolist(),
        "probabilities": np.round(
            np.asarray(decisions.probabilities, dtype=np.float64), 7
        ).tolist(),
        "model_version": [version] * len(rows_ids),
        "policy_version": [policy_version] * len(rows_ids),
    }


def _csv_line(fields) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(fields)
    return buffer.getvalue().encode()


def encode_chunk(fmt: str, columns: dict[str, list], names: list[str], schema) -> bytes:
    if fmt == "parquet":
        return parquet.encode_table(columns, schema)
    out = []
    for i in range(len(columns["id"])):
        record = {name: columns[name][i] for name in names}
        if fmt == "jsonl":
            out.append(json.dumps(record, ensure_ascii=False, default=str).encode() + b"\n")
        else:
            record["probabilities"] = json.dumps(record["probabilities"])
            out.append(_csv_line(list(record.values())))
    return b"".join(out)


# ----------------------------------------------------------------------------- reading


def _open_parquet(config, store: Store, path: str, shard) -> parquet.ParquetInput:
    """The input's footer, its columns checked: a missing or non-string column stops the run
    here, before anything is written."""
    return parquet.ParquetInput(
        store.fs.open(path, "rb"),
        store.url(path),
        config.text_column,
        config.id_column,
        config.passthrough_columns,
        shard or ShardSpec(0, 1),
    )


def _input_chunks(config, store: Store, path: str, fmt: str, state: PartCheckpoint, source):
    """(rows in this part or None, first row's number, chunks) where each chunk is
    (input position after it, rows consumed, byte offset after it, rows, bad rows, extras)."""
    if source is not None:
        return source.rows, source.first_row, _parquet_records(config, source, state)
    opener = (lambda p, mode: store.fs.open(p, mode)) if store.scheme != "file" else open
    if fmt == "jsonl":
        records = read_jsonl(
            path, state.input_offset, state.rows_done, config.text_column, config.id_column, opener
        )
    else:
        records = read_csv(path, state.rows_done, config.text_column, config.id_column, opener)
    return None, 1, _line_records(config, records)


def _parquet_records(config, source, state):
    done = state.rows_done
    for chunk in source.chunks(state.rows_done, config.chunk_rows):
        rows, bad, extras = [], [], {c: [] for c in chunk.extras}
        for i, text in enumerate(chunk.texts):
            number = chunk.first_row + i
            if text is None:
                record = BadRow(number, f"'{config.text_column}' is null")
            else:
                record = row_of(text, chunk.ids[i], number, config.text_column)
            if isinstance(record, Row):
                rows.append(record)
                for c in extras:
                    extras[c].append(chunk.extras[c][i])
            else:
                bad.append(record)
        done += len(chunk.texts)
        yield done, len(chunk.texts), 0, rows, bad, extras


def _line_records(config, records):
    rows, bad, last_line, offset = [], [], 0, 0
    for offset_after, record in records:
        (rows if isinstance(record, Row) else bad).append(record)
        last_line, offset = record.line, offset_after or offset
        if len(rows) + len(bad) >= config.chunk_rows:
            yield last_line, len(rows) + len(bad), offset, rows, bad, {}
            rows, bad = [], []
    if rows or bad:
        yield last_line, len(rows) + len(bad), offset, rows, bad, {}


# ----------------------------------------------------------------------------- the run


def run_parts(config, info: ModelInfo, policy, scorer_factory) -> PartCheckpoint:
    in_store, in_path = open_store(str(config.input), config.s3_endpoint_url)
    out_store, out_path = open_store(str(config.output), config.s3_endpoint_url)
    in_fmt, out_fmt = format_of(config.input), format_of(config.output)
    shard: ShardSpec | None = config.shard
    if shard is not None and in_fmt != "parquet" and shard.count > 1:
        raise ValueError(
            f"--shard {shard}: expected a Parquet input (shards are runs of row groups), got "
            f"{in_fmt}; convert it, or run one shard"
        )
    if config.passthrough_columns and in_fmt != "parquet":
        raise ValueError(f"--passthrough_columns: expected a Parquet input, got {in_fmt}")
    input_size = check_readable(in_store, in_path, f"{in_fmt} input")
    input_url = in_store.url(in_path)
    source = _open_parquet(config, in_store, in_path, shard) if in_fmt == "parquet" else None
    ext = os.path.splitext(out_path)[1]
    lay = layout(out_store, out_path, shard, ext)
    st = out_store
    checkpoint_path = st.join(lay.work, "checkpoint.json")
    check_writable(st, st.join(lay.work, "probe.json"))  # bucket, credentials, endpoint

    shard_text = str(shard or ShardSpec(0, 1))
    if st.exists(lay.marker):
        if shard is None:
            raise ValueError(
                f"{st.url(lay.data)} is a finished run ({st.url(lay.marker)}). Remove both (or "
                "choose another --output) to score again"
            )
        print(
            f"part {shard_text}: committed before; scoring it again to replace it", file=sys.stderr
        )
        if lay.manifest:
            st.remove(lay.manifest)
        st.remove(lay.marker)
        st.remove(lay.work, recursive=True)

    saved = st.read_json(checkpoint_path)
    fresh = PartCheckpoint(
        input_url, input_size, shard_text, info.version, policy.version, 0, 0, 0, 0, 0, 0
    )
    if saved is None:
        st.remove(lay.work, recursive=True)  # leftovers of a run that never checkpointed
        state = fresh
    else:
        state = _check_resume(saved, fresh, st.url(checkpoint_path))
        for name in st.listdir(lay.work):  # chunks written after the last checkpoint
            found = _CHUNK.search(os.path.basename(name))
            if found and int(found.group(2)) >= state.chunks:
                st.remove(name)
        print(
            f"part {shard_text}: resuming after {state.rows_done} input rows "
            f"({state.rows_scored} rows scored)",
            file=sys.stderr,
        )
    st.put_json(checkpoint_path, asdict(state))

    total, first_row, chunks = _input_chunks(config, in_store, in_path, in_fmt, state, source)
    extra_fields = source.extra_schema if source is not None else []
    schema = parquet.output_schema(extra_fields) if out_fmt == "parquet" else None
    names = [*COLUMNS, *config.passthrough_columns]
    scorer = scorer_factory()
    progress = Progress(
        f"part {shard_text}",
        total,
        state.rows_done if in_fmt == "parquet" else state.rows_scored + state.rows_bad,
        config.progress,
        config.log_every_rows,
    )
    fault_chunk = fault_after_write()
    started, scored_before, written = time.perf_counter(), state.rows_scored, 0

    for done, consumed, offset, rows, bad, extras in chunks:
        n = state.chunks
        if rows:
            decisions = scorer.score(rows)
            columns = _records([r.id for r in rows], decisions, info.version, policy.version)
            columns.update(extras)
            st.put_bytes(
                st.join(lay.work, f"chunk-{n:06d}{ext}"),
                encode_chunk(out_fmt, columns, names, schema),
            )
            state.rows_others += decisions.labels.count(policy.others_label)
        if bad:
            st.put_bytes(
                st.join(lay.work, f"errors-{n:06d}.jsonl"),
                b"".join(json.dumps(asdict(b)).encode() + b"\n" for b in bad),
            )
        written += 1
        if fault_chunk is not None and written == fault_chunk:
            os.kill(os.getpid(), signal.SIGKILL)
        state.chunks += 1
        state.rows_done = done
        state.input_offset = offset or state.input_offset
        state.rows_scored += len(rows)
        state.rows_bad += len(bad)
        st.put_json(checkpoint_path, asdict(state))
        progress.update(consumed)
    progress.close()

    _commit(lay, state, out_fmt, ext, schema, names, first_row, total)
    line = summary(state, scored_before, started, st.url(lay.errors), policy, info)
    print(f"{line}, part {shard_text} -> {st.url(lay.data)}", file=sys.stderr)
    if lay.manifest:
        _write_manifest_when_complete(lay, shard)
    return state


def _check_resume(saved: dict, fresh: PartCheckpoint, where: str) -> PartCheckpoint:
    if saved.get("version") != PARTS_CHECKPOINT_VERSION:
        raise ValueError(f"{where} was written by another version of the batch command")
    state = PartCheckpoint(**saved)
    if (state.input, state.input_size) != (fresh.input, fresh.input_size):
        raise ValueError(
            f"{where} belongs to another input ({state.input}, {state.input_size} bytes)"
        )
    if state.shard != fresh.shard:
        raise ValueError(f"{where} belongs to shard {state.shard}, not {fresh.shard}")
    if state.model_version != fresh.model_version:
        raise ValueError(
            f"{where} was scored with model {state.model_version}, not {fresh.model_version}"
        )
    if state.policy_version != fresh.policy_version:
        raise ValueError(
            f"{where} was decided with policy {state.policy_version}, not {fresh.policy_version}: "
            "one output holds one policy's answers"
        )
    return state


def _commit(lay: Layout, state: PartCheckpoint, fmt, ext, schema, names, first_row, total):
    st = lay.store
    chunk_names = [st.join(lay.work, f"chunk-{n:06d}{ext}") for n in range(state.chunks)]
    chunk_names = [c for c in chunk_names if st.exists(c)]
    error_names = [st.join(lay.work, f"errors-{n:06d}.jsonl") for n in range(state.chunks)]
    error_names = [e for e in error_names if st.exists(e)]
    tmp_data = st.join(lay.work, f"assembled{ext}")
    with st.fs.open(tmp_data, "wb") as out:
        if fmt == "parquet":
            parquet.concatenate([lambda c=c: st.fs.open(c, "rb") for c in chunk_names], out, schema)
        else:
            if fmt == "csv":
                out.write(_csv_line(names))
            for c in chunk_names:
                out.write(st.fs.cat_file(c))
    tmp_errors = st.join(lay.work, "assembled.errors.jsonl")
    with st.fs.open(tmp_errors, "wb") as out:
        for e in error_names:
            out.write(st.fs.cat_file(e))
    st.move(tmp_data, lay.data)
    st.move(tmp_errors, lay.errors)
    shard = ShardSpec(*map(int, state.shard.split("/")))
    st.put_json(
        lay.marker,
        {
            "part": os.path.basename(lay.data),
            "errors": os.path.basename(lay.errors),
            "shard": {"index": shard.index, "count": shard.count},
            "input": state.input,
            "model_version": state.model_version,
            "policy_version": state.policy_version,
            "rows_scored": state.rows_scored,
            "rows_bad": state.rows_bad,
            "rows_others": state.rows_others,
            "first_row": first_row,
            "rows_in": total if total is not None else state.rows_scored + state.rows_bad,
        },
    )
    st.remove(lay.work, recursive=True)


def _write_manifest_when_complete(lay: Layout, shard: ShardSpec) -> None:
    st = lay.store
    markers = [st.read_json(p) for p in st.listdir(lay.committed_dir) if p.endswith(".json")]
    markers = [m for m in markers if m is not None]
    if len(markers) < shard.count:
        print(
            f"{len(markers)} of {shard.count} parts committed; the last to commit writes "
            f"{st.url(lay.manifest)}",
            file=sys.stderr,
        )
        return
    manifest = build_manifest(markers, shard.count)
    st.put_json(lay.manifest, manifest)
    print(f"all {shard.count} parts committed: {st.url(lay.manifest)}", file=sys.stderr)
