"""The batch command's settings: what `offline.batch` parsed, for the runs to read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kserve_kit.settings import TextSettings
from offline.rows import format_of
from offline.shards import ShardSpec
from offline.stores import Url
from predictor.config import PredictorSettings


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
        """Parquet, object storage or --shard: the run of offline.parts_run."""
        ends = (self.input, self.output)
        return (
            self.shard is not None
            or any(isinstance(p, Url) for p in ends)
            or any(format_of(p) == "parquet" for p in ends)
        )
