"""Server processes for the benchmark: start on free loopback ports, wait until ready, account
for their CPU time and resident memory, stop cleanly.

Each server runs in its own process group (so a stop reaches its children too, e.g. PyTriton's
`tritonserver`), with its output in a log file that is printed when it fails to start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """One server under test: a command, its ports, its log."""

    name: str
    command: list[str]
    http_port: int
    grpc_port: int
    log_path: Path
    model_name: str = "text-classifier"
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    process: subprocess.Popen | None = None

    @property
    def http_url(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"{LOOPBACK}:{self.grpc_port}"

    def start(self) -> Server:
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed right after the fork
        self.process = subprocess.Popen(
            self.command,
            cwd=self.cwd,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        return self

    def wait_ready(self, timeout_s: float = 180) -> Server:
        deadline = time.monotonic() + timeout_s
        delay = 0.1
        url = f"{self.http_url}/v2/models/{self.model_name}/ready"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.tail()}"
                )
            with contextlib.suppress(OSError, urllib.error.URLError):
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return self
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)
        raise TimeoutError(f"{self.name} not ready after {timeout_s:.0f} s:\n{self.tail()}")

    def processes(self) -> list[psutil.Process]:
        """The server's process and all its descendants that are alive now."""
        if self.process is None or self.process.poll() is not None:
            return []
        try:
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server's processes so far."""
        total = 0.0
        for proc in self.processes():
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    def rss_bytes(self) -> int:
        """Resident memory of the server's processes now (summed)."""
        total = 0
        for proc in self.processes():
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total

    def stop(self, timeout_s: float = 20) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


class RssSampler:
    """Samples the resident size of some servers every `interval_s` in a thread, keeping each
    one's peak while sampling is on (`active`), so start-up transients are not counted."""

    def __init__(self, servers: list[Server], interval_s: float = 0.05):
        self.servers = servers
        self.interval_s = interval_s
        self.peak: dict[str, int] = {s.name: 0 for s in servers}
        self.active: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            for server in self.servers:
                if server.name in self.active:
                    self.peak[server.name] = max(self.peak[server.name], server.rss_bytes())


def chain_servers(
    model_dir: Path,
    logs: Path,
    predictor_flags: list[str],
    suffix: str = "",
    model_name: str = "text-classifier",
    cwd: Path | None = None,
    transformer_flags: list[str] = (),
) -> tuple[Server, Server]:
    """The kit's predictor (with `predictor_flags`) and a transformer (with
    `transformer_flags`) that reaches it over the gRPC hop, on free loopback ports; `suffix`
    tells apart several pairs in one run."""
    import sys

    common = ["--model_dir", str(model_dir), "--model_name", model_name]
    quiet = ["--enable_latency_logging", "false"]
    p_http, p_grpc, t_http, t_grpc = (free_port() for _ in range(4))
    predictor = Server(
        f"predictor{suffix}",
        [sys.executable, "-m", "predictor", *common, "--http_port", str(p_http)]
        + ["--grpc_port", str(p_grpc), *quiet, *predictor_flags],
        p_http,
        p_grpc,
        logs / f"predictor{suffix}.log",
        model_name=model_name,
        env={"OMP_WAIT_POLICY": "PASSIVE"},
        cwd=cwd,
    )
    transformer = Server(
        f"transformer{suffix}",
        [sys.executable, "-m", "transformer", *common, "--http_port", str(t_http)]
        + ["--grpc_port", str(t_grpc), *quiet, "--predictor_protocol", "grpc-v2"]
        + ["--predictor_host", f"{LOOPBACK}:{p_grpc}", *transformer_flags],
        t_http,
        t_grpc,
        logs / f"transformer{suffix}.log",
        model_name=model_name,
        cwd=cwd,
    )
    return predictor, transformer
