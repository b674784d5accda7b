from pathlib import Path

import pytest

from predictor.config import PredictorSettings
from transformer.config import TransformerSettings

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def test_predictor_defaults():
    config = PredictorSettings.from_args([])
    assert config.model_name == "text-classifier"
    assert config.model_dir == "/mnt/models"
    assert (config.device, config.dtype) == ("auto", "auto")


def test_transformer_defaults_to_the_grpc_hop():
    config = TransformerSettings.from_args(["--predictor_host", "p:8081"])
    assert config.predictor_protocol == "grpc-v2"
    assert config.confidence_threshold == 0.9
    assert config.others_label == "others"
    assert config.allow_threshold_override is True


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--device", "cpu", "--dtype", "float16"], "float16 needs --device cuda"),
        (["--quantize", "int8", "--dtype", "bfloat16"], "not bfloat16"),
        (["--max_batch_size", "0"], "must be greater than 0"),
        (["--max_batch_delay_ms", "-1"], "max_batch_delay_ms must be >= 0"),
        (["--device", "tpu"], "invalid choice: 'tpu'"),
        (["--modle_dir", "/x"], "unrecognized arguments: --modle_dir"),
        (["--quantize", "int8", "--device", "cuda"], "--quantize int8 runs on the CPU only"),
        (["--quantize", "int8", "--dtype", "float16"], "quantizes float32 weights"),
        (["--quantize", "int4"], "invalid choice: 'int4'"),
        (["--forward_workers", "-1"], "must be 0 or more"),
        (["--forward_workers", "3", "--torch_threads", "2"], "cannot feed 3 --forward_workers"),
    ],
)
def test_predictor_refuses_bad_settings_at_start(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        PredictorSettings.from_args(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "--predictor_host is required"),
        (["--predictor_host", "p:1", "--predictor_protocol", "v1"], "must be one of v2, grpc-v2"),
        (["--predictor_host", "p:1", "--confidence_threshold", "1.2"], "must be in (0, 1)"),
        (
            ["--predictor_host", "p:1", "--confidence_threshold", "abc"],
            "must be a number in (0, 1)",
        ),
        (
            ["--predictor_host", "p:1", "--allow_threshold_override", "maybe"],
            "expected true or false",
        ),
        (["--predictor_host", "p:1", "--others_label", ""], "--others_label must not be empty"),
    ],
)
def test_transformer_refuses_bad_settings_at_start(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        TransformerSettings.from_args(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "parse, argv",
    [
        (PredictorSettings.from_args, []),
        (TransformerSettings.from_args, ["--predictor_host", "p:8081"]),
    ],
    ids=["predictor", "transformer"],
)
def test_more_than_one_worker_process_is_refused_naming_the_way_to_scale(parse, argv, capsys):
    with pytest.raises(SystemExit) as stopped:
        parse(["--workers", "2", *argv])
    assert stopped.value.code == 2
    message = capsys.readouterr().err
    assert "--workers 2" in message and "replicas" in message


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--policy_reload_interval_seconds", "-1"], "must be >= 0"),
        (["--drift_window", "-5"], "--drift_window must be >= 0"),
    ],
)
def test_transformer_policy_and_drift_flags_refuse_negatives(argv, message, capsys):
    with pytest.raises(SystemExit):
        TransformerSettings.from_args(["--predictor_host", "p:8081", *argv])
    assert message in capsys.readouterr().err


def test_the_offline_parser_refuses_a_server_flag(capsys):
    from offline import batch

    with pytest.raises(SystemExit):
        batch.build_parser().parse_args(
            ["--input", "in.jsonl", "--output", "out.jsonl", "--http_port", "8080"]
        )
    assert "unrecognized arguments: --http_port" in capsys.readouterr().err
