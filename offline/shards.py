"""Sharding an offline run: which part of the input shard K of N scores, what its part is
called, and the manifest that marks a run of N parts complete. Pure: no I/O, no pyarrow.

A shard is `K/N` with 0 <= K < N (the Kubernetes Indexed Job's `JOB_COMPLETION_INDEX` and
`completions`). A Parquet input of G row groups is cut into N contiguous runs of row groups,
shard K taking `[K*G//N, (K+1)*G//N)`: deterministic, disjoint, together the whole file, and
known from the footer alone, so no shard reads another's rows.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

INDEX_ENV = "JOB_COMPLETION_INDEX"  # set by the Job controller in an Indexed Job's pods
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class ShardSpec:
    index: int
    count: int

    @property
    def name(self) -> str:
        """The part's name: `part-00002-of-00004`, sorting in shard order."""
        return f"part-{self.index:05d}-of-{self.count:05d}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str, env: Mapping[str, str] | None = None) -> ShardSpec:
    """`K/N`, or `index/N` where K comes from `JOB_COMPLETION_INDEX` (an Indexed Job's pod)."""
    env = os.environ if env is None else env
    expected = "expected K/N with 0 <= K < N (or index/N in an Indexed Job)"
    index_text, sep, count_text = text.partition("/")
    if not sep:
        raise ValueError(f"--shard: {expected}, got {text!r}")
    if index_text == "index":
        if INDEX_ENV not in env:
            raise ValueError(f"--shard {text}: expected {INDEX_ENV} in the environment, got none")
        index_text = env[INDEX_ENV]
    try:
        index, count = int(index_text), int(count_text)
    except ValueError:
        raise ValueError(f"--shard: {expected}, got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"--shard: {expected}, got {index}/{count}")
    return ShardSpec(index, count)


def row_group_range(groups: int, shard: ShardSpec) -> range:
    """The row groups shard K of N scores, out of `groups`."""
    return range(shard.index * groups // shard.count, (shard.index + 1) * groups // shard.count)


def build_manifest(markers: Sequence[Mapping], shard_count: int) -> dict:
    """The run's manifest from its parts' commit markers: one per shard 0..N-1, all of the same
    input, model and policy. Raises ValueError naming what differs or is missing."""
    by_index = {m["shard"]["index"]: m for m in markers}
    missing = sorted(set(range(shard_count)) - set(by_index))
    if missing:
        raise ValueError(f"expected {shard_count} committed parts, missing shards {missing}")
    parts = [by_index[i] for i in range(shard_count)]
    for key in ("input", "model_version", "policy_version"):
        values = sorted({str(p[key]) for p in parts})
        if len(values) != 1:
            raise ValueError(f"expected one {key} across the parts, got {values}")
    counts = sorted({p["shard"]["count"] for p in parts})
    if counts != [shard_count]:
        raise ValueError(f"expected parts of {shard_count} shards, got shard counts {counts}")
    return {
        "version": MANIFEST_VERSION,
        "complete": True,
        "input": parts[0]["input"],
        "model_version": parts[0]["model_version"],
        "policy_version": parts[0]["policy_version"],
        "shards": shard_count,
        "rows_scored": sum(p["rows_scored"] for p in parts),
        "rows_bad": sum(p["rows_bad"] for p in parts),
        "parts": [
            {
                "part": p["part"],
                "errors": p["errors"],
                "rows_scored": p["rows_scored"],
                "rows_bad": p["rows_bad"],
                "first_row": p["first_row"],
                "rows_in": p["rows_in"],
            }
            for p in parts
        ],
    }
