"""The transformer's tokenization on a real tokenizer (the tiny model's): padding, truncation."""

import numpy as np
import pytest

from kserve_kit.modeldir import ModelInfo
from kserve_kit.tokenization import TextEncoder

pytestmark = pytest.mark.runtime


def test_encoder_pads_to_the_longest_text_and_truncates_at_max_length(tiny_model_dir):
    encoder = TextEncoder(ModelInfo.load(tiny_model_dir), max_length=16)
    short = encoder.encode(["hi", "hello there my friend"])
    assert short.input_ids.dtype == np.int64
    assert short.input_ids.shape[1] < 16  # padded to the longer text, not to max_length
    assert short.attention_mask[0].sum() < short.attention_mask[1].sum()
    long = encoder.encode(["word " * 500])
    assert long.input_ids.shape == (1, 16)
    assert long.attention_mask.all()
