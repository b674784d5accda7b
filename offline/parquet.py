"""Parquet for the offline command (pyarrow): the input read a chunk at a time from the row
groups of one shard, the output written one row group per chunk, so that memory follows the
chunk and the input's row-group size, never the file's size."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from offline.shards import ShardSpec, row_group_range

_STRING_TYPES = ("string", "large_string", "string_view")


@dataclass(frozen=True)
class Chunk:
    """Rows read from the input: `first_row` is the 1-based row number of `texts[0]`."""

    first_row: int
    ids: list  # None where the input has no id column
    texts: list
    extras: dict[str, list]  # passed-through columns, aligned with texts


class ParquetInput:
    """The row groups of one shard of a Parquet file, its columns checked on opening."""

    def __init__(
        self,
        file,
        url: str,
        text_column: str,
        id_column: str,
        passthrough: Sequence[str],
        shard: ShardSpec,
    ):
        import pyarrow.parquet as pq

        self.url = url
        try:
            self.file = pq.ParquetFile(file)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises ArrowInvalid and OSError
            raise ValueError(f"{url}: expected a Parquet file, got {exc}") from exc
        schema = self.file.schema_arrow
        names = schema.names
        wanted = [text_column, *passthrough]
        missing = [c for c in wanted if c not in names]
        if missing:
            raise ValueError(
                f"{url}: expected column(s) {missing} (--text_column / --passthrough_columns), "
                f"got columns {names}"
            )
        text_type = str(schema.field(text_column).type)
        if text_type not in _STRING_TYPES:
            raise ValueError(
                f"{url}: expected a string column '{text_column}' for the texts, got {text_type}"
            )
        self.text_column = text_column
        self.id_column = id_column if id_column in names else None
        self.passthrough = list(passthrough)
        self.extra_schema = [schema.field(c) for c in passthrough]
        metadata = self.file.metadata
        sizes = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
        self.groups = row_group_range(len(sizes), shard)
        self.group_sizes = [sizes[i] for i in self.groups]
        self.first_row = sum(sizes[: self.groups.start]) + 1  # 1-based, in the whole file
        self.rows = sum(self.group_sizes)  # this shard's rows

    def chunks(self, skip: int, chunk_rows: int) -> Iterator[Chunk]:
        """Chunks of `chunk_rows` rows (fewer at row-group ends) after the first `skip` rows of
        the shard; whole row groups before `skip` are not read at all."""
        groups, row = list(self.groups), self.first_row
        while groups and skip >= self.group_sizes[len(self.groups) - len(groups)]:
            size = self.group_sizes[len(self.groups) - len(groups)]
            skip, row, groups = skip - size, row + size, groups[1:]
        if not groups:
            return
        columns = [self.text_column, *self.passthrough]
        if self.id_column and self.id_column not in columns:
            columns.append(self.id_column)
        for batch in self.file.iter_batches(
            batch_size=chunk_rows, row_groups=groups, columns=columns, use_threads=False
        ):
            n = batch.num_rows
            if skip >= n:
                skip, row = skip - n, row + n
                continue
            if skip:
                batch, row, skip = batch.slice(skip), row + skip, 0
            data = {name: batch.column(name).to_pylist() for name in set(columns)}
            yield Chunk(
                first_row=row,
                ids=data[self.id_column] if self.id_column else [None] * batch.num_rows,
                texts=data[self.text_column],
                extras={c: data[c] for c in self.passthrough},
            )
            row += batch.num_rows


def output_schema(extra_fields: Sequence = ()):
    import pyarrow as pa

    return pa.schema(
        [
            ("id", pa.string()),
            ("label", pa.string()),
            ("confidence", pa.float64()),
            ("probabilities", pa.list_(pa.float64())),
            ("model_version", pa.string()),
            ("policy_version", pa.string()),
            *extra_fields,
        ]
    )


def encode_table(columns: dict[str, list], schema) -> bytes:
    """One chunk's output rows as a Parquet file of one row group."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({name: columns[name] for name in schema.names}, schema=schema)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, row_group_size=max(1, table.num_rows))
    return sink.getvalue().to_pybytes()


def concatenate(sources: Sequence, out, schema) -> None:
    """Write the chunk files `sources` (open binary files, in order) to `out` as one Parquet
    file, a row group per chunk: one chunk in memory at a time."""
    import pyarrow.parquet as pq

    with pq.ParquetWriter(out, schema) as writer:
        for source in sources:
            with source() as f:
                writer.write_table(pq.read_table(f, schema=schema))
