"""Fixtures and sizes of the reliability tier.

The sizes come from the environment, so one set of tests serves both `make test` (short: a few
minutes on two cores) and `make soak` / `make chaos` (long: the figures in docs/reliability.md).
"""

from __future__ import annotations

import os

import psutil
import pytest

from tests.support import servers


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


SOAK_REQUESTS = env_int("KIT_SOAK_REQUESTS", 1000)
SOAK_CONCURRENCY = env_int("KIT_SOAK_CONCURRENCY", 16)
FUZZ_EXAMPLES = env_int("KIT_FUZZ_EXAMPLES", 200)
CHAOS_ROUNDS = env_int("KIT_CHAOS_ROUNDS", 1)
# Short runs measure memory over too few requests for a tight bound: allocator arenas and
# caches are still settling. The long soak holds the 5 %.
RSS_GROWTH_LIMIT = float(
    os.environ.get("KIT_RSS_GROWTH_LIMIT", 0.05 if SOAK_REQUESTS >= 20000 else 0.10)
)


@pytest.fixture(scope="module")
def chain(tiny_model_dir, tmp_path_factory):
    """(transformer, predictor) on the tiny model over the gRPC hop, shared by a module."""
    logs = tmp_path_factory.mktemp("reliability-logs")
    predictor = servers.predictor(tiny_model_dir, logs, extra=["--max_batch_size", "8"])
    transformer = servers.transformer(
        tiny_model_dir, logs, predictor, extra=["--max_batch_size", "8", "--max_length", "32"]
    )
    with servers.running(predictor, transformer):
        yield transformer, predictor


def process_of(server) -> psutil.Process:
    return psutil.Process(server.process.pid)
