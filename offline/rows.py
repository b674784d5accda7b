"""The offline commands' input rows: JSONL and CSV read record by record, each record a `Row`
to score or a `BadRow` that goes to the errors file with its line number. (Parquet input is
`offline.parquet`; the rows it yields are made by `row_of` here, so every format checks a text
the same way.)"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    line: int  # 1-based line (JSONL) or record (CSV) number in the input
    id: str
    text: str


@dataclass(frozen=True)
class BadRow:
    line: int
    error: str


def format_of(path) -> str:
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
    return row_of(record.get(text_field, MISSING), record.get(id_field), line, text_field)


MISSING = object()


def row_of(text, row_id, line: int, text_field: str = "text") -> Row | BadRow:
    if text is MISSING:
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
                row_of(
                    MISSING if text is None else text,
                    record.get(id_field) or None,
                    number,
                    text_field,
                ),
            )
