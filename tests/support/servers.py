"""Start the kit's real servers as processes on free ports, and stop them cleanly: the one
copy for the tests and the benchmark (`bench/`).

Each server runs in its own process group (a stop reaches its children too, e.g. PyTriton's
`tritonserver`), its output goes to a log file that a failing test prints, and readiness is
polled on `/v2/health/ready` (or the server's `ready_path`) with backoff instead of a fixed
sleep.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def model_ready_path(model_name: str) -> str:
    """The V2 path that answers 200 once `model_name` serves: for a transformer, once its
    predictor answers too (its `/v2/health/ready` is its own)."""
    return f"/v2/models/{model_name}/ready"


@dataclass
class Server:
    """A running server process: its ports, its log, and how to stop or pause it."""

    name: str
    args: list[str]  # after `launcher`: a module and its flags
    http_port: int
    grpc_port: int
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None
    ready_path: str = "/v2/health/ready"  # answers 200 once the server serves
    cwd: Path = REPO  # another checkout runs that checkout's code (bench.ab's `tree=`)
    # A peer in another venv, or a script rather than a module: `(its python,)`.
    launcher: tuple[str, ...] = (sys.executable, "-m")

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"{LOOPBACK}:{self.grpc_port}"

    def start(self) -> Server:
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self.process = subprocess.Popen(
            [*self.launcher, *self.args],
            cwd=self.cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,  # a server in the background never reads the terminal
            start_new_session=True,  # its own process group: signals reach it and only it
        )
        log.close()
        return self

    def wait_ready(self, timeout_s: float = 120) -> Server:
        deadline = time.monotonic() + timeout_s
        delay = 0.05
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            with contextlib.suppress(OSError, urllib.error.URLError):
                with urllib.request.urlopen(f"{self.url}{self.ready_path}", timeout=2) as r:
                    if r.status == 200:
                        return self
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
        raise TimeoutError(f"{self.name} not ready after {timeout_s} s:\n{self.log_tail()}")

    def signal(self, sig: int) -> None:
        if self.process and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # it exited since the poll
                os.killpg(self.process.pid, sig)

    def stop(self, timeout_s: float = 15) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.process.wait(5)

    def restart(self) -> Server:
        self.stop()
        return self.start().wait_ready()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def predictor(
    model_dir: Path,
    log_dir: Path,
    extra: Sequence[str] = (),
    name: str = "predictor",
    dtype: str | None = "float32",
) -> Server:
    http, grpc_ = free_port(), free_port()
    args = [
        "predictor",
        "--model_dir",
        str(model_dir),
        "--http_port",
        str(http),
        "--grpc_port",
        str(grpc_),
        "--enable_latency_logging",
        "false",
        # float32 whatever the CPU: tests compare answers across batch shapes and servers at
        # 1e-5, which bfloat16 (--dtype auto on a CPU with native bf16) does not hold; the half
        # types' tests pass their own --dtype, which wins (argparse keeps the last). The
        # benchmark passes dtype=None: the server's default, as users run it.
        *(["--dtype", dtype] if dtype else []),
        *extra,
    ]
    return Server(
        name, args, http, grpc_, log_dir / f"{name}.log", env={"OMP_WAIT_POLICY": "PASSIVE"}
    )


def transformer(
    model_dir: Path,
    log_dir: Path,
    predictor_server: Server | Sequence[Server],
    protocol: str = "grpc-v2",
    extra: Sequence[str] = (),
    name: str = "transformer",
) -> Server:
    """A transformer in front of `predictor_server`, or of a list of them (a static
    `ipv4:` target: the hop balances over all)."""
    http, grpc_ = free_port(), free_port()
    if isinstance(predictor_server, Server):
        port = predictor_server.grpc_port if protocol == "grpc-v2" else predictor_server.http_port
        target = f"127.0.0.1:{port}"
    else:
        target = static_target(predictor_server, protocol)
    args = [
        "transformer",
        "--model_dir",
        str(model_dir),
        "--http_port",
        str(http),
        "--grpc_port",
        str(grpc_),
        "--predictor_host",
        target,
        "--predictor_protocol",
        protocol,
        "--enable_latency_logging",
        "false",
        *extra,
    ]
    return Server(name, args, http, grpc_, log_dir / f"{name}.log")


def static_target(predictors: Sequence[Server], protocol: str = "grpc-v2") -> str:
    """`ipv4:127.0.0.1:P1,127.0.0.1:P2,...`: every predictor's gRPC (or REST) port."""
    ports = [p.grpc_port if protocol == "grpc-v2" else p.http_port for p in predictors]
    return "ipv4:" + ",".join(f"127.0.0.1:{port}" for port in ports)


def s3_server(log_dir: Path, name: str = "s3", env: dict[str, str] | None = None) -> Server:
    """A real S3-compatible HTTP server: the server mode of the `moto` package (an in-memory
    S3 that speaks the S3 REST API, used by boto3's and s3fs's own tests), on 127.0.0.1 and a
    free port. `env` reaches the server: `INITIAL_NO_AUTH_ACTION_COUNT=0` makes it check
    credentials (an unknown access key gets 403). Ready when `GET /` (ListBuckets) answers."""
    port = free_port()
    args = ["moto.server", "-H", "127.0.0.1", "-p", str(port)]
    return Server(name, args, port, 0, log_dir / f"{name}.log", env=env or {}, ready_path="/")


@contextlib.contextmanager
def running(*servers: Server) -> Iterator[tuple[Server, ...]]:
    """Start the servers in order, each ready before the next starts; stop all on exit."""
    started = []
    try:
        for server in servers:
            started.append(server.start().wait_ready())
        yield servers
    finally:
        for server in reversed(started):
            server.stop()
