"""The offline batch command: the online answer for every row, bad rows set aside, and a run
that survives a kill without losing or repeating a row."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from demo.build import load_examples, load_out_of_domain, split
from kserve_kit.decision import softmax
from kserve_kit.modeldir import ModelInfo
from kserve_kit.policy import DecisionPolicy
from tests.support.http import infer_url, outputs, post, texts_body
from tests.support.servers import REPO

pytestmark = pytest.mark.integration


def run_batch(model_dir, input_path, output_path, *extra, env=None, check=True):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "offline.batch",
            "--model_dir",
            str(model_dir),
            "--input",
            str(input_path),
            "--output",
            str(output_path),
            # float32 whatever the CPU: the answers are compared with the online path's at 1e-5
            "--dtype",
            "float32",
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
    # Both sides decide by the demo's fitted policy.json, found beside the model by default.
    run_batch(demo_model_dir, tmp_path / "in.jsonl", tmp_path / "out.jsonl", "--chunk_rows", "16")
    offline = read_jsonl(tmp_path / "out.jsonl")
    assert [r["id"] for r in offline] == [f"t{i}" for i in range(len(texts))]

    online_labels, online_probs, online_policies = [], [], set()
    for start in range(0, len(texts), 16):  # different batches online: the answer must not care
        status, body = post(infer_url(transformer), texts_body(texts[start : start + 16]))
        assert status == 200, body
        online_policies.add(body["parameters"]["policy_version"])
        out = outputs(body)
        online_labels += out["label"]["data"]
        online_probs += (
            np.array(out["probabilities"]["data"]).reshape(out["probabilities"]["shape"]).tolist()
        )

    assert [r["label"] for r in offline] == online_labels
    np.testing.assert_allclose([r["probabilities"] for r in offline], online_probs, atol=1e-5)
    assert "others" in online_labels and len(set(online_labels)) > 2  # the set exercises both
    assert {r["model_version"] for r in offline} == {body["model_version"]}
    assert {r["policy_version"] for r in offline} == online_policies
    assert online_policies.pop().startswith("cal-")  # the fitted policy, not the flags


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
    assert {r["policy_version"] for r in rows} == {DecisionPolicy.from_flags(0.9, "others").version}
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
            "offline.batch",
            "--model_dir",
            str(tiny_model_dir),
            "--input",
            str(tmp_path / "in.jsonl"),
            "--output",
            str(tmp_path / "out.jsonl"),
            "--chunk_rows",
            "200",
            "--dtype",
            "float32",
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


def test_every_row_names_its_policy_and_a_policy_file_changes_the_decisions(
    tiny_model_dir, tmp_path
):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    info = ModelInfo.load(model)
    texts = [f"message number {i} " + "word " * (i % 9) for i in range(200)]
    write_jsonl(tmp_path / "in.jsonl", [{"id": f"r{i}", "text": t} for i, t in enumerate(texts)])
    flag_args = ("--confidence_threshold", "0.3")

    # No policy file: the flags, and the flags' version in every row.
    run_batch(model, tmp_path / "in.jsonl", tmp_path / "flags.jsonl", *flag_args)
    flags = read_jsonl(tmp_path / "flags.jsonl")
    assert {r["policy_version"] for r in flags} == {
        DecisionPolicy.from_flags(0.3, "others").version
    }
    assert "others" not in {r["label"] for r in flags}  # the tiny model's top class is >= 1/3
    raw = np.array([r["probabilities"] for r in flags])

    # The tiny model's logits barely depend on the text: T = 0.01 spreads its confidences over
    # a few thousandths. softmax(log p / T) is softmax(logits / T): the policy's probabilities
    # follow from the flags' output (to about 1e-5 here, from the 7 digits written).
    scaled = softmax(np.log(raw) / 0.01)
    top, confidence = scaled.argmax(axis=1), scaled.max(axis=1)
    commonest = int(np.bincount(top).argmax())
    strict = float(np.median(confidence[top == commonest]))  # the class threshold halves it
    policy = DecisionPolicy(
        version="hand-made-1",
        threshold=0.34,
        others_label="unsure",
        temperature=0.01,
        class_thresholds={info.labels[commonest]: strict},
        model_version=info.version,
    )
    (model / "policy.json").write_text(policy.to_json())  # beside the model: the default
    run_batch(model, tmp_path / "in.jsonl", tmp_path / "policy.jsonl", *flag_args)
    rows = read_jsonl(tmp_path / "policy.jsonl")
    assert {r["policy_version"] for r in rows} == {"hand-made-1"}
    np.testing.assert_allclose([r["probabilities"] for r in rows], scaled, atol=1e-4)
    thresholds = np.where(top == commonest, strict, 0.34)
    clear = np.abs(confidence - thresholds) > 1e-4  # rows not on a threshold's edge
    expected = np.where(confidence >= thresholds, np.array(info.labels)[top], "unsure")
    got = np.array([r["label"] for r in rows])
    assert clear.sum() > 150
    assert got[clear].tolist() == expected[clear].tolist()
    # The class threshold refused about half of that class, which the flags all answered.
    refused = (got == "unsure") & (top == commonest)
    assert 0.3 < refused.sum() / (top == commonest).sum() < 0.7

    # --policy_file none: the flags again, whatever the model directory holds.
    run_batch(
        model, tmp_path / "in.jsonl", tmp_path / "none.jsonl", *flag_args, "--policy_file", "none"
    )
    assert read_jsonl(tmp_path / "none.jsonl") == flags


def test_a_bad_policy_file_stops_the_run_before_any_row(tiny_model_dir, tmp_path):
    info = ModelInfo.load(tiny_model_dir)
    write_jsonl(tmp_path / "in.jsonl", [{"text": "one"}])
    policy_file = tmp_path / "policy.json"
    for content, message in [
        ('{"format": 1}', "version, others_label, temperature, threshold: expected a value"),
        (
            DecisionPolicy("v", 0.5, "others", model_version="another-model").to_json(),
            f"model_version: expected the served model's version '{info.version}', "
            'got "another-model"',
        ),
    ]:
        policy_file.write_text(content)
        result = run_batch(
            tiny_model_dir, tmp_path / "in.jsonl", tmp_path / "out.jsonl",
            "--policy_file", policy_file, check=False,
        )  # fmt: skip
        assert result.returncode == 2
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith(f"batch: {policy_file}: ") and message in last, last
        assert not (tmp_path / "out.jsonl").exists()
    missing = run_batch(
        tiny_model_dir, tmp_path / "in.jsonl", tmp_path / "out.jsonl",
        "--policy_file", tmp_path / "nope.json", check=False,
    )  # fmt: skip
    assert missing.returncode == 2 and "--policy_file: expected an existing file" in missing.stderr
