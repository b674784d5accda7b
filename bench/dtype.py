"""Raw forwards in float32, bfloat16 and int8, side by side in one run, and what each answers.

    python -m bench.dtype --model_dir models/demo [--rounds 3 --seconds 2 --threads 2]
    make bench-dtype

For each type: rows/s at batch 16, batch-1 latency and CPU per row, measured in interleaved
rounds (each round runs every type once, in a shuffled order; the report gives the median over
the rounds, and each ratio's median of the ratios measured within a round). Then, against
float32 on the demo's held-out texts and its out-of-domain texts: top-1 accuracy and the
decisions (label or `others` under the model directory's policy) that differ. Then each type's
resident memory, loaded alone in its own process. The report starts with the CPU's model and
its bf16 flags, and says "not supported on this CPU" where bfloat16 is not native: there the
bfloat16 figures measure oneDNN's emulation, not the hardware.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
from pathlib import Path

from bench.inputs import make_texts
from bench.raw import logits_of, measure, prepared
from predictor import precision
from predictor.config import PredictorSettings

REPO = Path(__file__).resolve().parents[1]
# (label, --dtype, --quantize)
KINDS = (
    ("float32", "float32", "none"),
    ("bfloat16", "bfloat16", "none"),
    ("int8", "float32", "int8"),
)


def cpu_report() -> dict:
    flags = precision.read_cpu_flags()
    from predictor.runtime import torch_bf16_supported

    native, why = precision.native_bf16(flags, torch_bf16_supported())
    model = "unknown"
    try:
        for line in precision.CPUINFO.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    relevant = sorted(f for f in flags if "bf16" in f or f.startswith(("amx", "avx512f", "avx2")))
    return {
        "cpu": model,
        "flags": relevant,
        "native_bf16": native,
        "bf16": why if native else f"not supported on this CPU: {why}",
        "auto_serves": precision.choose_dtype("auto", "cpu", "none", (native, why)).dtype,
    }


def load(model_dir: Path, dtype: str, quantize: str, threads: int):
    from predictor.runtime import TorchRuntime

    return TorchRuntime.load(
        PredictorSettings.from_args(
            ["--model_dir", str(model_dir), "--device", "cpu", "--dtype", dtype]
            + ["--quantize", quantize, "--torch_threads", str(threads)]
        )
    )


def decisions(runtime, model_dir: Path) -> dict[str, tuple[list[str], list[str], list[str]]]:
    """{split: (decisions, top-1 labels, true labels or [])} on the demo's held-out and
    out-of-domain texts, under the model directory's policy, tokenized as the transformer does."""
    from demo.build import load_examples, load_out_of_domain, split
    from kserve_kit.modeldir import ModelInfo
    from predictor.runtime import serving_policy

    info = ModelInfo.load(model_dir)
    policy = serving_policy(info)
    _, heldout = split(load_examples())
    splits = {
        "heldout": ([t for t, _ in heldout], [label for _, label in heldout]),
        "out_of_domain": (load_out_of_domain(), []),
    }
    out = {}
    for name, (texts, truth) in splits.items():
        logits = logits_of(runtime, model_dir, texts)
        top1 = [info.labels[i] for i in logits.argmax(axis=1)]
        out[name] = (policy.decide(logits, info.labels).labels, top1, truth)
    return out


def agreement(reference: dict, other: dict) -> dict:
    report = {}
    for name, (want, want_top1, truth) in reference.items():
        got, got_top1, _ = other[name]
        entry = {
            "texts": len(want),
            "decisions_differing": sum(a != b for a, b in zip(want, got, strict=True)),
        }
        if truth:
            entry["accuracy"] = sum(p == t for p, t in zip(got_top1, truth, strict=True)) / len(
                truth
            )
            entry["float32_accuracy"] = sum(
                p == t for p, t in zip(want_top1, truth, strict=True)
            ) / len(truth)
        report[name] = entry
    return report


def resident_mb(model_dir: Path, dtype: str, quantize: str, threads: int) -> float:
    """The resident size of a process that loaded the model in this type and warmed it up."""
    code = (
        "import sys\n"
        "from bench.dtype import load\n"
        "from pathlib import Path\n"
        f"rt = load(Path({str(model_dir)!r}), {dtype!r}, {quantize!r}, {threads})\n"
        "rt.warm_up(16)\n"
        "import resource, os\n"
        "pages = int(open('/proc/self/statm').read().split()[1])\n"
        "print(pages * os.sysconf('SC_PAGE_SIZE') / 2**20)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"},
    )
    return float(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", type=Path, default=REPO / "models" / "demo")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "dtype.json")
    args = parser.parse_args(argv)

    report: dict = {
        "machine": cpu_report(),
        "command": " ".join(["python -m bench.dtype", *sys.argv[1:]]),
    }
    print(json.dumps(report["machine"]), file=sys.stderr)
    runtimes = {label: load(args.model_dir, d, q, args.threads) for label, d, q in KINDS}
    report["served"] = {label: rt.dtype for label, rt in runtimes.items()}
    texts = make_texts(args.model_dir)
    batches = {n: prepared(args.model_dir, n, texts) for n in (1, args.batch)}
    rounds: list[dict] = []
    rng = random.Random(0)
    for _ in range(args.rounds):
        order = list(runtimes)
        rng.shuffle(order)
        cell = {}
        for label in order:
            rt = runtimes[label]
            cell[label] = {
                "batch": measure(rt, batches[args.batch], args.seconds),
                "one": measure(rt, batches[1], args.seconds / 2),
            }
        rounds.append(cell)
    summary = {}
    for label in runtimes:
        summary[label] = {
            f"rows_per_s_at_{args.batch}": statistics.median(
                r[label]["batch"]["rows_per_s"] for r in rounds
            ),
            f"cpu_ms_per_row_at_{args.batch}": statistics.median(
                r[label]["batch"]["cpu_ms_per_row"] for r in rounds
            ),
            "batch1_ms_p50": statistics.median(r[label]["one"]["forward_ms_p50"] for r in rounds),
        }
        if label != "float32":
            summary[label]["throughput_vs_float32"] = statistics.median(
                r[label]["batch"]["rows_per_s"] / r["float32"]["batch"]["rows_per_s"]
                for r in rounds
            )
    report["forwards"] = summary
    answers = {label: decisions(rt, args.model_dir) for label, rt in runtimes.items()}
    report["answers_vs_float32"] = {
        label: agreement(answers["float32"], answers[label])
        for label in runtimes
        if label != "float32"
    }
    del runtimes
    report["resident_mb"] = {
        label: resident_mb(args.model_dir, d, q, args.threads) for label, d, q in KINDS
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
