"""The offline batch command: the online answer for every row, bad rows set aside, and a run
that survives a kill without losing or repeating a row."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from kserve_kit.demo.build import load_examples, load_out_of_domain, split
from tests.support.http import infer_url, outputs, post, texts_body
from tests.support.servers import REPO

pytestmark = pytest.mark.integration


def run_batch(model_dir, input_path, output_path, *extra, env=None, check=True):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "predictor.batch",
            "--model_dir",
            str(model_dir),
            "--input",
            str(input_path),
            "--output",
            str(output_path),
            *extra,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_offline_answers_what_the_online_service_answers(demo_chain, demo_model_dir, tmp_path):
    transformer, _ = demo_chain
    _, heldout = split(load_examples())
    texts = [t for t, _ in heldout][:40] + load_out_of_domain()[:20] + ["word " * 400]
    write_jsonl(tmp_path / "in.jsonl", [{"id": f"t{i}", "text": t} for i, t in enumerate(texts)])
    run_batch(demo_model_dir, tmp_path / "in.jsonl", tmp_path / "out.jsonl", "--chunk_rows", "16")
    offline = read_jsonl(tmp_path / "out.jsonl")
    assert [r["id"] for r in offline] == [f"t{i}" for i in range(len(texts))]

    online_labels, online_probs = [], []
    for start in range(0, len(texts), 16):  # different batches online: the answer must not care
        status, body = post(infer_url(transformer), texts_body(texts[start : start + 16]))
        assert status == 200, body
        out = outputs(body)
        online_labels += out["label"]["data"]
        online_probs += (
            np.array(out["probabilities"]["data"]).reshape(out["probabilities"]["shape"]).tolist()
        )

    assert [r["label"] for r in offline] == online_labels
    np.testing.assert_allclose([r["probabilities"] for r in offline], online_probs, atol=1e-5)
    assert "others" in online_labels and len(set(online_labels)) > 2  # the set exercises both
    assert {r["model_version"] for r in offline} == {body["model_version"]}


def test_bad_rows_go_to_the_errors_file_and_the_run_goes_on(tiny_model_dir, tmp_path):
    lines = [
        json.dumps({"id": "a", "text": "fine"}),
        "{not json",
        json.dumps({"id": "b"}),
        json.dumps({"id": "c", "text": 42}),
        json.dumps(["text", "in a list"]),
        json.dumps({"id": "d", "text": "   "}),
        "",
        json.dumps({"text": "no id, so the line number is the id"}),
    ]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    result = run_batch(tiny_model_dir, tmp_path / "in.jsonl", tmp_path / "out.jsonl")
    assert [r["id"] for r in read_jsonl(tmp_path / "out.jsonl")] == ["a", "8"]
    errors = read_jsonl(tmp_path / "out.jsonl.errors.jsonl")
    assert [e["line"] for e in errors] == [2, 3, 4, 5, 6]
    assert "not JSON" in errors[0]["error"] and "no 'text' field" in errors[1]["error"]
    assert "must be a string, got int" in errors[2]["error"] and "got list" in errors[3]["error"]
    assert "empty" in errors[4]["error"]
    assert "scored 2 rows" in result.stderr and "5 bad rows" in result.stderr


def test_csv_in_csv_out(tiny_model_dir, tmp_path):
    with open(tmp_path / "in.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "text", "extra"])
        writer.writerows(
            [["1", "hello, world", "x"], ["2", 'a "quoted"\nmulti-line text', "y"], ["3", "", "z"]]
        )
    run_batch(tiny_model_dir, tmp_path / "in.csv", tmp_path / "out.csv")
    with open(tmp_path / "out.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == ["1", "2"]
    assert len(json.loads(rows[0]["probabilities"])) == 3
    assert read_jsonl(tmp_path / "out.csv.errors.jsonl") == [
        {"line": 3, "error": "'text' is empty"}
    ]


def big_input(path, n):
    write_jsonl(
        path,
        [{"id": f"r{i}", "text": f"message number {i} " + "word " * (i % 40)} for i in range(n)],
    )


def assert_complete(path, n):
    ids = [r["id"] for r in read_jsonl(path)]
    assert len(ids) == len(set(ids)), "a row was written twice"
    assert ids == [f"r{i}" for i in range(n)], "a row is missing or out of order"


def test_a_crash_between_writing_and_checkpointing_loses_and_repeats_nothing(
    tiny_model_dir, tmp_path
):
    big_input(tmp_path / "in.jsonl", 1000)
    crashed = run_batch(
        tiny_model_dir,
        tmp_path / "in.jsonl",
        tmp_path / "out.jsonl",
        "--chunk_rows",
        "100",
        env={"KSERVE_KIT_BATCH_FAULT": "after-write:4"},
        check=False,
    )
    assert crashed.returncode == -signal.SIGKILL
    # The crash left chunk 4 written but not checkpointed: 400 rows on disk, 300 recorded.
    assert len(read_jsonl(tmp_path / "out.jsonl")) == 400
    assert json.loads((tmp_path / "out.jsonl.checkpoint.json").read_text())["rows_scored"] == 300

    resumed = run_batch(
        tiny_model_dir, tmp_path / "in.jsonl", tmp_path / "out.jsonl", "--chunk_rows", "100"
    )
    assert "resuming after input record 300" in resumed.stderr
    assert_complete(tmp_path / "out.jsonl", 1000)
    assert not (tmp_path / "out.jsonl.checkpoint.json").exists()

    # The same rows, byte for byte, as a run that never crashed.
    run_batch(
        tiny_model_dir, tmp_path / "in.jsonl", tmp_path / "clean.jsonl", "--chunk_rows", "100"
    )
    assert (tmp_path / "out.jsonl").read_bytes() == (tmp_path / "clean.jsonl").read_bytes()


def test_a_sigkill_from_outside_mid_run_loses_and_repeats_nothing(tiny_model_dir, tmp_path):
    n = 20000
    big_input(tmp_path / "in.jsonl", n)
    checkpoint = tmp_path / "out.jsonl.checkpoint.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "predictor.batch",
            "--model_dir",
            str(tiny_model_dir),
            "--input",
            str(tmp_path / "in.jsonl"),
            "--output",
            str(tmp_path / "out.jsonl"),
            "--chunk_rows",
            "200",
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if (
            checkpoint.exists()
            and json.loads(checkpoint.read_text() or "{}").get("rows_scored", 0) >= 400
        ):
            break
        time.sleep(0.01)
    assert process.poll() is None, "the run ended before it could be killed"
    process.kill()
    process.wait(10)
    run_batch(tiny_model_dir, tmp_path / "in.jsonl", tmp_path / "out.jsonl", "--chunk_rows", "200")
    assert_complete(tmp_path / "out.jsonl", n)


def test_a_finished_output_is_not_overwritten_and_a_foreign_checkpoint_is_refused(
    tiny_model_dir, tmp_path
):
    write_jsonl(tmp_path / "in.jsonl", [{"text": "one"}])
    run_batch(tiny_model_dir, tmp_path / "in.jsonl", tmp_path / "out.jsonl")
    again = run_batch(tiny_model_dir, tmp_path / "in.jsonl", tmp_path / "out.jsonl", check=False)
    assert again.returncode == 2 and "is a finished run" in again.stderr

    big_input(tmp_path / "in.jsonl", 300)
    run_batch(
        tiny_model_dir,
        tmp_path / "in.jsonl",
        tmp_path / "b.jsonl",
        "--chunk_rows",
        "100",
        env={"KSERVE_KIT_BATCH_FAULT": "after-write:2"},
        check=False,
    )
    write_jsonl(tmp_path / "in.jsonl", [{"text": "a different input"}])
    foreign = run_batch(tiny_model_dir, tmp_path / "in.jsonl", tmp_path / "b.jsonl", check=False)
    assert foreign.returncode == 2 and "belongs to another input" in foreign.stderr


def test_output_date_placeholder_names_one_file_a_day(tiny_model_dir, tmp_path):
    write_jsonl(tmp_path / "in.jsonl", [{"text": "one"}])
    before = time.strftime("%Y-%m-%d", time.gmtime())
    run_batch(
        tiny_model_dir, tmp_path / "in.jsonl", tmp_path / "new" / "dir" / "scored-{date}.jsonl"
    )
    after = time.strftime("%Y-%m-%d", time.gmtime())  # the run may straddle midnight
    written = sorted(
        p.name
        for p in (tmp_path / "new" / "dir").glob("scored-*")
        if not p.name.endswith(".errors.jsonl")
    )
    assert written in ([f"scored-{before}.jsonl"], [f"scored-{after}.jsonl"])
