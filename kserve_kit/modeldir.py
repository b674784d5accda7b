"""What the servers read from a Hugging Face model directory without loading the model.

The transformer needs the labels, the version and the tokenizer; the predictor needs the same
labels and version to describe itself. Both read them here, from `config.json`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from kserve_kit.errors import ModelUnfit

# The key the kit reads from config.json (save_pretrained keeps unknown keys).
VERSION_KEY = "model_version"


@dataclass(frozen=True)
class ModelInfo:
    """The served model as both servers describe it."""

    path: Path
    labels: tuple[str, ...]  # index i is the label of logit i
    version: str
    max_positions: int | None  # the longest sequence the model accepts, when config.json says
    vocab_size: int | None
    pad_token_id: int | None

    @classmethod
    def load(cls, model_dir: str | Path) -> ModelInfo:
        path = Path(model_dir)
        config_file = path / "config.json"
        if not config_file.is_file():
            raise ModelUnfit(
                f"{path} is not a Hugging Face model directory: no config.json "
                "(save the model with save_pretrained, or point --model_dir at it)"
            )
        raw = config_file.read_bytes()
        try:
            config = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ModelUnfit(f"{config_file} is not valid JSON: {exc}") from None
        return cls(
            path=path,
            labels=_labels(config, config_file),
            version=str(config.get(VERSION_KEY) or hashlib.sha256(raw).hexdigest()[:12]),
            max_positions=config.get("max_position_embeddings"),
            vocab_size=config.get("vocab_size"),
            pad_token_id=config.get("pad_token_id"),
        )


def _labels(config: dict, config_file: Path) -> tuple[str, ...]:
    id2label = config.get("id2label")
    if not isinstance(id2label, dict) or not id2label:
        raise ModelUnfit(f"{config_file} has no id2label: the kit needs named classes")
    try:
        by_index = {int(k): str(v) for k, v in id2label.items()}
    except ValueError:
        raise ModelUnfit(f"{config_file}: id2label keys must be class indices") from None
    if sorted(by_index) != list(range(len(by_index))):
        raise ModelUnfit(f"{config_file}: id2label must cover 0..{len(by_index) - 1}")
    return tuple(by_index[i] for i in range(len(by_index)))
