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

from kserve_kit import contract, drift, tracing
from kserve_kit.cli import DEFAULT_MAX_REQUEST_BYTES
from kserve_kit.decision import requested_threshold
from kserve_kit.errors import BadInput, PredictorFailed, SettingRefused
from kserve_kit.metrics import CountedModel
from kserve_kit.modeldir import ModelInfo
from kserve_kit.policy import DecisionPolicy, resolve_policy
from kserve_kit.policy_watch import PolicyWatcher
from kserve_kit.tensors import (
    OutputPlan,
    check_texts,
    encode_response,
    plan_outputs,
    read_parameter,
    read_texts,
)
from kserve_kit.tokenization import TextEncoder
from transformer import metrics
from transformer.balancing import retry_policy_for
from transformer.config import TransformerSettings
from transformer.hop import PredictorClient
from transformer.hop_contract import check_predictor

# What preprocess learnt of the client's request that postprocess needs (the predictor's answer
# does not carry it). KServe runs each request in its own task, so preprocess and postprocess of
# one request see the same value and never another request's.
_request: contextvars.ContextVar[_ClientRequest] = contextvars.ContextVar("client_request")


@dataclass(frozen=True)
class _ClientRequest:
    policy: DecisionPolicy  # taken once: a reload in between never mixes two policies
    threshold: float | None  # the request's own confidence_threshold, if it sent one
    outputs: OutputPlan
    payload: InferRequest


def request_threshold(
    parameters: dict | None, default: float | None, allow_override: bool
) -> float | None:
    """The threshold for one request: its `confidence_threshold` parameter, or `default`."""
    sent = read_parameter(parameters, contract.THRESHOLD_PARAMETER)
    try:
        threshold = requested_threshold(sent, allow_override)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    return default if threshold is None else threshold


class TextClassifierTransformer(CountedModel, Model):
    platform = "kserve-kit-transformer"  # V2 model metadata: tokenizer + decision, no framework

    def __init__(
        self, config: TransformerSettings, max_message_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    ):
        super().__init__(config.model_name)
        self.config = config
        self.info = ModelInfo.load(config.model_dir)
        self.encoder: TextEncoder | None = None
        self._policy = self._serving_policy(config)
        self.drift = self._drift_window(config)
        self._series_started_for: str | None = None
        self.predictor = PredictorClient(
            host=config.predictor_host,
            protocol=config.predictor_protocol,
            model_name=config.hop.model_name,
            timeout_s=config.predictor_request_timeout_s,
            max_message_bytes=max_message_bytes,
            retry=retry_policy_for(config),
            load_balancing=config.predictor_load_balancing,
        )

    @property
    def version(self) -> str:
        return self.info.version

    @property
    def policy(self) -> DecisionPolicy:
        """The decision policy serving now (a watched file's latest valid version)."""
        policy = self._policy
        return policy.current if isinstance(policy, PolicyWatcher) else policy

    def _serving_policy(self, config: TransformerSettings) -> DecisionPolicy | PolicyWatcher:
        """The policy file when there is one (watched for new versions), else the flags.
        A file that cannot serve raises PolicyError: the server does not start."""
        return resolve_policy(
            config.policy_file,
            config.model_dir,
            self.info.labels,
            self.info.version,
            config.confidence_threshold,
            config.others_label,
            watch=lambda path, load: PolicyWatcher(
                path, load, interval_s=config.policy_reload_interval_s or 1.0
            ),
        )

    def _drift_window(self, config: TransformerSettings) -> drift.DriftWindow | None:
        path = config.drift_reference
        if path is None:
            default = self.info.path / drift.FILE_NAME
            path = default if default.is_file() else None
        if path is None or config.drift_window == 0:
            return None
        answered = [*self.info.labels, self.policy.others_label]
        try:
            reference = drift.Reference.load(path, answered)
        except ValueError as exc:
            raise SettingRefused(f"--drift_reference {exc}") from None
        window = drift.DriftWindow(reference, config.drift_window)
        metrics.watch_drift(window)
        return window

    def load(self) -> bool:
        self.encoder = TextEncoder(self.info, self.config.max_length)
        self.encoder.encode(["warm up"])
        check_predictor(
            self.config.hop,
            self.config.predictor_host,
            self.config.predictor_protocol,
            len(self.info.labels),
            self.config.predictor_metadata_timeout_s,
        )
        if isinstance(self._policy, PolicyWatcher) and self.config.policy_reload_interval_s:
            self._policy.start()
        self.ready = True
        return self.ready

    async def dependencies_ready(self) -> bool:
        """With --enable_predictor_health_check, whether at least one predictor endpoint is
        ready: the model's readiness (the readiness probe) includes it (kserve_kit.serving)."""
        return not self.config.enable_predictor_health_check or await self.predictor.ready()

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
        with tracing.span("transformer.decode") as span:
            texts = read_texts(payload, contract.TEXT)
            check_texts(texts, self.config.max_batch_size)
            tracing.set_attributes(span, {"kserve_kit.texts": len(texts)})
        # None: the policy's own thresholds apply.
        threshold = request_threshold(
            payload.parameters, None, self.config.allow_threshold_override
        )
        outputs = plan_outputs(payload, contract.TRANSFORMER_OUTPUTS)
        _request.set(_ClientRequest(self.policy, threshold, outputs, payload))
        with tracing.span("transformer.tokenize") as span:
            encoded = self.encoder.encode(texts)
            tracing.set_attributes(span, {"kserve_kit.sequence_length": encoded.input_ids.shape[1]})
        binary = self.config.predictor_protocol == "grpc-v2"
        hop = self.config.hop
        inputs = []
        for name, datatype, array in hop.inputs(encoded.input_ids, encoded.attention_mask):
            tensor = InferInput(name, list(array.shape), datatype)
            tensor.set_data_from_numpy(array, binary_data=binary)
            inputs.append(tensor)
        return InferRequest(
            model_name=hop.model_name,
            infer_inputs=inputs,
            request_id=payload.id or str(uuid.uuid4()),
        )

    async def predict(self, payload: InferRequest, headers: dict | None = None) -> InferResponse:
        with tracing.span("transformer.hop", self.predictor.span_attributes, kind="client"):
            return await self.predictor.infer(payload, headers)

    def postprocess(self, response: InferResponse, headers: dict | None = None) -> InferResponse:
        request = _request.get()
        logits = self._logits(response)
        with tracing.span(
            "transformer.decide", {"kserve_kit.policy_version": request.policy.version}
        ):
            decisions = request.policy.decide(logits, self.info.labels, request.threshold)
        self._observe(request.policy, decisions)
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
            grpc_binary=True,
            parameters={contract.POLICY_VERSION_PARAMETER: request.policy.version},
            response_id=response.id,
        )

    def _observe(self, policy: DecisionPolicy, decisions) -> None:
        """Count the decisions, and move the drift window."""
        if self._series_started_for != policy.version:
            metrics.start_series(
                [*self.info.labels, policy.others_label], self.info.version, policy.version
            )
            self._series_started_for = policy.version
        for label in decisions.labels:
            metrics.DECISIONS.labels(label, self.info.version, policy.version).inc()
        histogram = metrics.CONFIDENCE.labels(policy.version)
        for confidence in decisions.confidence.tolist():
            histogram.observe(confidence)
        if self.drift is not None and policy.others_label == self.drift.reference.labels[-1]:
            self.drift.add(decisions.labels, decisions.confidence)

    def stop(self) -> None:
        if isinstance(self._policy, PolicyWatcher):
            self._policy.stop()
        super().stop()

    def _logits(self, response: InferResponse) -> np.ndarray:
        name = self.config.hop.output_name
        for output in response.outputs:
            if output.name == name:
                return output.as_numpy()
        raise PredictorFailed(self.predictor.host, f"no {name!r} in its answer")
