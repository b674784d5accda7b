"""`TextClassifierPredictor`: the KServe model class. It only translates between V2 tensors and
the runtime (`predictor.runtime`); the checks on the tensors sit beside the codec, in
`kserve_kit.tensors`."""

from __future__ import annotations

import numpy as np
from kserve import InferRequest, InferResponse, Model
from prometheus_client import Gauge

from kserve_kit import contract
from kserve_kit.errors import BadInput
from kserve_kit.metrics import CountedModel
from kserve_kit.modeldir import ModelInfo
from kserve_kit.tensors import check_token_tensors, encode_response, plan_outputs, read_tensor
from predictor.config import PredictorSettings
from predictor.dynamic_batching import Batcher

INFLIGHT = Gauge(
    "kserve_kit_predictor_inflight_requests",
    "Inference requests inside the predictor (queued or running); the KEDA overlay scales on it",
    ["model_name"],
)


class TextClassifierPredictor(CountedModel, Model):
    """Token tensors in, logits out. `load()` loads the model and runs one warm-up forward."""

    platform = "pytorch"  # V2 model metadata: the framework that runs the model

    def __init__(self, config: PredictorSettings):
        super().__init__(config.model_name)
        self.config = config
        self.info = ModelInfo.load(config.model_dir)
        self.runtime = None
        self.batcher: Batcher | None = None

    @property
    def version(self) -> str:
        return self.info.version

    def load(self) -> bool:
        from predictor.runtime import TorchRuntime  # torch is imported here, not at module import

        self.runtime = TorchRuntime.load(self.config)
        self.runtime.warm_up(self.config.max_batch_size)
        self.batcher = Batcher(
            self.runtime.forward,
            max_batch_size=self.config.max_batch_size,
            max_delay_s=self.config.max_batch_delay_ms / 1000,
            pad_id=self.info.pad_token_id or 0,
            workers=self.runtime.forward_workers,
            before_forward=self.runtime.thread_plan(self.runtime.forward_workers),
        )
        self.ready = True
        return self.ready

    def get_input_types(self) -> list[dict]:
        return [spec.metadata([-1, -1]) for spec in contract.PREDICTOR_INPUTS]

    def get_output_types(self) -> list[dict]:
        return [contract.LOGITS.metadata([-1, len(self.info.labels)])]

    async def predict(self, payload: InferRequest, headers: dict | None = None) -> InferResponse:
        if not isinstance(payload, InferRequest):
            raise BadInput("the predictor speaks the V2 protocol: POST /v2/models/{name}/infer")
        tensors = {
            spec.name: read_tensor(payload, spec)
            for spec in contract.PREDICTOR_INPUTS
            if not spec.optional or spec.name in {i.name for i in payload.inputs}
        }
        _reject_unknown_inputs(payload)
        outputs = plan_outputs(payload, (contract.LOGITS,))
        ids, mask, types = check_token_tensors(
            tensors,
            vocab_size=self.info.vocab_size,
            max_positions=self.info.max_positions,
            type_vocab_size=self.runtime.type_vocab_size,
            max_rows=self.config.max_batch_size,
        )
        with INFLIGHT.labels(self.name).track_inprogress():
            logits = await self.batcher.infer(ids, mask, types)
        # Raw bytes over gRPC; over REST, JSON unless the request asks for binary outputs
        # (KServe's REST client, the transformer's REST hop, reads JSON).
        return encode_response(
            payload,
            outputs,
            {contract.LOGITS.name: logits.astype(np.float32, copy=False)},
            (contract.LOGITS,),
            model_name=self.name,
            model_version=self.info.version,
            grpc_binary=True,
        )

    def stop(self) -> None:
        if self.batcher is not None:
            self.batcher.close()
        super().stop()


def _reject_unknown_inputs(payload: InferRequest) -> None:
    known = {spec.name for spec in contract.PREDICTOR_INPUTS}
    unknown = sorted({i.name for i in payload.inputs} - known)
    if unknown:
        raise BadInput(f"unexpected inputs {unknown}; the predictor takes {sorted(known)}")
