"""The offline command at scale: Parquet in and out, object storage, `--shard K/N`.

The object store is a real S3-compatible HTTP server: the server mode of the `moto` package
(`python -m moto.server`, an in-memory S3 speaking the S3 REST API), started by these tests
on 127.0.0.1 and a free port in its own process group and stopped after them. The batch
command reaches it as it would reach any S3-compatible store: `AWS_ENDPOINT_URL` and the
standard AWS credential variables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.support.servers import REPO, free_port, s3_server

pa = pytest.importorskip("pyarrow", reason="Parquet needs the batch extra")
pq = pytest.importorskip("pyarrow.parquet")
s3fs = pytest.importorskip("s3fs", reason="object storage needs the batch extra")
pytest.importorskip("moto", reason="the S3 test server needs the dev extra (moto[server])")

pytestmark = pytest.mark.integration

# float32: runs compared row for row (sharded against whole) batch their rows differently.
FAST = ("--max_length", "16", "--torch_threads", "1", "--progress", "off", "--dtype", "float32")
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """(endpoint, filesystem) of a moto S3 server, for this module's tests."""
    server = s3_server(tmp_path_factory.mktemp("s3-log")).start().wait_ready(60)
    try:
        fs = s3fs.S3FileSystem(
            key="testing", secret="testing", endpoint_url=server.url, skip_instance_cache=True
        )
        yield server.url, fs
    finally:
        server.stop()


def batch_env(endpoint: str, **extra) -> dict:
    env = {**os.environ, **CREDENTIALS, "AWS_ENDPOINT_URL": endpoint, **extra}
    env.pop("KSERVE_KIT_BATCH_FAULT", None)
    return {**env, **extra}


def batch_cmd(model_dir, input_url, output_url, *extra) -> list[str]:
    return [
        sys.executable, "-m", "offline.batch", "--model_dir", str(model_dir),
        "--input", str(input_url), "--output", str(output_url), *FAST, *extra,
    ]  # fmt: skip


def run_batch(cmd, env, check=True, timeout=300) -> subprocess.CompletedProcess:
    result = subprocess.run(
        cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def texts_table(n: int):
    return pa.table(
        {
            "ticket": [f"r{i}" for i in range(n)],
            "body": [f"message {i} " + "word " * (i % 7) for i in range(n)],
            "queue": [f"q{i % 5}" for i in range(n)],
        }
    )


def read_parts(fs, prefix: str):
    parts = sorted(p for p in fs.ls(prefix, refresh=True) if p.rsplit("/", 1)[-1][0] != "_")
    return parts, pa.concat_tables([pq.read_table(fs.open(p, "rb")) for p in parts])


@pytest.mark.timeout(600)  # about 2 minutes on 2 idle cores; more when they are shared
def test_four_shards_on_s3_score_exactly_the_rows_of_a_single_run(tiny_model_dir, s3, tmp_path):
    endpoint, fs = s3
    n = 100_000
    fs.mkdir("scale")
    with fs.open("scale/in.parquet", "wb") as f:
        pq.write_table(texts_table(n), f, row_group_size=5_000)  # 20 row groups, 5 per shard
    env = batch_env(endpoint)
    columns = ("--text_column", "body", "--id_column", "ticket", "--chunk_rows", "5000")
    inp = "s3://scale/in.parquet"

    single = run_batch(batch_cmd(tiny_model_dir, inp, "s3://scale/single.parquet", *columns), env)
    assert "scored 100000 rows" in single.stderr
    assert fs.exists("scale/single.parquet.committed.json")
    whole = pq.read_table(fs.open("scale/single.parquet", "rb"))

    out = "s3://scale/sharded.parquet"
    shard_cmd = [*batch_cmd(tiny_model_dir, inp, out, *columns, "--passthrough_columns", "queue")]
    # Shards 0, 1 and 3 run side by side as an Indexed Job's pods would (K from
    # JOB_COMPLETION_INDEX); shard 2 is killed after writing its 2nd chunk, before recording it.
    processes = [
        subprocess.Popen(
            [*shard_cmd, "--shard", "index/4"],
            cwd=REPO,
            env=batch_env(endpoint, JOB_COMPLETION_INDEX=str(k)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in (0, 1, 3)
    ]
    crashed = run_batch(
        [*shard_cmd, "--shard", "2/4"],
        batch_env(endpoint, KSERVE_KIT_BATCH_FAULT="after-write:2"),
        check=False,
    )
    assert crashed.returncode == -9, crashed.stderr[-2000:]
    for p in processes:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    assert len(fs.ls("scale/sharded.parquet/_committed", refresh=True)) == 3
    assert not fs.exists("scale/sharded.parquet/_manifest.json"), "complete without shard 2"
    assert not fs.exists("scale/sharded.parquet/part-00002-of-00004.parquet")

    resumed = run_batch([*shard_cmd, "--shard", "2/4"], env)
    assert "part 2/4: resuming after 5000 input rows" in resumed.stderr  # chunk 1 kept
    assert "all 4 parts committed" in resumed.stderr

    parts, sharded = read_parts(fs, "scale/sharded.parquet")
    assert [p.rsplit("/", 1)[-1] for p in parts] == [
        f"part-0000{k}-of-00004.parquet" for k in range(4)
    ]
    ids = sharded.column("id").to_pylist()
    assert len(ids) == len(set(ids)) == n, "a row was scored twice or lost"
    assert ids == whole.column("id").to_pylist() == [f"r{i}" for i in range(n)]
    assert sharded.column("label").to_pylist() == whole.column("label").to_pylist()
    np.testing.assert_allclose(
        np.array(sharded.column("probabilities").to_pylist()),
        np.array(whole.column("probabilities").to_pylist()),
        atol=1e-5,
    )
    assert sharded.column("queue").to_pylist() == [f"q{i % 5}" for i in range(n)]

    manifest = json.loads(fs.cat_file("scale/sharded.parquet/_manifest.json"))
    assert manifest["complete"] and manifest["shards"] == 4 and manifest["rows_scored"] == n
    assert [p["rows_scored"] for p in manifest["parts"]] == [25_000] * 4
    assert [p["first_row"] for p in manifest["parts"]] == [1, 25_001, 50_001, 75_001]
    assert {manifest["model_version"]} == set(whole.column("model_version").to_pylist())
    assert {manifest["policy_version"]} == set(whole.column("policy_version").to_pylist())
    assert not fs.exists("scale/sharded.parquet/_work/part-00002-of-00004")

    # Scoring shard 1 again replaces part 1 and touches no other part.
    def info(path):  # from the server, not s3fs's listing cache
        fs.invalidate_cache()
        return fs.info(path)

    others = {p: info(p)["ETag"] for p in parts if "part-00001" not in p}
    before = info(parts[1])["LastModified"]
    time.sleep(1)  # S3's LastModified has whole seconds
    again = run_batch([*shard_cmd, "--shard", "1/4"], env)
    assert "committed before; scoring it again" in again.stderr
    assert {p: info(p)["ETag"] for p in others} == others
    assert info(parts[1])["LastModified"] > before
    assert json.loads(fs.cat_file("scale/sharded.parquet/_manifest.json")) == manifest


def peak_rss_mb(cmd, env) -> float:
    """Peak resident memory of `cmd`, in MB: ru_maxrss of a wrapper's only child."""
    wrapper = (
        "import resource, subprocess, sys; "
        f"r = subprocess.run({cmd!r}, capture_output=True, text=True); "
        "sys.stderr.write(r.stderr[-2000:]); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)"
    )
    out = subprocess.run(
        [sys.executable, "-c", wrapper], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip()) / 1024  # Linux: kilobytes


@pytest.mark.timeout(600)
def test_peak_memory_does_not_grow_with_the_file(tiny_model_dir, tmp_path):
    env = {**os.environ}
    env.pop("KSERVE_KIT_BATCH_FAULT", None)
    peaks = {}
    for n in (20_000, 200_000):
        pq.write_table(texts_table(n), tmp_path / f"in-{n}.parquet", row_group_size=10_000)
        cmd = batch_cmd(
            tiny_model_dir, tmp_path / f"in-{n}.parquet", tmp_path / f"out-{n}.parquet",
            "--text_column", "body", "--id_column", "ticket", "--chunk_rows", "10000",
        )  # fmt: skip
        peaks[n] = peak_rss_mb(cmd, env)
        assert pq.ParquetFile(tmp_path / f"out-{n}.parquet").metadata.num_rows == n
    print(f"peak RSS: {peaks[20_000]:.1f} MB for 20,000 rows, {peaks[200_000]:.1f} MB for 200,000")
    assert peaks[200_000] - peaks[20_000] < 50, peaks


# ---- bad input: a clear error, exit 2, nothing that looks complete ----------------------------


def assert_refused(result, *phrases):
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    for phrase in phrases:
        assert phrase in last, last


def test_bad_columns_and_shard_specs_are_refused_before_any_row(tiny_model_dir, s3):
    endpoint, fs = s3
    env = batch_env(endpoint)
    fs.mkdir("bad")
    with fs.open("bad/no-text.parquet", "wb") as f:
        pq.write_table(pa.table({"id": ["a"], "body": ["hello"]}), f)
    with fs.open("bad/int-text.parquet", "wb") as f:
        pq.write_table(pa.table({"id": ["a"], "text": [42]}), f)

    missing = run_batch(
        batch_cmd(tiny_model_dir, "s3://bad/no-text.parquet", "s3://bad/out1.parquet"), env, False
    )
    assert_refused(missing, "expected column(s) ['text']", "got columns ['id', 'body']")
    non_string = run_batch(
        batch_cmd(tiny_model_dir, "s3://bad/int-text.parquet", "s3://bad/out2.parquet"), env, False
    )
    assert_refused(non_string, "expected a string column 'text'", "got int64")
    # The other spellings (4/4, -1/4, 2, index/N without the index) are tests/unit/test_shards.py
    wrong_shard = run_batch(
        batch_cmd(
            tiny_model_dir, "s3://bad/no-text.parquet", "s3://bad/out3.parquet", "--shard", "5/4"
        ),
        env,
        False,
    )
    assert wrong_shard.returncode == 2
    assert "--shard: expected K/N with 0 <= K < N" in wrong_shard.stderr
    assert "got 5/4" in wrong_shard.stderr
    left = [p for p in fs.find("bad") if "/out" in p]
    assert left == [], f"a refused run left {left}"


def test_unreachable_missing_and_forbidden_buckets_exit_2(tiny_model_dir, s3, tmp_path):
    endpoint, fs = s3
    pq.write_table(texts_table(10), tmp_path / "in.parquet")
    local_in = tmp_path / "in.parquet"
    fs.mkdir("present")
    with fs.open("present/in.parquet", "wb") as f:
        pq.write_table(texts_table(10), f)
    columns = ("--text_column", "body")

    nobody = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    unreachable = run_batch(
        batch_cmd(tiny_model_dir, local_in, "s3://present/out.parquet", *columns),
        batch_env(nobody),
        check=False,
    )
    assert_refused(unreachable, "s3://present/out.parquet", "expected a writable location")
    assert time.monotonic() - started < 120, "gave up within seconds, not after minutes of retries"

    no_bucket = run_batch(
        batch_cmd(tiny_model_dir, "s3://no-such-bucket/in.parquet", tmp_path / "o.parquet"),
        batch_env(endpoint),
        check=False,
    )
    assert_refused(no_bucket, "s3://no-such-bucket/in.parquet", "expected a readable parquet input")
    assert not (tmp_path / "o.parquet").exists()

    # A second moto server that checks credentials: an unknown access key is refused (403).
    guarded = s3_server(tmp_path, "s3-auth", env={"INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    guarded.ready_path = "/moto-api/"  # ListBuckets itself now needs credentials
    guarded.start().wait_ready(60)
    try:
        forbidden = run_batch(
            batch_cmd(tiny_model_dir, local_in, "s3://present/out.parquet", *columns),
            batch_env(guarded.url),
            check=False,
        )
    finally:
        guarded.stop()
    assert_refused(forbidden, "s3://present/out.parquet", "expected a writable location")
    assert fs.find("present") == ["present/in.parquet"], "nothing left on the good store"


def test_bad_parquet_rows_go_to_the_errors_file_with_their_row_number(tiny_model_dir, s3):
    endpoint, fs = s3
    env = batch_env(endpoint)
    fs.mkdir("rows")
    with fs.open("rows/in.parquet", "wb") as f:
        table = pa.table({"text": ["fine", None, "   ", "also fine", None]})
        pq.write_table(table, f, row_group_size=2)  # 3 row groups
    for shard in ([], ["--shard", "1/3"]):  # row numbers are the file's, shard or not
        out = "rows/out.jsonl" if not shard else "rows/sharded.jsonl"
        run_batch(batch_cmd(tiny_model_dir, "s3://rows/in.parquet", f"s3://{out}", *shard), env)
    rows = [json.loads(line) for line in fs.cat_file("rows/out.jsonl").splitlines()]
    assert [r["id"] for r in rows] == ["1", "4"]
    errors = [json.loads(x) for x in fs.cat_file("rows/out.jsonl.errors.jsonl").splitlines()]
    assert errors == [
        {"line": 2, "error": "'text' is null"},
        {"line": 3, "error": "'text' is empty"},
        {"line": 5, "error": "'text' is null"},
    ]
    shard_errors = fs.cat_file("rows/sharded.jsonl/_errors/part-00001-of-00003.errors.jsonl")
    assert [json.loads(x)["line"] for x in shard_errors.splitlines()] == [3]
    marker = json.loads(fs.cat_file("rows/sharded.jsonl/_committed/part-00001-of-00003.json"))
    assert (marker["rows_scored"], marker["rows_bad"], marker["first_row"]) == (1, 1, 3)
    assert not fs.exists("rows/sharded.jsonl/_manifest.json"), "1 of 3 parts is not a run"


def test_local_parquet_resume_and_a_finished_run_refused(tiny_model_dir, tmp_path):
    """Without --shard: one output, committed by its marker; a crash resumes, a finished
    output is never overwritten."""
    env = {**os.environ}
    pq.write_table(texts_table(3000), tmp_path / "in.parquet", row_group_size=1000)
    cmd = batch_cmd(
        tiny_model_dir, tmp_path / "in.parquet", tmp_path / "out.csv",
        "--text_column", "body", "--id_column", "ticket", "--chunk_rows", "500",
    )  # fmt: skip
    crashed = run_batch(cmd, {**env, "KSERVE_KIT_BATCH_FAULT": "after-write:3"}, check=False)
    assert crashed.returncode == -9
    assert (
        not (tmp_path / "out.csv").exists() and not (tmp_path / "out.csv.committed.json").exists()
    )
    resumed = run_batch(cmd, env)
    assert "resuming after 1000 input rows" in resumed.stderr
    lines = (tmp_path / "out.csv").read_text().splitlines()
    assert lines[0] == "id,label,confidence,probabilities,model_version,policy_version"
    assert [line.split(",", 1)[0] for line in lines[1:]] == [f"r{i}" for i in range(3000)]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("out")) == [
        "out.csv", "out.csv.committed.json", "out.csv.errors.jsonl",
    ]  # fmt: skip
    again = run_batch(cmd, env, check=False)
    assert_refused(again, "is a finished run")
