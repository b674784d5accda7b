"""The benchmark's inputs: real-looking texts of about 64 tokens, the same for every target.

Texts are built from the demo data set's sentences, joined until the model's tokenizer counts
between `low` and `high` tokens (special tokens included). Deterministic for a given seed.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from demo.build import load_examples
from kserve_kit.modeldir import ModelInfo
from kserve_kit.tokenization import TextEncoder

TARGET_TOKENS = 64


def make_texts(
    model_dir: Path, count: int = 256, low: int = 58, high: int = TARGET_TOKENS, seed: int = 7
) -> list[str]:
    """`count` distinct texts whose tokenized length lies in [low, high]."""
    tokenizer = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
    sentences = [text for text, _ in load_examples()]
    rng = random.Random(seed)
    texts: list[str] = []
    for _ in range(count * 50):  # bounded: gives up rather than loop forever on odd data
        if len(texts) == count:
            break
        parts: list[str] = []
        while len(tokenizer.encode(" ".join(parts)).ids) < low:
            parts.append(rng.choice(sentences))
        text = " ".join(parts)
        if len(tokenizer.encode(text).ids) <= high and text not in texts:
            texts.append(text)
    if len(texts) < count:
        raise RuntimeError(f"could build only {len(texts)} texts of {low}-{high} tokens")
    return texts


def tokenize(model_dir: Path, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Each text's ids and mask, one row per text, padded to the longest of them, by the
    transformer's `TextEncoder`. At most TARGET_TOKENS each: the token targets (predictor,
    raw) have always been cut there, by the demo tokenizer.json's own truncation at 64."""
    encoded = TextEncoder(ModelInfo.load(Path(model_dir)), TARGET_TOKENS).encode(texts)
    return encoded.input_ids, encoded.attention_mask
