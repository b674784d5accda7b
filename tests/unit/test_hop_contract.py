"""The hop's contract (transformer.hop_contract) against V2 model metadata: what the
transformer sends and reads must be what the predictor says it takes and answers."""

import numpy as np
import pytest

from kserve_kit.errors import SettingRefused
from transformer.config import TransformerSettings
from transformer.hop_contract import HopContract

pytestmark = pytest.mark.unit


def tensor(name, datatype="INT64", shape=(-1, -1)):
    return {"name": name, "datatype": datatype, "shape": list(shape)}


KIT_PREDICTOR = {
    "name": "text-classifier",
    "inputs": [tensor("input_ids"), tensor("attention_mask"), tensor("token_type_ids")],
    "outputs": [tensor("logits", "FP32", (-1, 5))],
}
TRITON_ONNX = {
    "name": "classifier",
    "inputs": [tensor("ids", "INT32"), tensor("mask", "INT32")],
    "outputs": [tensor("scores", "FP32", (-1, 5))],
}


def test_the_defaults_are_the_kit_s_predictor_and_token_types_are_only_a_warning():
    hop = HopContract(model_name="text-classifier")
    warnings = hop.check(KIT_PREDICTOR, labels=5, where="'text-classifier' at h:1")
    assert len(warnings) == 1 and "'token_type_ids'" in warnings[0]
    sending = HopContract(model_name="text-classifier", token_type_ids_name="token_type_ids")
    assert sending.check(KIT_PREDICTOR, labels=5, where="x") == []


def test_another_backend_s_names_and_datatype():
    hop = HopContract("classifier", "ids", "mask", None, "INT32", "scores")
    assert hop.check(TRITON_ONNX, labels=5, where="x") == []
    ids = np.array([[101, 7, 102]])
    sent = hop.inputs(ids, np.ones_like(ids))
    assert [(n, d, a.dtype) for n, d, a in sent] == [
        ("ids", "INT32", np.int32),
        ("mask", "INT32", np.int32),
    ]


@pytest.mark.parametrize(
    "change, says",
    [
        ({"input_ids_name": "input_ids"}, "--predictor_input_ids_name 'input_ids'"),
        ({"attention_mask_name": "attn"}, "--predictor_attention_mask_name 'attn'"),
        ({"token_type_ids_name": "token_type_ids"}, "--predictor_token_type_ids_name"),
        ({"input_datatype": "INT64"}, "wants 'ids' as INT32"),
        ({"output_name": "logits"}, "--predictor_output_name 'logits'"),
    ],
)
def test_a_mismatch_is_one_line_naming_the_flag_and_what_the_predictor_has(change, says):
    fields = {
        "model_name": "classifier",
        "input_ids_name": "ids",
        "attention_mask_name": "mask",
        "input_datatype": "INT32",
        "output_name": "scores",
        **change,
    }
    with pytest.raises(SettingRefused) as refused:
        HopContract(**fields).check(TRITON_ONNX, labels=5, where="'classifier' at h:1")
    message = str(refused.value)
    assert says in message and "'classifier' at h:1" in message and "\n" not in message
    if "input" in says or "token_type" in says:
        assert "['ids', 'mask']" in message  # what the predictor takes instead


def test_scores_that_are_not_fp32_or_of_another_class_count_are_refused():
    hop = HopContract("classifier", "ids", "mask", None, "INT32", "scores")
    half = {**TRITON_ONNX, "outputs": [tensor("scores", "FP16", (-1, 5))]}
    with pytest.raises(SettingRefused, match="as FP16"):
        hop.check(half, labels=5, where="x")
    with pytest.raises(SettingRefused, match="5 classes, while the model directory has 3"):
        hop.check(TRITON_ONNX, labels=3, where="x")


def test_flags_make_the_contract():
    args = ["--model_dir", "m", "--predictor_host", "h:1", "--model_name", "tc"]
    assert TransformerSettings.from_args(args).hop == HopContract("tc")
    other = TransformerSettings.from_args(
        [
            *args,
            *("--predictor_model_name", "onnx", "--predictor_input_ids_name", "ids"),
            *("--predictor_token_type_ids", "true", "--predictor_input_datatype", "INT32"),
            *("--predictor_output_name", "scores"),
        ]
    ).hop
    assert other == HopContract(
        "onnx", "ids", "attention_mask", "token_type_ids", "INT32", "scores"
    )


@pytest.mark.parametrize(
    "flags",
    [
        ["--predictor_input_ids_name", "attention_mask"],
        ["--predictor_output_name", ""],
        ["--predictor_input_datatype", "FP32"],
        ["--predictor_metadata_timeout_seconds", "-1"],
    ],
)
def test_contract_flags_that_cannot_work_stop_the_parser(flags, capsys):
    with pytest.raises(SystemExit) as stopped:
        TransformerSettings.from_args(["--model_dir", "m", "--predictor_host", "h:1", *flags])
    assert stopped.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "error:" in last and flags[0] in last
