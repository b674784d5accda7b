"""The batch Job and CronJob (components/batch, the chart's batch.*) make sense to the batch
command and to the online service: their args parse with `offline.batch`'s own parser, the
scheduled run is the one-off run, GPU variants ask for a GPU, online and offline decide with the
same text settings and the same model, the chart says what the overlays say, and the rendered
Job runs as a pod would and scores a file."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path, PurePosixPath

import pytest
import render
from conftest import (
    REPO,
    by_kind,
    comparable,
    container,
    demo_model,
    inference_services,
    only,
    write_config_map_volume,
)

from tests.support.cmdline import flag

pytestmark = pytest.mark.manifests

COMMAND = ["python", "-m", "offline.batch"]
BATCH_KINDS = ("Job", "CronJob")
# Overlay and chart variant of each batch pair (render.BATCH_OVERLAYS) and the kinds each holds.
PAIRS = [(f"overlay-{o}", f"chart-{c}") for o, c in render.BATCH_OVERLAYS.items()]
EXPECTED_KINDS = {
    "overlay-batch": {"Job", "CronJob"},
    "overlay-batch-gpu": {"Job", "CronJob"},
    "overlay-policy": {"Job", "CronJob"},
    "overlay-batch-sharded": {"Job", "CronJob"},
    "chart-batch": {"Job"},
    "chart-batch-sharded": {"Job"},
    "chart-batch-cron-gpu": {"CronJob"},
    "chart-policy": {"Job"},
    "chart-policy-file": {"CronJob"},
}
BATCH_VARIANTS = sorted(EXPECTED_KINDS)
GPU_VARIANTS = {"overlay-batch-gpu", "chart-batch-cron-gpu"}
GPU = "nvidia.com/gpu"


def job_spec(doc: dict) -> dict:
    """The Job spec of a Job, or of the Jobs a CronJob makes."""
    return doc["spec"] if doc["kind"] == "Job" else doc["spec"]["jobTemplate"]["spec"]


def batch_docs(docs: list[dict]) -> list[dict]:
    return [d for d in docs if d["kind"] in BATCH_KINDS]


def batch_container(doc: dict) -> dict:
    (c,) = job_spec(doc)["template"]["spec"]["containers"]
    return c


def parse_batch(args: list[str]):
    """The batch command's own parse and checks, less the input file's existence (it lives on
    the PVC): returns (namespace, runtime config, text settings)."""
    from kserve_kit.settings import TextSettings
    from offline import batch
    from offline.rows import format_of
    from predictor.config import PredictorSettings

    parsed = batch.build_parser().parse_args(args)
    format_of(parsed.input)  # .jsonl or .csv, as parse_config checks
    format_of(parsed.output)
    assert parsed.chunk_rows > 0
    return parsed, PredictorSettings.from_namespace(parsed), TextSettings.from_namespace(parsed)


def mounts(doc: dict) -> dict[str, tuple[dict, dict]]:
    """mountPath -> (volumeMount, volume) of the batch container."""
    pod = job_spec(doc)["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    return {m["mountPath"]: (m, volumes[m["name"]]) for m in batch_container(doc)["volumeMounts"]}


def under(path: Path, mount: str) -> bool:
    return PurePosixPath(str(path)).is_relative_to(PurePosixPath(mount))


# ---- what is rendered where ----------------------------------------------------------------


def test_batch_objects_appear_exactly_where_switched_on(objects):
    for variant, docs in objects.items():
        kinds = {d["kind"] for d in batch_docs(docs)}
        assert kinds == EXPECTED_KINDS.get(variant, set()), variant
        for doc in batch_docs(docs):
            assert doc["metadata"]["labels"]["app.kubernetes.io/component"] == "batch"


@pytest.mark.parametrize("variant", BATCH_VARIANTS)
def test_batch_pods_are_restricted_and_never_restart(objects, variant):
    for doc in batch_docs(objects[variant]):
        spec = job_spec(doc)
        pod = spec["template"]["spec"]
        assert pod["restartPolicy"] == "Never" and spec["backoffLimit"] >= 1
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["fsGroup"] == 1000
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        c = batch_container(doc)
        assert c["command"] == COMMAND, "the predictor image, another entrypoint"
        assert "kserve-kit-predictor" in c["image"]
        security = c["securityContext"]
        assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
        assert security["capabilities"]["drop"] == ["ALL"] and security["runAsUser"] == 1000
        assert mounts(doc)["/tmp"][1]["emptyDir"]["sizeLimit"]
        assert {e["name"]: e.get("value") for e in c["env"]}["OMP_WAIT_POLICY"] == "PASSIVE"
        assert {"cpu", "memory"} <= set(c["resources"]["limits"]) <= {"cpu", "memory", GPU}
        if doc["kind"] == "CronJob":
            assert doc["spec"]["concurrencyPolicy"] == "Forbid", "one run per output at a time"
            assert doc["spec"]["timeZone"] == "Etc/UTC", "the schedule's day is {date}'s day"
            assert doc["spec"]["successfulJobsHistoryLimit"] >= 1
            assert doc["spec"]["failedJobsHistoryLimit"] >= 1


# ---- the batch command's own parser ----------------------------------------------------------


@pytest.mark.parametrize("variant", BATCH_VARIANTS)
def test_batch_args_parse_with_the_batch_parser(objects, variant):
    for doc in batch_docs(objects[variant]):
        args = batch_container(doc)["args"]
        before = time.strftime("%Y-%m-%d", time.gmtime())
        parsed, runtime, _ = parse_batch(args)
        after = time.strftime("%Y-%m-%d", time.gmtime())
        assert parsed.progress == "off", "no progress bar in a pod log"
        raw_output = flag(args, "--output")
        if doc["kind"] == "CronJob":
            assert "{date}" in raw_output, "a nightly run writes one file per day"
        if "{date}" in raw_output:  # the parser puts today's UTC date in
            assert "{date}" not in str(parsed.output)
            assert any(
                str(parsed.output) == raw_output.replace("{date}", day) for day in (before, after)
            )

        volumes = mounts(doc)
        model_mount, model_volume = volumes[runtime.model_dir]
        assert model_mount.get("readOnly") and model_volume["persistentVolumeClaim"]["readOnly"]
        (data,) = [path for path, (_, v) in volumes.items() if v["name"] == "data"]
        claim = volumes[data][1]["persistentVolumeClaim"]["claimName"]
        assert claim == "kserve-kit-batch-data"
        assert under(parsed.input, data) and under(parsed.output, data)
        # The checkpoint and errors files go next to the output: on the PVC, so a retry finds them.
        assert parsed.input.parent != parsed.output.parent


def test_batch_parser_rejects_a_misspelt_flag(objects):
    doc = only(objects["overlay-batch"], "Job")
    args = batch_container(doc)["args"]
    parse_batch(args)
    with pytest.raises(SystemExit):
        parse_batch([a.replace("--chunk_rows", "--chunk_row") for a in args])
    with pytest.raises(SystemExit):
        parse_batch([a.replace("--progress=off", "--progress=no") for a in args])


# ---- one pod template for the Job and the CronJob ------------------------------------------


def test_job_and_cronjob_run_the_same_pod_in_the_overlays(objects):
    """Nothing has to differ: both write scored-{date}.jsonl, so a run started by hand
    (`kubectl create job --from=cronjob/...`) resumes or refuses what the nightly one wrote."""
    for variant in ("overlay-batch", "overlay-batch-gpu", "overlay-policy"):
        job = only(objects[variant], "Job")
        cron = only(objects[variant], "CronJob")
        assert job_spec(job) == job_spec(cron), variant


@pytest.mark.parametrize("variant", ["batch", "batch-cron-gpu", "policy"])
def test_job_and_cronjob_run_the_same_pod_in_the_chart(variant):
    values = render.load_values(render.chart_variants()[variant])
    one_off = copy.deepcopy(values)
    one_off["batch"]["schedule"] = ""
    scheduled = copy.deepcopy(values)
    scheduled["batch"]["schedule"] = "30 2 * * *"
    job = only(render.documents(render.chart_manifest(render.render_chart(one_off))), "Job")
    cron = only(render.documents(render.chart_manifest(render.render_chart(scheduled))), "CronJob")
    assert job_spec(job) == job_spec(cron)
    assert job["metadata"]["name"] == cron["metadata"]["name"]


# ---- GPU -------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", BATCH_VARIANTS)
def test_gpu_variants_request_a_gpu(objects, variant):
    gpu = variant in GPU_VARIANTS
    for doc in batch_docs(objects[variant]):
        c = batch_container(doc)
        _, runtime, _ = parse_batch(c["args"])
        resources = c["resources"]
        if gpu:
            assert resources["requests"][GPU] == resources["limits"][GPU] == "1"
            assert runtime.device == "cuda" and runtime.dtype == "float16"
            tolerations = job_spec(doc)["template"]["spec"]["tolerations"]
            assert {"key": GPU, "operator": "Exists", "effect": "NoSchedule"} in tolerations
        else:
            assert GPU not in resources.get("requests", {}) and GPU not in resources["limits"]
            assert runtime.device != "cuda"


# ---- online and offline decide alike -----------------------------------------------------------


@pytest.mark.parametrize("variant", BATCH_VARIANTS)
def test_batch_decides_like_the_inference_service(objects, variant):
    """Same render, same threshold, others label and max length as the transformer: the
    online answer and the offline one are the same."""
    from transformer.config import TransformerSettings

    docs = objects[variant]
    (isvc,) = inference_services(docs)
    online = TransformerSettings.from_args(container(isvc, "transformer")["args"])
    for doc in batch_docs(docs):
        _, _, offline = parse_batch(batch_container(doc)["args"])
        assert offline.confidence_threshold == online.confidence_threshold
        assert offline.others_label == online.others_label
        assert offline.max_length == online.max_length


# The variants whose InferenceService reads its model from a PVC (the gpu ones: from S3).
@pytest.mark.parametrize("variant", ["overlay-batch", "chart-batch"])
def test_batch_reads_the_model_the_inference_service_serves(objects, variant):
    (isvc,) = inference_services(objects[variant])
    env = {e["name"]: e.get("value") for e in container(isvc, "predictor")["env"]}
    uri = env["STORAGE_URI"]
    assert uri.startswith("pvc://"), uri
    claim, _, sub_path = uri.removeprefix("pvc://").partition("/")
    for doc in batch_docs(objects[variant]):
        mount, volume = mounts(doc)["/mnt/models"]
        assert volume["persistentVolumeClaim"]["claimName"] == claim
        assert mount.get("subPath", "") == sub_path


def test_chart_ties_the_batch_threshold_to_the_transformers():
    values = render.load_values(render.chart_variants()["batch"])
    values["transformer"]["confidenceThreshold"] = 0.75
    docs = render.documents(render.chart_manifest(render.render_chart(values)))
    args = batch_container(only(docs, "Job"))["args"]
    assert flag(args, "--confidence_threshold") == "0.75"


# ---- no drift between the chart and the overlays -------------------------------------------


@pytest.mark.parametrize(("overlay", "chart"), PAIRS)
def test_chart_batch_equals_the_overlay(objects, overlay, chart):
    assert chart.removeprefix("chart-") in render.chart_variants()
    chart_kinds, overlay_kinds = by_kind(objects[chart]), by_kind(objects[overlay])
    # The chart renders a Job or a CronJob; the overlays both.
    assert set(overlay_kinds) - set(chart_kinds) <= set(BATCH_KINDS)
    assert set(chart_kinds) <= set(overlay_kinds)
    for kind, docs in chart_kinds.items():
        assert docs == overlay_kinds[kind], kind


def test_batch_drift_check_notices_a_changed_value(objects):
    values = render.load_values(render.chart_variants()["batch"])
    values["batch"]["chunkRows"] = 1024
    drifted = render.documents(render.chart_manifest(render.render_chart(values)))
    assert comparable(only(drifted, "Job")) != comparable(only(objects["overlay-batch"], "Job"))


# ---- Indexed Jobs: shards ----------------------------------------------------------------


@pytest.mark.parametrize("variant", BATCH_VARIANTS)
def test_batch_jobs_are_indexed_and_shard_by_their_completions(objects, variant):
    """Every batch Job (the CronJob's and the GPU one's too) is an Indexed Job; with N > 1
    completions each pod runs --shard=index/N over a Parquet input, K its JOB_COMPLETION_INDEX."""
    from offline.rows import format_of
    from offline.shards import parse_shard

    for doc in batch_docs(objects[variant]):
        spec = job_spec(doc)
        assert spec["completionMode"] == "Indexed"
        completions, parallelism = spec["completions"], spec["parallelism"]
        assert completions >= 1 and 1 <= parallelism <= completions
        assert spec["backoffLimitPerIndex"] >= 1, "a failed shard is retried on its own"
        args = batch_container(doc)["args"]
        parsed, _, _ = parse_batch(args)
        if completions == 1:
            assert parsed.shard is None, "one completion: one output, as an unsharded run"
            continue
        assert parsed.shard == f"index/{completions}"
        last = parse_shard(parsed.shard, env={"JOB_COMPLETION_INDEX": str(completions - 1)})
        assert (last.index, last.count) == (completions - 1, completions)
        with pytest.raises(ValueError, match=f"got {completions}/{completions}$"):
            parse_shard(parsed.shard, env={"JOB_COMPLETION_INDEX": str(completions)})
        assert format_of(parsed.input) == "parquet", "shards are runs of row groups"
    assert any(job_spec(d)["completions"] > 1 for d in batch_docs(objects[variant])) == (
        "sharded" in variant
    )


@pytest.mark.parametrize(("shards", "parallelism", "expected"), [(3, 0, 3), (6, 2, 2), (1, 0, 1)])
def test_chart_shards_set_completions_parallelism_and_the_shard_flag(shards, parallelism, expected):
    values = render.load_values(render.chart_variants()["batch-sharded"])
    values["batch"].update(shards=shards, parallelism=parallelism)
    job = only(render.documents(render.chart_manifest(render.render_chart(values))), "Job")
    assert (job["spec"]["completions"], job["spec"]["parallelism"]) == (shards, expected)
    shard_args = [a for a in batch_container(job)["args"] if a.startswith("--shard")]
    assert shard_args == ([f"--shard=index/{shards}"] if shards > 1 else [])


@pytest.mark.parametrize(
    "batch",
    [
        {"shards": 0},
        {"parallelism": -1},
        {"backoffLimitPerIndex": -1},
        {"input": "s3://bucket/texts.txt"},
        {"input": "http://bucket/texts.parquet"},
        {"serviceAccountName": "Not_A_Name"},
    ],
)
def test_schema_rejects_bad_shard_and_location_values(batch):
    import helm_python

    chart = helm_python.Chart.load(str(render.CHART))
    chart.validate_schema(
        {"batch": {"input": "s3://tickets/2026/day.parquet", "output": "gs://out/s.parquet"}}
    )
    with pytest.raises(helm_python.HelmError):
        chart.validate_schema({"batch": batch})


# ---- the chart's refusals and its schema ---------------------------------------------------


def test_chart_needs_a_model_claim_when_the_model_is_not_on_a_pvc():
    import helm_python

    with pytest.raises(helm_python.HelmError, match="batch.modelClaim"):
        render.render_chart({"batch": {"enabled": True}})
    docs = render.documents(
        render.chart_manifest(
            render.render_chart({"batch": {"enabled": True, "modelClaim": "models"}})
        )
    )
    mount, volume = mounts(only(docs, "Job"))["/mnt/models"]
    assert volume["persistentVolumeClaim"]["claimName"] == "models" and "subPath" not in mount


@pytest.mark.parametrize(
    "batch",
    [
        {"enabeld": True},
        {"output": "/tmp/scored.jsonl"},  # not on the data volume
        {"input": "/data/input/texts.txt"},  # neither JSONL nor CSV
        {"schedule": "nightly"},
        {"extraArgs": ["chunk_rows=1"]},
    ],
)
def test_schema_rejects_bad_batch_values(batch):
    import helm_python

    chart = helm_python.Chart.load(str(render.CHART))
    chart.validate_schema({"batch": {"enabled": True, "schedule": "@daily"}})
    with pytest.raises(helm_python.HelmError):
        chart.validate_schema({"batch": batch})


# ---- the rendered Job, run as its pod would run ----------------------------------------------


@pytest.mark.parametrize("variant", ["overlay-batch", "overlay-policy"])
def test_rendered_batch_job_scores_a_file(objects, tmp_path, variant):
    """The rendered Job's command, args and env, with /mnt/models the local demo model, /data a
    local directory and each ConfigMap volume (the policy) laid out as the kubelet does: every
    input row comes out scored, the bad one goes to the errors file, and a second run of the
    same day refuses to redo a finished file."""
    model = demo_model()
    job = only(objects[variant], "Job")
    c = batch_container(job)
    config_maps = {d["metadata"]["name"]: d for d in objects[variant] if d["kind"] == "ConfigMap"}
    volumes = {v["name"]: v for v in job_spec(job)["template"]["spec"]["volumes"]}
    mounted = {}  # mountPath -> local directory
    for m in c["volumeMounts"]:
        if "configMap" in volumes[m["name"]]:
            config_map = config_maps[volumes[m["name"]]["configMap"]["name"]]
            mounted[m["mountPath"]] = write_config_map_volume(config_map, tmp_path / m["name"])
    assert bool(mounted) == (variant == "overlay-policy")
    data, scratch = tmp_path / "data", tmp_path / "scratch"
    (data / "input").mkdir(parents=True)
    (data / "output").mkdir()
    scratch.mkdir()
    texts = ["I was charged twice", "the app crashes on start", "how do I reset my password"]
    lines = [json.dumps({"id": f"t{i}", "text": t}) for i, t in enumerate(texts)] + ["{not json"]
    parsed, _, _ = parse_batch(c["args"])
    relative_input = PurePosixPath(str(parsed.input)).relative_to("/data")
    (data / relative_input).write_text("\n".join(lines) + "\n")

    def local(arg: str) -> str:
        name, _, value = arg.partition("=")
        if value.startswith("/mnt/models"):
            return f"{name}={value.replace('/mnt/models', str(model), 1)}"
        if value.startswith("/data/"):
            return f"{name}={data}/{value.removeprefix('/data/')}"
        for mount, directory in mounted.items():
            if value.startswith(f"{mount}/"):
                return f"{name}={directory}/{value.removeprefix(f'{mount}/')}"
        return arg

    args = [local(a) for a in c["args"]]
    assert c["command"][:3] == ["python", "-m", "offline.batch"]
    env = {**os.environ, **{e["name"]: e["value"] for e in c["env"]}, "HOME": str(scratch)}
    cmd = [sys.executable, "-m", "offline.batch", *args]

    def run() -> subprocess.CompletedProcess:
        return subprocess.run(
            cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False
        )

    first = run()
    assert first.returncode == 0, first.stderr[-4000:]
    output = data / PurePosixPath(str(parsed.output)).relative_to("/data")
    assert sorted(p.name for p in output.parent.iterdir()) == [
        output.name,
        f"{output.name}.errors.jsonl",
    ], "the checkpoint is gone once the run is done"
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["t0", "t1", "t2"]
    assert all(r["label"] and len(r["probabilities"]) >= 2 for r in rows)
    errors = output.with_name(output.name + ".errors.jsonl").read_text().splitlines()
    assert [json.loads(e)["line"] for e in errors] == [4]

    again = run()  # a finished file is never overwritten: the Job fails instead
    assert again.returncode != 0 and "finished run" in again.stderr
    assert [json.loads(line) for line in output.read_text().splitlines()] == rows


def test_notes_tell_the_batch_commands():
    def notes(variant: str) -> str:
        values = render.load_values(render.chart_variants()[variant])
        return render.render_chart(values)["kserve-kit/templates/NOTES.txt"]

    assert "kubectl -n kserve-kit logs -f job/text-classifier-batch" in notes("batch")
    assert "create job --from=cronjob/text-classifier-batch text-classifier-batch-manual" in notes(
        "batch-cron-gpu"
    )
    assert "Batch scoring" not in notes("default")
