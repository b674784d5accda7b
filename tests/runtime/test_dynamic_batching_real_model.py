"""The dynamic batcher in front of a real model: merging requests changes no logit."""

import asyncio

import numpy as np
import pytest

from predictor.dynamic_batching import Batcher
from tests.unit.test_dynamic_batching import request

pytestmark = pytest.mark.runtime


def test_batched_and_unbatched_logits_agree_on_a_real_model(tiny_model_dir):
    from predictor.config import PredictorSettings
    from predictor.runtime import TorchRuntime

    # float32: in bfloat16 a row's logits depend on what it is batched with, by a rounding step
    runtime = TorchRuntime.load(
        PredictorSettings.from_args(["--model_dir", str(tiny_model_dir), "--dtype", "float32"])
    )
    inputs = [request(100 + i) for i in range(12)]
    alone = [runtime.forward(x, np.ones_like(x)) for x in inputs]

    async def main():
        batcher = Batcher(runtime.forward, max_batch_size=16, max_delay_s=0.01)
        results = await asyncio.gather(*(batcher.infer(x, np.ones_like(x)) for x in inputs))
        batcher.close()
        return results

    for a, b in zip(alone, asyncio.run(main()), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
