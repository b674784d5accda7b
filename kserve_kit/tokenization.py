"""Text -> token tensors, with the Rust `tokenizers` library and no torch.

The model directory's `tokenizer.json` (written by any fast tokenizer's `save_pretrained`) holds
the vocabulary, normalisation and special tokens. Batches are padded to their longest text, not
to `max_length`, so short texts cost short forwards.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from kserve_kit.errors import ModelUnfit
from kserve_kit.modeldir import ModelInfo


@dataclass(frozen=True)
class Encoded:
    input_ids: np.ndarray  # int64 [N, L]
    attention_mask: np.ndarray  # int64 [N, L]


class TextEncoder:
    """Tokenizes batches of texts the way the model was trained to read them."""

    def __init__(self, info: ModelInfo, max_length: int):
        tokenizer_file = info.path / "tokenizer.json"
        if not tokenizer_file.is_file():
            raise ModelUnfit(
                f"{info.path} has no tokenizer.json: save a fast tokenizer with "
                "AutoTokenizer.from_pretrained(..., use_fast=True).save_pretrained(model_dir)"
            )
        if info.max_positions is not None and max_length > info.max_positions:
            raise ModelUnfit(
                f"max_length {max_length} exceeds the model's {info.max_positions} positions"
            )
        self.max_length = max_length
        self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        pad_token, pad_id = _pad_token(info, self._tokenizer)
        self._tokenizer.enable_truncation(max_length=max_length)
        self._tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token)

    def encode(self, texts: list[str]) -> Encoded:
        encodings = self._tokenizer.encode_batch(texts)
        return Encoded(
            input_ids=np.array([e.ids for e in encodings], dtype=np.int64),
            attention_mask=np.array([e.attention_mask for e in encodings], dtype=np.int64),
        )


def _pad_token(info: ModelInfo, tokenizer: Tokenizer) -> tuple[str, int]:
    """The padding token: from tokenizer_config.json, else config.json's pad_token_id."""
    config_file = info.path / "tokenizer_config.json"
    if config_file.is_file():
        token = json.loads(config_file.read_text()).get("pad_token")
        if isinstance(token, dict):  # older files store an AddedToken object
            token = token.get("content")
        if isinstance(token, str) and tokenizer.token_to_id(token) is not None:
            return token, tokenizer.token_to_id(token)
    if info.pad_token_id is not None:
        token = tokenizer.id_to_token(info.pad_token_id)
        if token is not None:
            return token, info.pad_token_id
    raise ModelUnfit(f"{Path(info.path)} names no padding token the tokenizer knows")
