"""`python -m bench [--quick]`: every target on the same model, threads and inputs, in one run.

Targets:
  raw        the predictor's torch forward called directly on ready batches (the limit), float32,
             bfloat16 and int8 (float16 and float32 on CUDA); batch 1 (for latency), 16 and 32
             (for throughput); served servers are compared with the raw forward of the type the
             predictor serves (--dtype auto resolves it at start)
  predictor  the predictor alone: V2 gRPC, token tensors in, logits out
  chain      transformer + predictor: V2 gRPC (and REST), texts in, decisions out
  pytriton   PyTriton + Triton's dynamic batcher, texts in (its own venv: .venv-pytriton)
  unbatched  a plain KServe model as KServe's Hugging Face server serves encoders, texts in

Each round runs every (target, concurrency) cell once, in a shuffled order; the report gives each
cell's median over the rounds, and each ratio's median over the rounds of the ratio measured
within the round (side by side). Results: bench/results/ (JSON, markdown, PNG).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench import loadgen, report
from bench.inputs import make_texts, tokenize
from bench.procs import (
    READY_TIMEOUT_S,
    STOP_TIMEOUT_S,
    RssSampler,
    chain_servers,
    cpu_seconds,
    processes,
)
from predictor.config import COMPILE_MODES, DTYPES
from tests.support.servers import Server, free_port, model_ready_path

REPO = Path(__file__).resolve().parents[1]
MODEL_NAME = "text-classifier"
PYTRITON_VENV = REPO / ".venv-pytriton"


@dataclass
class Settings:
    model_dir: Path
    out_dir: Path
    threads: int
    rounds: int
    seconds: float
    warmup_s: float
    concurrency: list[int]
    rest_concurrency: list[int]
    raw_batches: list[int]
    max_batch_size: int
    max_batch_delay_ms: float
    forward_workers: int
    compile: str
    dtype: str
    device: str
    pytriton: bool
    pytriton_delay_us: int
    seed: int
    mode: str
    targets: list[str] = field(default_factory=list)


@dataclass
class Target:
    """A served target: how to call it, and the servers whose CPU and memory it costs."""

    name: str
    protocol: str
    servers: list[Server]
    client: object = None
    extra: dict = field(default_factory=dict)


def parse_args(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short cells, 2 rounds (~2 min)")
    parser.add_argument("--model_dir", type=Path, default=REPO / "models" / "demo")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--threads", type=int, default=0, help="0: the CPUs this process may use")
    parser.add_argument("--rounds", type=int, help="default: 2 quick, 5 full")
    parser.add_argument("--seconds", type=float, help="per cell; default: 1.5 quick, 4 full")
    parser.add_argument("--concurrency", default="1,4,16,32")
    parser.add_argument("--rest_concurrency", help="REST cells; default: none quick, 1,16 full")
    parser.add_argument("--max_batch_size", type=int, default=32)
    parser.add_argument("--max_batch_delay_ms", type=float, default=2.0)
    parser.add_argument(
        "--forward_workers",
        type=int,
        default=0,
        help="the predictor's --forward_workers (0: its default)",
    )
    parser.add_argument(
        "--compile",
        choices=COMPILE_MODES,
        default="trace",
        help="the predictor's (and the raw forward's) --compile",
    )
    parser.add_argument(
        "--dtype",
        choices=DTYPES,
        default="auto",
        help="the predictor's --dtype (auto: bfloat16 on a CPU with native bf16, float16 on CUDA)",
    )
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="where the predictor and the raw forwards run (cuda: make bench-gpu)",
    )
    parser.add_argument("--raw_batches", default="1,16,32", help="the raw forward's batch sizes")
    parser.add_argument("--no_pytriton", action="store_true", help="skip the PyTriton peer")
    parser.add_argument(
        "--pytriton_delay_us",
        type=int,
        default=0,
        help="Triton's max_queue_delay_microseconds (PyTriton's default: 0)",
    )
    parser.add_argument(
        "--targets",
        default="predictor,chain,pytriton,unbatched,raw",
        help="a subset of the targets, comma-separated (the report's ratios need them all)",
    )
    parser.add_argument("--seed", type=int, default=20261124)
    args = parser.parse_args(argv)
    quick = args.quick
    rest_default = "" if quick else "1,16"
    return Settings(
        model_dir=args.model_dir.resolve(),
        out_dir=args.out,
        threads=args.threads or len(os.sched_getaffinity(0)),
        rounds=args.rounds or (2 if quick else 5),
        seconds=args.seconds or (1.5 if quick else 4.0),
        warmup_s=0.5 if quick else 1.0,
        concurrency=[int(c) for c in args.concurrency.split(",")],
        rest_concurrency=[
            int(c) for c in (args.rest_concurrency or rest_default).split(",") if c.strip()
        ],
        raw_batches=[int(b) for b in args.raw_batches.split(",")],
        max_batch_size=args.max_batch_size,
        max_batch_delay_ms=args.max_batch_delay_ms,
        forward_workers=args.forward_workers,
        compile=args.compile,
        dtype=args.dtype,
        device=args.device,
        pytriton=not args.no_pytriton and "pytriton" in args.targets.split(","),
        pytriton_delay_us=args.pytriton_delay_us,
        seed=args.seed,
        mode="quick" if quick else "full",
        targets=args.targets.split(","),
    )


# ------------------------------------------------------------------------------ servers


def make_servers(s: Settings, logs: Path) -> dict[str, Server]:
    env = {"OMP_WAIT_POLICY": "PASSIVE"}
    servers: dict[str, Server] = {}
    servers["predictor"], servers["transformer"] = chain_servers(
        s.model_dir,
        logs,
        ["--torch_threads", str(s.threads), "--max_batch_size", str(s.max_batch_size)]
        + ["--max_batch_delay_ms", str(s.max_batch_delay_ms)]
        + ["--forward_workers", str(s.forward_workers), "--compile", s.compile]
        + ["--dtype", s.dtype, "--device", s.device],
        model_name=MODEL_NAME,
        cwd=REPO,
    )
    u_http, u_grpc = free_port(), free_port()
    unbatched = Server(
        "unbatched",
        [
            "bench.peers.kserve_unbatched",
            "--model_dir",
            str(s.model_dir),
            "--threads",
            str(s.threads),
            "--model_name",
            MODEL_NAME,
            "--http_port",
            str(u_http),
            "--grpc_port",
            str(u_grpc),
            "--enable_latency_logging",
            "false",
        ],
        u_http,
        u_grpc,
        logs / "unbatched.log",
        env=env,
        ready_path=model_ready_path(MODEL_NAME),
        cwd=REPO,
    )
    if "unbatched" in s.targets:
        servers["unbatched"] = unbatched
    if s.pytriton:
        tpy = PYTRITON_VENV / "bin" / "python"
        if not tpy.exists():
            sys.exit(
                f"bench: {tpy} is missing. Make it with `make bench-pytriton-venv`, "
                "or skip the PyTriton peer with --no_pytriton"
            )
        libdir = subprocess.run(
            [str(tpy), "-c", "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        ld_path = ":".join(p for p in (libdir, os.environ.get("LD_LIBRARY_PATH", "")) if p)
        x_http, x_grpc, x_metrics = free_port(), free_port(), free_port()
        servers["pytriton"] = Server(
            "pytriton",
            [
                str(REPO / "bench" / "peers" / "pytriton_server.py"),
                "--model_dir",
                str(s.model_dir),
                "--model_name",
                MODEL_NAME,
                "--http_port",
                str(x_http),
                "--grpc_port",
                str(x_grpc),
                "--metrics_port",
                str(x_metrics),
                "--threads",
                str(s.threads),
                "--max_batch_size",
                str(s.max_batch_size),
                "--max_queue_delay_us",
                str(s.pytriton_delay_us),
            ],
            x_http,
            x_grpc,
            logs / "pytriton.log",
            env={**env, "LD_LIBRARY_PATH": ld_path},
            ready_path=model_ready_path(MODEL_NAME),
            cwd=REPO,
            launcher=(str(tpy),),
        )
    return servers


# The raw forwards' kinds: label -> (--dtype, --quantize).
RAW_KINDS = {
    "fp32": ("float32", "none"),
    "bf16": ("bfloat16", "none"),
    "fp16": ("float16", "none"),
    "int8": ("float32", "int8"),
}
LABELS = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


def raw_kinds(device: str) -> list[str]:
    return ["fp16", "fp32"] if device == "cuda" else ["fp32", "bf16", "int8"]


def served_dtype(predictor: Server) -> str:
    """The type the predictor serves, from its start-up line ("serving DIR on DEVICE: TYPE,")."""
    import re

    found = re.findall(r"serving \S+ on \S+: (\w+)", predictor.log_path.read_text(errors="replace"))
    return found[-1] if found else "unknown"


class RawWorker:
    """`python -m bench.raw --serve`: a loaded model answering timing commands."""

    def __init__(self, s: Settings, label: str, logs: Path):
        self.label = label
        dtype, quantize = RAW_KINDS[label]
        log = open(logs / f"raw-{self.label}.log", "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.raw",
                "--model_dir",
                str(s.model_dir),
                "--threads",
                str(s.threads),
                "--quantize",
                quantize,
                "--dtype",
                dtype,
                "--device",
                s.device,
                "--compile",
                s.compile,
                "--serve",
            ],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"},
        )
        log.close()

    def ready(self) -> dict:
        return self._read()

    def ask(self, **command) -> dict:
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self._read()

    def _read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"raw worker ({self.label}) exited: see its log")
        return json.loads(line)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


# ------------------------------------------------------------------------------ the run


def build_targets(s: Settings, servers: dict[str, Server], texts: list[str]) -> list[Target]:
    ids, mask = tokenize(s.model_dir, texts)
    token_requests = []
    token_bodies = []
    for row in range(len(texts)):
        n = int(mask[row].sum())  # one text alone, unpadded, as the transformer would send it
        token_requests.append(loadgen.grpc_token_request(MODEL_NAME, ids[row, :n], mask[row, :n]))
        token_bodies.append(loadgen.rest_token_body(ids[row, :n], mask[row, :n]))
    text_requests = [loadgen.grpc_text_request(MODEL_NAME, t) for t in texts]
    triton_requests = [loadgen.grpc_text_request(MODEL_NAME, t, rank=2) for t in texts]
    text_bodies = [loadgen.rest_text_body(t) for t in texts]
    triton_bodies = [loadgen.rest_text_body(t, rank=2) for t in texts]

    targets = []
    p, t = servers["predictor"], servers["transformer"]
    if "predictor" in s.targets:
        targets.append(
            Target("predictor", "grpc", [p], loadgen.GrpcTarget(p.grpc_target, token_requests))
        )
    if "chain" in s.targets:
        targets.append(
            Target("chain", "grpc", [t, p], loadgen.GrpcTarget(t.grpc_target, text_requests))
        )
    peers = []
    if "pytriton" in servers:
        peers.append(("pytriton", triton_requests, triton_bodies))
    if "unbatched" in servers:
        peers.append(("unbatched", text_requests, text_bodies))
    for name, requests, _ in peers:
        server = servers[name]
        targets.append(
            Target(name, "grpc", [server], loadgen.GrpcTarget(server.grpc_target, requests))
        )
    if s.rest_concurrency and "chain" in s.targets:
        targets.append(
            Target("chain", "rest", [t, p], loadgen.RestTarget(t.url, MODEL_NAME, text_bodies))
        )
        for name, _, bodies in peers:
            server = servers[name]
            targets.append(
                Target(name, "rest", [server], loadgen.RestTarget(server.url, MODEL_NAME, bodies))
            )
    return targets


async def batch_counters(server: Server) -> tuple[float, float]:
    """(forwards, rows) so far, from the predictor's batch-size histogram on /metrics."""
    count = total = 0.0
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{server.url}/metrics") as response:
            text = await response.text()
    for line in text.splitlines():
        if line.startswith("kserve_kit_predictor_batch_rows_count"):
            count = float(line.split()[-1])
        elif line.startswith("kserve_kit_predictor_batch_rows_sum"):
            total = float(line.split()[-1])
    return count, total


async def run_cell(s: Settings, target: Target, concurrency: int, sampler: RssSampler) -> dict:
    await loadgen.closed_loop(target.client.call, concurrency, s.warmup_s, record=False)
    names = {server.name for server in target.servers}
    predictor = next((server for server in target.servers if server.name == "predictor"), None)
    batches0 = await batch_counters(predictor) if predictor else None
    sampler.active = names
    cpu0 = {server.name: cpu_seconds(server) for server in target.servers}
    client_cpu0 = time.process_time()
    result = await loadgen.closed_loop(target.client.call, concurrency, s.seconds)
    client_cpu = time.process_time() - client_cpu0
    cpu = {server.name: cpu_seconds(server) - cpu0[server.name] for server in target.servers}
    sampler.active = set()
    n = max(result.requests, 1)
    rows_per_forward = None
    if predictor:
        forwards, rows = await batch_counters(predictor)
        if forwards > batches0[0]:
            rows_per_forward = (rows - batches0[1]) / (forwards - batches0[0])
    return {
        "rows_per_forward": rows_per_forward,
        "target": target.name,
        "protocol": target.protocol,
        "concurrency": concurrency,
        "requests": result.requests,
        "errors": result.errors,
        "first_error": result.first_error,
        "seconds": result.seconds,
        "throughput": result.throughput,
        "p50_ms": result.percentile_ms(50),
        "p95_ms": result.percentile_ms(95),
        "p99_ms": result.percentile_ms(99),
        "server_cpu_ms_per_request": {k: 1000 * v / n for k, v in cpu.items()},
        "client_cpu_ms_per_request": 1000 * client_cpu / n,
    }


def raw_cell(s: Settings, worker: RawWorker, batch: int, parallel: int = 1) -> dict:
    answer = worker.ask(cmd="forward", batch=batch, seconds=max(s.seconds, 1.5), parallel=parallel)
    label = worker.label if parallel == 1 else f"{worker.label}x{parallel}"
    return {"target": f"raw-{label}", "batch": batch, **answer}


async def run(s: Settings) -> dict:
    started = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    logs = s.out_dir / f"logs-{stamp}"
    logs.mkdir(parents=True, exist_ok=True)
    texts = make_texts(s.model_dir)
    servers = make_servers(s, logs)
    workers: dict[str, RawWorker] = {}
    print(
        f"bench ({s.mode}): starting {', '.join(servers)} and the raw workers; logs in {logs}",
        flush=True,
    )
    try:
        for name in ("predictor", "unbatched", "pytriton"):
            if name in servers:
                servers[name].start()
        if "raw" in s.targets:
            workers = {k: RawWorker(s, k, logs) for k in raw_kinds(s.device)}
        servers["predictor"].wait_ready(READY_TIMEOUT_S)
        servers["transformer"].start()
        for server in servers.values():
            server.wait_ready(READY_TIMEOUT_S)
        served = served_dtype(servers["predictor"])
        raw_info = {w.label: w.ready() for w in workers.values()}
        accuracy = {w.label: w.ask(cmd="accuracy") for w in workers.values()}
        print(f"ready after {time.time() - started:.0f} s", flush=True)

        targets = build_targets(s, servers, texts)
        for target in targets:
            await target.client.open()
        cells: list[tuple] = []
        for target in targets:
            levels = s.concurrency if target.protocol == "grpc" else s.rest_concurrency
            cells += [("served", target, c) for c in levels]
        cells += [("raw", workers[k], (b, 1)) for k in workers for b in s.raw_batches]
        reference = LABELS.get(served, "fp32")
        if reference in workers and s.threads >= 2 and s.device == "cpu":
            # two 1-thread forwards at once: the predictor's own layout under load (2 workers)
            cells.append(("raw", workers[reference], (16, 2)))

        rng = random.Random(s.seed)
        rounds: list[list[dict]] = []
        with RssSampler(list(servers.values()), interval_s=0.2) as sampler:
            for r in range(s.rounds):
                order = cells[:]
                rng.shuffle(order)
                results = []
                for kind, what, level in order:
                    if kind == "raw":
                        results.append(raw_cell(s, what, *level))
                    else:
                        results.append(await run_cell(s, what, level, sampler))
                rounds.append(results)
                print(f"round {r + 1}/{s.rounds} done at {time.time() - started:.0f} s", flush=True)
        for target in targets:
            await target.client.close()
        rss_peak = dict(sampler.peak)
        hwm = {name: server_hwm(server) for name, server in servers.items()}
    finally:
        for worker in workers.values():
            worker.stop()
        for server in reversed(list(servers.values())):
            server.stop(STOP_TIMEOUT_S)

    return {
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(s).items()},
        "machine": machine_info(),
        "model_bytes": model_bytes(s.model_dir),
        "raw_workers": raw_info,
        "served_dtype": served,
        "raw_reference": LABELS.get(served, "fp32"),
        "accuracy": accuracy,
        "rounds": rounds,
        "rss_peak_bytes": rss_peak,
        "rss_hwm_bytes": hwm,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "wall_s": time.time() - started,
    }


def server_hwm(server: Server) -> int:
    """The kernel's high-water mark of resident memory (VmHWM), summed over the server's
    processes: the peak over the whole life, start-up included."""
    total = 0
    for proc in processes(server):
        try:
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def model_bytes(model_dir: Path) -> int:
    return sum(f.stat().st_size for f in model_dir.glob("*.safetensors"))


def machine_info() -> dict:
    import numpy
    import torch

    from bench.dtype import cpu_report

    precision = cpu_report()
    return {
        "cpu": precision["cpu"],
        "precision": precision,
        "cpus_usable": len(os.sched_getaffinity(0)),
        "load_average_at_end": os.getloadavg(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
    }


def main(argv: list[str] | None = None) -> None:
    settings = parse_args(argv)
    data = asyncio.run(run(settings))
    summary = report.summarize(data)
    paths = report.write(data, summary, settings.out_dir)
    print()
    print(report.markdown(data, summary))
    print("\nwritten: " + ", ".join(str(p) for p in paths))


if __name__ == "__main__":
    main()
