"""Labelled texts for the offline commands that measure a model (calibration, the coming
champion/challenger comparison): JSONL or CSV rows with `text` and `label`, checked against the
model's labels, split by label with a seed. A row labelled with the others label is a text the
model should refuse."""

from __future__ import annotations

import csv
import json
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# Each part needs this many in-domain rows: below it a temperature or a threshold is noise.
MIN_PART_ROWS = 10


class DataError(ValueError):
    """Labelled data the command cannot calibrate with; one line."""


@dataclass(frozen=True)
class Example:
    text: str
    label: str


def read_examples(path: Path) -> list[Example]:
    """Every row of a JSONL or CSV file with `text` and `label`; raises DataError at the
    first bad row, naming its line."""
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".ndjson", ".csv"):
        raise DataError(f"{path}: expected a .jsonl or .csv file, got {suffix or 'no extension'}")
    try:
        examples = _read_csv(path) if suffix == ".csv" else _read_jsonl(path)
    except OSError as exc:
        raise DataError(f"{path}: expected a readable file, got {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: expected UTF-8 text, got {exc.reason}") from None
    if not examples:
        raise DataError(f"{path}: expected labelled rows (text and label), got an empty file")
    return examples


def _read_jsonl(path: Path) -> list[Example]:
    examples = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{line_no}: expected a JSON object, got {exc}") from None
            if not isinstance(record, dict):
                raise DataError(
                    f"{path}:{line_no}: expected a JSON object with text and label, "
                    f"got {type(record).__name__}"
                )
            examples.append(_example(record.get("text"), record.get("label"), path, line_no))
    return examples


def _read_csv(path: Path) -> list[Example]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        if "text" not in fields or "label" not in fields:
            raise DataError(f"{path}: expected a header with text and label columns, got {fields}")
        return [
            _example(record.get("text"), record.get("label"), path, number)
            for number, record in enumerate(reader, start=2)  # line 1 is the header
        ]


def _example(text, label, path: Path, line: int) -> Example:
    for name, value in (("text", text), ("label", label)):
        if not isinstance(value, str) or not value.strip():
            got = "nothing" if value is None else repr(value)[:40]
            raise DataError(f"{path}:{line}: {name}: expected a non-empty string, got {got}")
    return Example(text, label.strip())


def check_labels(examples: Sequence[Example], labels: Sequence[str], others_label: str, source):
    known = set(labels) | {others_label}
    unknown = sorted({e.label for e in examples} - known)
    if unknown:
        raise DataError(
            f"{source}: label: expected one of the model's labels ({', '.join(labels)}) or "
            f"{others_label!r}, got {', '.join(map(repr, unknown[:5]))}"
        )


def split(
    examples: Sequence[Example], calibration_share: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """(calibration, held-out), stratified: each label's rows are shuffled with `seed` and
    the first `round(share * n)` go to calibration."""
    by_label: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        by_label[example.label].append(example)
    rng = random.Random(seed)
    calibration, heldout = [], []
    for label in sorted(by_label):
        rows = by_label[label]
        rng.shuffle(rows)
        cut = round(len(rows) * calibration_share)
        calibration += rows[:cut]
        heldout += rows[cut:]
    return calibration, heldout


def check_sizes(calibration, heldout, others_label: str, source) -> None:
    sizes = [sum(e.label != others_label for e in part) for part in (calibration, heldout)]
    if min(sizes) < MIN_PART_ROWS:
        raise DataError(
            f"{source}: expected at least {MIN_PART_ROWS} in-domain rows in the calibration "
            f"and in the held-out part, got {sizes[0]} and {sizes[1]} "
            f"(of {len(calibration) + len(heldout)} rows)"
        )
