"""bench.ab's settings: environment words and another tree before the predictor flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.ab import REPO, split_setting

pytestmark = pytest.mark.unit


def test_a_setting_splits_into_env_tree_and_flags():
    assert split_setting("") == ({}, REPO, [], [])
    assert split_setting("OTEL_TRACES_EXPORTER=otlp A_B=1 --max_batch_delay_ms 2") == (
        {"OTEL_TRACES_EXPORTER": "otlp", "A_B": "1"},
        REPO,
        ["--max_batch_delay_ms", "2"],
        [],
    )
    env, tree, flags, t_flags = split_setting("tree=/tmp/base --compile none")
    assert (env, tree, flags, t_flags) == ({}, Path("/tmp/base"), ["--compile", "none"], [])


def test_the_transformer_flags_come_after_a_bar():
    assert split_setting("--compile none | --predictor_retry_attempts 1") == (
        {},
        REPO,
        ["--compile", "none"],
        ["--predictor_retry_attempts", "1"],
    )
