"""The offline batch command against the physical limit: rows per second of `offline.batch`
scoring a file versus the raw batched forward of the same model, threads and texts; and the
same rows as Parquet (input and output) beside JSONL, and as 2 shards of 1 thread each (two
processes side by side, as an Indexed Job's pods) beside 1 process of 2 threads.

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


def batch_command(
    model_dir: Path, threads: int, batch: int, input_path: Path, output: str, compile_mode: str
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "offline.batch",
        "--model_dir",
        str(model_dir),
        "--torch_threads",
        str(threads),
        "--max_batch_size",
        str(batch),
        "--input",
        str(input_path),
        "--output",
        output,
        "--progress",
        "off",
        "--compile",
        compile_mode,
    ]


def summary_rate(stderr: str) -> float:
    found = SUMMARY.search(stderr)
    if not found:
        raise RuntimeError(f"no summary line in the batch command's output:\n{stderr[-2000:]}")
    return float(found.group(1))


def batch_rows_per_s(
    model_dir: Path, threads: int, batch: int, input_path: Path, compile_mode: str = "trace"
) -> float:
    suffix = input_path.suffix
    with tempfile.TemporaryDirectory() as tmp:
        cmd = batch_command(
            model_dir, threads, batch, input_path, f"{tmp}/out{suffix}", compile_mode
        )
        out = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            check=True,
            timeout=1800,
        )
    return summary_rate(out.stderr)


def sharded_rows_per_s(
    model_dir: Path, shards: int, threads: int, batch: int, input_path: Path, compile_mode: str
) -> float:
    """`shards` processes of `--shard K/N` started together: the sum of their rates, each
    over its own scoring (model loading excluded, as for one process)."""
    with tempfile.TemporaryDirectory() as tmp:
        processes = [
            subprocess.Popen(
                [
                    *batch_command(
                        model_dir, threads, batch, input_path, f"{tmp}/out.parquet", compile_mode
                    ),
                    "--shard",
                    f"{k}/{shards}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for k in range(shards)
        ]
        rates = []
        for process in processes:
            _, err = process.communicate(timeout=1800)
            if process.returncode != 0:
                raise RuntimeError(f"a shard failed:\n{err[-2000:]}")
            rates.append(summary_rate(err))
    return sum(rates)


def write_parquet(path: Path, texts: list[str], rows: int, row_groups: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {"id": [str(i) for i in range(rows)], "text": [texts[i % len(texts)] for i in range(rows)]}
    )
    pq.write_table(table, path, row_group_size=max(1, rows // row_groups))


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
    raw, offline, parquet, sharded = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        input_path = Path(tmp) / "texts.jsonl"
        input_path.write_text(
            "".join(
                json.dumps({"id": str(i), "text": texts[i % len(texts)]}) + "\n"
                for i in range(args.rows)
            )
        )
        parquet_path = Path(tmp) / "texts.parquet"
        write_parquet(parquet_path, texts, args.rows, row_groups=8)
        for round_no in range(args.rounds):
            seconds = max(3.0, args.rows / 400)  # about as long as the batch run
            raw.append(
                raw_rows_per_s(args.model_dir, args.threads, args.batch, seconds, args.compile)
            )
            offline.append(
                batch_rows_per_s(args.model_dir, args.threads, args.batch, input_path, args.compile)
            )
            parquet.append(
                batch_rows_per_s(
                    args.model_dir, args.threads, args.batch, parquet_path, args.compile
                )
            )
            sharded.append(
                sharded_rows_per_s(
                    args.model_dir, args.threads, 1, args.batch, parquet_path, args.compile
                )
            )
            print(
                f"round {round_no + 1}: raw {raw[-1]:.1f} rows/s, batch command JSONL "
                f"{offline[-1]:.1f}, Parquet {parquet[-1]:.1f} rows/s ({args.threads} threads), "
                f"{args.threads} shards of 1 thread {sharded[-1]:.1f} rows/s",
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
    result.update(
        parquet_rows_per_s=parquet,
        parquet_median=statistics.median(parquet),
        parquet_vs_jsonl=statistics.median(parquet) / statistics.median(offline),
        shards=args.threads,
        sharded_rows_per_s=sharded,
        sharded_median=statistics.median(sharded),
        sharded_vs_one_process=statistics.median(sharded) / statistics.median(parquet),
    )
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
    print(
        f"Parquet in and out {result['parquet_median']:.1f} rows/s vs JSONL "
        f"{result['batch_median']:.1f} rows/s: {result['parquet_vs_jsonl']:.3f} (target >= 0.95); "
        f"{args.threads} shards of 1 thread {result['sharded_median']:.1f} rows/s vs 1 process "
        f"of {args.threads} threads {result['parquet_median']:.1f} rows/s: "
        f"{result['sharded_vs_one_process']:.2f}"
    )


if __name__ == "__main__":
    main()
