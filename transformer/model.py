"""`TextClassifierTransformer`: texts -> token tensors -> (predictor) -> logits -> decisions.

The KServe hooks only translate between the wire and the kit's plain functions: `read_texts`,
`TextEncoder.encode`, and `decide`.
"""

from __future__ import annotations

import contextvars
import uuid
from dataclasses import dataclass

import numpy as np
from kserve import InferInput, InferRequest, InferResponse, Model

from kserve_kit import contract
from kserve_kit.decision import decide, validate_threshold
from kserve_kit.errors import BadInput, PredictorFailed, TooLarge
from kserve_kit.modeldir import ModelInfo
from kserve_kit.tensors import (
    OutputPlan,
    encode_response,
    plan_outputs,
    read_parameter,
    read_texts,
)
from kserve_kit.tokenization import TextEncoder
from transformer.config import TransformerConfig
from transformer.hop import PredictorClient

# What preprocess learnt of the client's request that postprocess needs (the predictor's answer
# does not carry it). KServe runs each request in its own task, so preprocess and postprocess of
# one request see the same value and never another request's.
_request: contextvars.ContextVar[_ClientRequest] = contextvars.ContextVar("client_request")


@dataclass(frozen=True)
class _ClientRequest:
    threshold: float
    outputs: OutputPlan
    payload: InferRequest


def check_texts(texts: list[str], max_batch_size: int) -> None:
    if not texts:
        raise BadInput("input 'text' holds no texts: send shape [N] with N >= 1")
    if len(texts) > max_batch_size:
        raise TooLarge(
            f"a request may hold at most {max_batch_size} texts (--max_batch_size), "
            f"got {len(texts)}"
        )
    for i, text in enumerate(texts):
        if not text.strip():
            raise BadInput(f"text {i} is empty: every text needs at least one visible character")


# How a threshold may be sent: a JSON number or string over REST, a double or a string over gRPC.
THRESHOLD_KINDS = ("number", "string", "double_param", "string_param")


def request_threshold(parameters: dict | None, default: float, allow_override: bool) -> float:
    """The threshold for one request: its `confidence_threshold` parameter, or the default."""
    found = read_parameter(parameters, contract.THRESHOLD_PARAMETER)
    if found is None:
        return default
    if not allow_override:
        raise BadInput(
            f"this server does not accept a {contract.THRESHOLD_PARAMETER} parameter "
            "(--allow_threshold_override false); its threshold is fixed"
        )
    kind, value = found
    if kind not in THRESHOLD_KINDS:
        raise BadInput(
            f"parameter {contract.THRESHOLD_PARAMETER} must be a number in (0, 1), sent as "
            f"{' or '.join(THRESHOLD_KINDS)}; got {kind} {value!r}"
        )
    try:
        return validate_threshold(value)
    except ValueError as exc:
        raise BadInput(f"parameter {exc}") from None


class TextClassifierTransformer(Model):
    platform = "kserve-kit-transformer"  # V2 model metadata: tokenizer + decision, no framework

    def __init__(self, config: TransformerConfig, max_message_bytes: int = 8 * 1024 * 1024):
        super().__init__(config.model_name)
        self.config = config
        self.info = ModelInfo.load(config.model_dir)
        self.encoder: TextEncoder | None = None
        self.predictor = PredictorClient(
            host=config.predictor_host,
            protocol=config.predictor_protocol,
            model_name=config.model_name,
            timeout_s=config.predictor_timeout_s,
            max_message_bytes=max_message_bytes,
        )

    @property
    def version(self) -> str:
        return self.info.version

    def load(self) -> bool:
        self.encoder = TextEncoder(self.info, self.config.max_length)
        self.encoder.encode(["warm up"])
        self.ready = True
        return self.ready

    def get_input_types(self) -> list[dict]:
        return [contract.TEXT.metadata([-1])]

    def get_output_types(self) -> list[dict]:
        n = len(self.info.labels)
        return [
            contract.LABEL.metadata([-1]),
            contract.CONFIDENCE.metadata([-1]),
            contract.PROBABILITIES.metadata([-1, n]),
        ]

    async def preprocess(self, payload, headers: dict | None = None) -> InferRequest:
        if not isinstance(payload, InferRequest):
            raise BadInput("this model speaks the V2 protocol: POST /v2/models/{name}/infer")
        texts = read_texts(payload, contract.TEXT)
        check_texts(texts, self.config.max_batch_size)
        threshold = request_threshold(
            payload.parameters,
            self.config.confidence_threshold,
            self.config.allow_threshold_override,
        )
        outputs = plan_outputs(payload, contract.TRANSFORMER_OUTPUTS)
        _request.set(_ClientRequest(threshold, outputs, payload))
        encoded = self.encoder.encode(texts)
        binary = self.config.predictor_protocol == "grpc-v2"
        inputs = []
        for spec, array in (
            (contract.INPUT_IDS, encoded.input_ids),
            (contract.ATTENTION_MASK, encoded.attention_mask),
        ):
            tensor = InferInput(spec.name, list(array.shape), spec.datatype)
            tensor.set_data_from_numpy(array, binary_data=binary)
            inputs.append(tensor)
        return InferRequest(
            model_name=self.name,
            infer_inputs=inputs,
            request_id=payload.id or str(uuid.uuid4()),
        )

    async def predict(self, payload: InferRequest, headers: dict | None = None) -> InferResponse:
        return await self.predictor.infer(payload, headers)

    def postprocess(self, response: InferResponse, headers: dict | None = None) -> InferResponse:
        request = _request.get()
        logits = self._logits(response)
        decisions = decide(logits, self.info.labels, request.threshold, self.config.others_label)
        arrays = {
            contract.LABEL.name: np.array(decisions.labels, dtype=np.object_),
            contract.CONFIDENCE.name: decisions.confidence,
            contract.PROBABILITIES.name: decisions.probabilities,
        }
        return encode_response(
            request.payload,
            request.outputs,
            arrays,
            contract.TRANSFORMER_OUTPUTS,
            model_name=self.name,
            model_version=response.model_version or self.info.version,
            grpc_binary=False,
            response_id=response.id,
        )

    def _logits(self, response: InferResponse) -> np.ndarray:
        for output in response.outputs:
            if output.name == contract.LOGITS.name:
                return output.as_numpy()
        raise PredictorFailed(self.predictor.host, f"no {contract.LOGITS.name!r} in its answer")
