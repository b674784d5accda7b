"""Shard specs, the row groups each shard scores, and the manifest of a run of parts."""

import pytest

from offline.progress import progress_line
from offline.shards import ShardSpec, build_manifest, parse_shard, row_group_range

pytestmark = pytest.mark.unit


def test_a_shard_spec_is_k_of_n_or_the_indexed_jobs_index():
    assert parse_shard("0/1") == ShardSpec(0, 1)
    assert parse_shard("3/4").name == "part-00003-of-00004"
    assert parse_shard("index/4", env={"JOB_COMPLETION_INDEX": "2"}) == ShardSpec(2, 4)


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("5/4", {}, "expected K/N with 0 <= K < N (or index/N in an Indexed Job), got 5/4"),
        ("4/4", {}, "got 4/4"),
        ("-1/4", {}, "got -1/4"),
        ("0/0", {}, "got 0/0"),
        ("2", {}, "got '2'"),
        ("a/b", {}, "got 'a/b'"),
        ("index/4", {}, "expected JOB_COMPLETION_INDEX in the environment, got none"),
        ("index/4", {"JOB_COMPLETION_INDEX": "4"}, "got 4/4"),
    ],
)
def test_a_wrong_shard_spec_says_what_was_expected(text, env, message):
    with pytest.raises(ValueError, match="^--shard") as caught:
        parse_shard(text, env=env)
    assert message in str(caught.value)


@pytest.mark.parametrize(("groups", "count"), [(20, 4), (7, 3), (2, 5), (1, 1), (0, 3)])
def test_shards_cover_every_row_group_once_in_order(groups, count):
    ranges = [row_group_range(groups, ShardSpec(k, count)) for k in range(count)]
    covered = [g for r in ranges for g in r]
    assert covered == list(range(groups))
    sizes = [len(r) for r in ranges]
    assert max(sizes) - min(sizes) <= 1


def marker(index, count=3, **changes):
    base = {
        "part": f"part-{index}", "errors": f"e-{index}", "shard": {"index": index, "count": count},
        "input": "s3://b/in.parquet", "model_version": "m1", "policy_version": "p1",
        "rows_scored": 10 + index, "rows_bad": index, "first_row": 1 + 20 * index, "rows_in": 20,
    }  # fmt: skip
    return {**base, **changes}


def test_the_manifest_sums_the_parts_in_shard_order():
    manifest = build_manifest([marker(2), marker(0), marker(1)], 3)
    assert manifest["complete"] and manifest["shards"] == 3
    assert [p["part"] for p in manifest["parts"]] == ["part-0", "part-1", "part-2"]
    assert (manifest["rows_scored"], manifest["rows_bad"]) == (33, 3)
    assert (manifest["model_version"], manifest["policy_version"]) == ("m1", "p1")


@pytest.mark.parametrize(
    ("markers", "message"),
    [
        ([marker(0), marker(2)], "expected 3 committed parts, missing shards [1]"),
        (
            [marker(0), marker(1), marker(2, model_version="m2")],
            "expected one model_version across the parts, got ['m1', 'm2']",
        ),
        (
            [marker(0), marker(1), marker(2, policy_version="p2")],
            "expected one policy_version",
        ),
        ([marker(0), marker(1), marker(2, count=4)], "expected parts of 3 shards, got"),
    ],
)
def test_a_manifest_of_parts_that_do_not_belong_together_is_refused(markers, message):
    with pytest.raises(ValueError) as caught:
        build_manifest(markers, 3)
    assert message in str(caught.value)


def test_a_progress_line_has_rows_rate_and_eta():
    assert progress_line("part 1/4", 250, 1000, 50.0) == (
        "part 1/4: 250/1000 rows (25.0%), 50.0 rows/s, ETA 0:00:15"
    )
    assert progress_line("rows", 250, None, 50.0) == "rows: 250 rows, 50.0 rows/s"
