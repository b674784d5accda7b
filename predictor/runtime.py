"""The model runtime: a Hugging Face sequence classifier in torch, on the CPU or a GPU.

The only module of the predictor that imports torch and transformers.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification

from kserve_kit.errors import ModelUnfit
from predictor.config import PredictorConfig

log = logging.getLogger(__name__)

TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
WARM_UP_LENGTHS = (16, 64)


def resolve_device(requested: str, dtype: str) -> torch.device:
    """`auto` means CUDA when there is one. Half precision on the CPU is refused."""
    cuda = torch.cuda.is_available()
    if requested == "cuda" and not cuda:
        raise ModelUnfit("--device cuda was asked for, but torch sees no CUDA device")
    device = torch.device("cuda" if requested == "cuda" or (requested == "auto" and cuda) else "cpu")
    if device.type == "cpu" and dtype != "float32":
        raise ModelUnfit(f"--dtype {dtype} runs only on a GPU; on the CPU use --dtype float32")
    return device


def configure_threads(requested: int) -> int:
    """Intra-op threads: as asked, else the CPUs this process may use (its cgroup's cpuset)."""
    threads = requested or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    return threads


@dataclass
class TorchRuntime:
    model: torch.nn.Module
    device: torch.device
    threads: int

    @classmethod
    def load(cls, config: PredictorConfig) -> TorchRuntime:
        device = resolve_device(config.device, config.dtype)
        threads = configure_threads(config.torch_threads)
        model = AutoModelForSequenceClassification.from_pretrained(
            config.model_dir, dtype=TORCH_DTYPES[config.dtype]
        )
        model.eval().to(device)
        log.info("loaded %s on %s (%s, %d threads)", config.model_dir, device, config.dtype, threads)
        return cls(model=model, device=device, threads=threads)

    @property
    def type_vocab_size(self) -> int | None:
        return getattr(self.model.config, "type_vocab_size", None)

    def forward(
        self,
        input_ids: np.ndarray,
        attention_mask: np.ndarray,
        token_type_ids: np.ndarray | None = None,
    ) -> np.ndarray:
        """Logits as float32 numpy `[N, C]`. Blocking: call it off the event loop."""
        inputs = {
            "input_ids": torch.from_numpy(input_ids).to(self.device, non_blocking=True),
            "attention_mask": torch.from_numpy(attention_mask).to(self.device, non_blocking=True),
        }
        if token_type_ids is not None:
            inputs["token_type_ids"] = torch.from_numpy(token_type_ids).to(self.device)
        with torch.inference_mode():
            logits = self.model(**inputs).logits
        # The one host synchronisation per batch: copying the result back.
        return logits.float().cpu().numpy()

    def warm_up(self, max_rows: int) -> None:
        """Run the shapes the server will see first, so the first request is not the slow one."""
        limit = getattr(self.model.config, "max_position_embeddings", None) or max(WARM_UP_LENGTHS)
        for rows in sorted({1, max_rows}):
            for length in sorted({min(n, limit) for n in WARM_UP_LENGTHS}):
                ids = np.ones((rows, length), dtype=np.int64)
                self.forward(ids, np.ones_like(ids))
