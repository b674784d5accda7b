"""The V2 (Open Inference Protocol) contract between client, transformer and predictor.

Both servers import these names; nothing else in the kit spells a tensor name or a datatype.

Client -> transformer:   text           BYTES  [N] (or [N, 1])
Transformer -> predictor: input_ids      INT64  [N, L] (INT32 accepted)
                          attention_mask INT64  [N, L] (INT32 accepted)
                          token_type_ids INT64  [N, L] optional
Predictor -> transformer: logits         FP32   [N, C]
Transformer -> client:    label          BYTES  [N]
                          confidence     FP32   [N]
                          probabilities  FP32   [N, C]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_MODEL_NAME = "text-classifier"

# Below this top probability the answer is DEFAULT_OTHERS_LABEL, unless a flag or policy says.
DEFAULT_CONFIDENCE_THRESHOLD = 0.9
DEFAULT_OTHERS_LABEL = "others"
# Request parameter a client may send to override the confidence threshold.
THRESHOLD_PARAMETER = "confidence_threshold"
# Response parameter naming the decision policy that answered (kserve_kit.policy).
POLICY_VERSION_PARAMETER = "policy_version"


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of the contract: its name, the datatypes accepted, and its rank."""

    name: str
    datatypes: tuple[str, ...]
    rank: int
    optional: bool = False

    @property
    def datatype(self) -> str:
        """The datatype the kit itself sends."""
        return self.datatypes[0]

    def metadata(self, shape: list[int]) -> dict:
        """The entry for this tensor in V2 model metadata (`GET /v2/models/{name}`)."""
        return {"name": self.name, "datatype": self.datatype, "shape": shape}


# Transformer inputs (what clients send).
TEXT = TensorSpec("text", ("BYTES",), rank=1)

# Predictor inputs (what the transformer sends).
INPUT_IDS = TensorSpec("input_ids", ("INT64", "INT32"), rank=2)
ATTENTION_MASK = TensorSpec("attention_mask", ("INT64", "INT32"), rank=2)
TOKEN_TYPE_IDS = TensorSpec("token_type_ids", ("INT64", "INT32"), rank=2, optional=True)
PREDICTOR_INPUTS = (INPUT_IDS, ATTENTION_MASK, TOKEN_TYPE_IDS)

# Predictor output.
LOGITS = TensorSpec("logits", ("FP32",), rank=2)

# Transformer outputs (what clients get back).
LABEL = TensorSpec("label", ("BYTES",), rank=1)
CONFIDENCE = TensorSpec("confidence", ("FP32",), rank=1)
PROBABILITIES = TensorSpec("probabilities", ("FP32",), rank=2)
TRANSFORMER_OUTPUTS = (LABEL, CONFIDENCE, PROBABILITIES)

# V2 datatype -> numpy dtype, for the datatypes the contract uses.
NUMPY_DTYPES: dict[str, type] = {
    "INT64": np.int64,
    "INT32": np.int32,
    "FP32": np.float32,
    "BYTES": np.object_,
}
