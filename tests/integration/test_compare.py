"""`python -m offline.compare` (make compare) on the demo model: the same version against itself
passes the gate; a challenger whose policy answers what it should refuse fails it."""

import json
import subprocess
import sys

import pytest

from demo.build import demo_parts
from kserve_kit.modeldir import ModelInfo
from kserve_kit.policy import DecisionPolicy, load_policy
from offline.compare import EXIT_REGRESSED
from tests.support.servers import REPO

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """The demo's held-out rows: 60 intents and 80 out-of-domain texts labelled `others`."""
    parts = demo_parts()
    rows = [{"text": t, "label": label} for t, label in parts["heldout"]]
    rows += [{"text": t, "label": "others"} for t in parts["ood_heldout"]]
    path = tmp_path_factory.mktemp("compare") / "labelled.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, rows


def run_compare(*args):
    return subprocess.run(
        [sys.executable, "-m", "offline.compare", "--progress", "off", "--dtype", "float32"]
        + [*map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_same_version_against_itself_passes(demo_model_dir, labelled, tmp_path):
    data, rows = labelled
    result = run_compare(
        "--champion", demo_model_dir, "--challenger", demo_model_dir, "--data", data,
        "--out", tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "compare-report.json").read_text())
    assert report["rows"] == len(rows)
    assert report["agreement"] == 1.0 and report["disagreements"] == []
    gate = report["gate"]
    assert gate["passed"] and gate["delta"] == 0 and gate["measure"] == "in_domain_accuracy"
    champion = report["champion"]
    assert champion == report["challenger"]
    assert champion["model_version"] == ModelInfo.load(demo_model_dir).version
    assert champion["in_domain_rows"] == 60 and champion["others_rows"] == 80
    assert "passed" in (tmp_path / "compare-report.md").read_text()


def test_a_challenger_that_answers_what_it_should_refuse_fails_the_gate(
    demo_model_dir, labelled, tmp_path
):
    """The challenger: the same model decided by a policy that answers nearly everything (a
    threshold of 0.05): out-of-domain texts get a class, so its answered precision falls."""
    data, rows = labelled
    info = ModelInfo.load(demo_model_dir)
    fitted = load_policy(info.path / "policy.json", info.labels, info.version)
    loose = DecisionPolicy(
        version="loose-1",
        threshold=0.05,
        others_label="others",
        temperature=fitted.temperature,
        model_version=info.version,
    )
    policy = tmp_path / "loose.json"
    policy.write_text(loose.to_json())
    out = tmp_path / "report"
    result = run_compare(
        "--champion", demo_model_dir, "--challenger", demo_model_dir,
        "--challenger_policy_file", policy, "--data", data, "--out", out,
        "--measure", "precision", "--max_regression", "0.02",
    )  # fmt: skip
    assert result.returncode == EXIT_REGRESSED, result.stderr[-2000:]
    assert "FAILED" in result.stderr.splitlines()[-1]
    report = json.loads((out / "compare-report.json").read_text())
    a, b = report["champion"], report["challenger"]
    assert b["policy_version"] == "loose-1" and a["policy_version"] == fitted.version
    assert b["precision"] < a["precision"] - 0.02
    assert b["coverage"] > a["coverage"]
    # every disagreement is a row the fitted policy refused and the loose one answered
    assert report["disagreements"]
    assert {d["champion"] for d in report["disagreements"]} == {"others"}
    assert all(d["challenger"] != "others" for d in report["disagreements"])
    assert report["agreement"] == pytest.approx(1 - len(report["disagreements"]) / len(rows))
    assert not report["gate"]["passed"]
    # the same comparison on coverage: the loose challenger is not worse there, and passes
    result = run_compare(
        "--champion", demo_model_dir, "--challenger", demo_model_dir,
        "--challenger_policy_file", policy, "--data", data, "--out", out, "--measure", "coverage",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]


def test_a_label_neither_version_knows_is_one_line_and_exit_2(demo_model_dir, tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_text(json.dumps({"text": "where is my parcel", "label": "weather"}) + "\n")
    result = run_compare(
        "--champion", demo_model_dir, "--challenger", demo_model_dir, "--data", data,
        "--out", tmp_path / "out",
    )  # fmt: skip
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()[-1:]
    assert line.startswith("compare: ") and "'weather'" in line and "expected one of" in line
    assert not (tmp_path / "out").exists()
