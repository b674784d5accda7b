"""The offline batch command against the physical limit: rows per second of `predictor.batch`
scoring a file versus the raw batched forward of the same model, threads and texts.

    python -m bench.batch_pipeline --model_dir models/demo --rows 2048 --rounds 3
    make bench-batch

Each measurement runs in its own process, raw and batch alternating, `--rounds` times; the
medians and their ratio are printed (and written as JSON to bench/results/batch-pipeline.json).
The batch command's own rows/s (its summary line) covers reading, tokenizing, the forwards,
the threshold and writing, model loading excluded; the raw figure is forwards alone over texts
tokenized beforehand, in batches as large as the batch command's (--max_batch_size).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.inputs import make_texts
from predictor.config import COMPILE_MODES

RESULTS = Path(__file__).resolve().parent / "results"
SUMMARY = re.compile(r"in this run, ([0-9.]+) rows/s")


def raw_rows_per_s(
    model_dir: Path, threads: int, batch: int, seconds: float, compile_mode: str = "trace"
) -> float:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.raw",
            "--model_dir",
            str(model_dir),
            "--threads",
            str(threads),
            "--batches",
            str(batch),
            "--seconds",
            str(seconds),
            "--compile",
            compile_mode,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return json.loads(out.stdout)["batches"][str(batch)]["rows_per_s"]


def batch_rows_per_s(
    model_dir: Path, threads: int, batch: int, input_path: Path, compile_mode: str = "trace"
) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "predictor.batch",
                "--model_dir",
                str(model_dir),
                "--torch_threads",
                str(threads),
                "--max_batch_size",
                str(batch),
                "--input",
                str(input_path),
                "--output",
                f"{tmp}/out.jsonl",
                "--progress",
                "off",
                "--compile",
                compile_mode,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=1800,
        )
    found = SUMMARY.search(out.stderr)
    if not found:
        raise RuntimeError(f"no summary line in the batch command's output:\n{out.stderr[-2000:]}")
    return float(found.group(1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", type=Path, default=Path("models/demo"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64, help="rows per forward, both sides")
    parser.add_argument("--rows", type=int, default=2048, help="rows in the scored file")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--compile", choices=COMPILE_MODES, default="trace", help="both sides' --compile"
    )
    args = parser.parse_args(argv)

    texts = make_texts(args.model_dir, count=256)
    raw, offline = [], []
    with tempfile.TemporaryDirectory() as tmp:
        input_path = Path(tmp) / "texts.jsonl"
        input_path.write_text(
            "".join(
                json.dumps({"id": str(i), "text": texts[i % len(texts)]}) + "\n"
                for i in range(args.rows)
            )
        )
        for round_no in range(args.rounds):
            seconds = max(3.0, args.rows / 400)  # about as long as the batch run
            raw.append(
                raw_rows_per_s(args.model_dir, args.threads, args.batch, seconds, args.compile)
            )
            offline.append(
                batch_rows_per_s(args.model_dir, args.threads, args.batch, input_path, args.compile)
            )
            print(
                f"round {round_no + 1}: raw {raw[-1]:.1f} rows/s, batch command "
                f"{offline[-1]:.1f} rows/s",
                file=sys.stderr,
            )

    result = {
        "threads": args.threads,
        "compile": args.compile,
        "rows_per_forward": args.batch,
        "rows": args.rows,
        "rounds": args.rounds,
        "raw_rows_per_s": raw,
        "batch_rows_per_s": offline,
        "raw_median": statistics.median(raw),
        "batch_median": statistics.median(offline),
        "ratio_of_medians": statistics.median(offline) / statistics.median(raw),
        "ratio_per_round": [b / r for b, r in zip(offline, raw, strict=True)],
    }
    result["median_ratio_per_round"] = statistics.median(result["ratio_per_round"])
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "batch-pipeline.json").write_text(json.dumps(result, indent=2))
    print(
        f"batch command {result['batch_median']:.1f} rows/s vs raw batched forward "
        f"{result['raw_median']:.1f} rows/s (batch {args.batch}, {args.threads} threads, "
        f"{args.rows} rows of ~64 tokens, median of {args.rounds}): "
        f"{result['ratio_of_medians']:.2f} of the limit (target >= 0.95); per round "
        + ", ".join(f"{r:.2f}" for r in result["ratio_per_round"])
        + f" (median {result['median_ratio_per_round']:.2f}); --compile {args.compile}"
    )


if __name__ == "__main__":
    main()
