"""Predictor settings side by side: `python -m bench.ab "A flags" "B flags" [...]`.

    python -m bench.ab "--forward_workers 1" "--forward_workers 2" --concurrency 1,16,32
    python -m bench.ab "--compile none" "--compile trace" --rounds 5 --seconds 3
    python -m bench.ab "" "OTEL_TRACES_EXPORTER=otlp" --targets chain   # tracing off / on
    python -m bench.ab "| --predictor_load_balancing pick_first --predictor_retry_attempts 1" \
        "" --targets chain      # the transformer's flags after a `|`

Targets: `predictor` (token tensors over gRPC), `chain` (texts over gRPC), `chain-rest` (texts
over REST); the table gives each cell's CPU per request of both servers and, for a chain, of
the transformer alone.

Starts one predictor per set of flags (each with its own transformer, gRPC hop), all loaded at
once and idle when not measured, then runs every (setting, target, concurrency) cell once per
round in a shuffled order, as `python -m bench` does. Each cell's median over the rounds is
printed, with its throughput relative to the first setting as the median over the rounds of
the ratio within each round: on a shared, noisy machine that ratio is the number to read.
Traffic goes to 127.0.0.1 only; every cell is bounded in time.

A setting may start with NAME=VALUE words: environment variables for both servers of its pair
(`OTEL_TRACES_EXPORTER=otlp` turns tracing on), and with `tree=DIR`: that pair runs the kit's
code from another checkout (`git archive main | tar -x -C DIR`), to compare code, not flags.
A setting that exports OTLP with no endpoint of its own exports to a sink run here, which counts
what it receives without decoding it.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import shlex
import statistics
import sys
from pathlib import Path

from bench import loadgen
from bench.inputs import make_texts, tokenize
from bench.procs import READY_TIMEOUT_S, STOP_TIMEOUT_S, chain_servers, cpu_seconds
from tests.support import otlp

REPO = Path(__file__).resolve().parents[1]
MODEL_NAME = "text-classifier"


ENV_WORD = re.compile(r"^[A-Z_][A-Z0-9_]*=")


def split_setting(setting: str) -> tuple[dict[str, str], Path, list[str], list[str]]:
    """("tree=/b A=1 --flag x | --t y") -> ({"A": "1"}, Path("/b"), ["--flag", "x"], ["--t", "y"]):
    environment, source tree, predictor flags, and the transformer's flags after a `|`."""
    predictor_part, _, transformer_part = setting.partition("|")
    words = shlex.split(predictor_part)
    env, tree = {}, REPO
    while words and (ENV_WORD.match(words[0]) or words[0].startswith("tree=")):
        name, _, value = words.pop(0).partition("=")
        if name == "tree":
            tree = Path(value).resolve()
        else:
            env[name] = value
    return env, tree, words, shlex.split(transformer_part)


async def run(args: argparse.Namespace, sink: otlp.Collector) -> dict:
    settings = [split_setting(s) for s in args.settings]
    logs = args.out / "ab-logs"
    logs.mkdir(parents=True, exist_ok=True)
    texts = make_texts(args.model_dir)
    ids, mask = tokenize(args.model_dir, texts)
    lengths = [int(m.sum()) for m in mask]
    token_requests = [
        loadgen.grpc_token_request(MODEL_NAME, ids[i, :n], mask[i, :n])
        for i, n in enumerate(lengths)
    ]
    text_requests = [loadgen.grpc_text_request(MODEL_NAME, t) for t in texts]
    text_bodies = [loadgen.rest_text_body(t) for t in texts]
    pairs = [
        chain_servers(args.model_dir, logs, flags, f"-{i}", MODEL_NAME, tree, t_flags)
        for i, (_, tree, flags, t_flags) in enumerate(settings)
    ]
    for (env, *_), servers in zip(settings, pairs, strict=True):
        if "otlp" in env.get("OTEL_TRACES_EXPORTER", "") and not any(
            k.startswith("OTEL_EXPORTER_OTLP_") and k.endswith("ENDPOINT") for k in env
        ):
            env = {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink.port}"}
        for server in servers:
            server.env.update(env)
    clients = []
    try:
        for predictor, transformer in pairs:
            predictor.start().wait_ready(READY_TIMEOUT_S)
            transformer.start().wait_ready(READY_TIMEOUT_S)
        cells = []
        for i, (predictor, transformer) in enumerate(pairs):
            for target in args.targets:
                if target == "predictor":
                    client, measured = (
                        loadgen.GrpcTarget(predictor.grpc_target, token_requests),
                        [predictor],
                    )
                elif target == "chain-rest":
                    client = loadgen.RestTarget(transformer.http_url, MODEL_NAME, text_bodies)
                    measured = [transformer, predictor]
                else:
                    client = loadgen.GrpcTarget(transformer.grpc_target, text_requests)
                    measured = [transformer, predictor]
                await client.open()
                clients.append(client)
                cells += [(i, target, c, client, measured) for c in args.concurrency]
        results: dict[tuple, list[dict]] = {}
        rng = random.Random(args.seed)
        for r in range(args.rounds):
            order = cells[:]
            rng.shuffle(order)
            for i, target, c, client, measured in order:
                await loadgen.closed_loop(client.call, c, args.warmup_s, record=False)
                cpu0 = [cpu_seconds(s) for s in measured]
                out = await loadgen.closed_loop(client.call, c, args.seconds)
                cpus = [cpu_seconds(s) - c0 for s, c0 in zip(measured, cpu0, strict=True)]
                cpu = sum(cpus)
                results.setdefault((target, c, i), []).append(
                    {
                        "throughput": out.throughput,
                        "p50_ms": out.percentile_ms(50),
                        "p99_ms": out.percentile_ms(99),
                        "cpu_ms_per_request": 1000 * cpu / max(out.requests, 1),
                        # the first server measured: the transformer of a chain target
                        "front_cpu_ms_per_request": 1000 * cpus[0] / max(out.requests, 1),
                        "errors": out.errors,
                    }
                )
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    finally:
        for client in clients:
            await client.close()
        for predictor, transformer in pairs:
            transformer.stop(STOP_TIMEOUT_S)
            predictor.stop(STOP_TIMEOUT_S)
    return results


def table(args: argparse.Namespace, results: dict) -> str:
    lines = [
        "| target | conc. | setting | req/s | x first | p50 ms | p99 ms | CPU ms/req "
        "| T CPU ms/req | errors |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for target in args.targets:
        for c in args.concurrency:
            first = results[(target, c, 0)]
            for i, setting in enumerate(args.settings):
                runs = results[(target, c, i)]
                ratio = statistics.median(
                    a["throughput"] / b["throughput"] for a, b in zip(runs, first, strict=True)
                )
                med = {k: statistics.median(run[k] for run in runs) for k in runs[0]}
                lines.append(
                    f"| {target} | {c} | `{setting or '(defaults)'}` | {med['throughput']:.1f} | "
                    f"{ratio:.2f} | {med['p50_ms']:.1f} | {med['p99_ms']:.1f} | "
                    f"{med['cpu_ms_per_request']:.2f} | "
                    f"{med['front_cpu_ms_per_request'] if target != 'predictor' else 0:.2f} | "
                    f"{sum(r['errors'] for r in runs)} |"
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__.split("\n")[0])
    parser.add_argument(
        "settings",
        nargs="+",
        help="predictor flags, one quoted string each; transformer flags after a |",
    )
    parser.add_argument("--model_dir", type=Path, default=REPO / "models" / "demo")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--concurrency", default="1,16,32")
    parser.add_argument("--targets", default="predictor,chain")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--warmup_s", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=20261201)
    args = parser.parse_args(argv)
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    args.targets = [t for t in args.targets.split(",") if t]
    unknown = set(args.targets) - {"predictor", "chain", "chain-rest"}
    if unknown:
        parser.error(f"--targets takes predictor, chain and chain-rest, got {sorted(unknown)}")
    args.model_dir = args.model_dir.resolve()
    with otlp.collector(decode=False) as sink:
        results = asyncio.run(run(args, sink))
    print(table(args, results))
    if sink.exports:
        print(f"\nOTLP sink: {sink.exports} exports, {sink.bytes_received / 1e6:.1f} MB received")


if __name__ == "__main__":
    main()
