"""The scoring loop of every offline command: texts tokenized as the transformer does, forwarded
as the predictor does, decided by the policy as the transformer does. The batch command, the
calibration command and the champion/challenger comparison all take their logits from here."""

from __future__ import annotations

import sys

from kserve_kit.modeldir import ModelInfo
from kserve_kit.policy import DecisionPolicy
from kserve_kit.tokenization import TextEncoder
from offline.rows import Row
from predictor.config import PredictorSettings


class Scorer:
    """Tokenize, forward and decide, exactly as transformer + predictor do online. The
    calibration command (`offline.calibrate`) takes its logits from here too."""

    def __init__(
        self,
        runtime: PredictorSettings,
        info: ModelInfo,
        max_length: int,
        policy: DecisionPolicy | None = None,
    ):
        from predictor.runtime import TorchRuntime

        self.info = info
        self.policy = policy
        self.rows_per_forward = runtime.max_batch_size
        self.encoder = TextEncoder(info, max_length)
        self.runtime = TorchRuntime.load(runtime)
        print(f"scoring with {self.runtime.summary}", file=sys.stderr)

    def logits(self, texts: list[str]):
        """float32 logits `[N, C]` for `texts`, in their order. Texts of similar length share a
        forward, so little of each forward is padding; the order is restored afterwards."""
        import numpy as np

        encoded = self.encoder.encode(texts)  # right-padded to the longest
        lengths = encoded.attention_mask.sum(axis=1)
        order = np.argsort(lengths, kind="stable")
        logits = np.empty((len(texts), len(self.info.labels)), dtype=np.float32)
        for start in range(0, len(texts), self.rows_per_forward):
            picked = order[start : start + self.rows_per_forward]
            width = int(lengths[picked].max())  # drop the columns that are padding for all
            logits[picked] = self.runtime.forward(
                encoded.input_ids[picked, :width], encoded.attention_mask[picked, :width]
            )
        return logits

    def score(self, rows: list[Row]):
        """Decisions for `rows`, in their order, by the scorer's policy."""
        return self.policy.decide(self.logits([row.text for row in rows]), self.info.labels)
