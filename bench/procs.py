"""The benchmark's servers: the kit's predictor and transformer started as the tests start them
(`tests.support.servers`), and the CPU time and resident memory of each one's processes.

A server's processes are its own and all its descendants (PyTriton's `tritonserver` too).
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import psutil

from tests.support.servers import Server, model_ready_path, predictor, transformer

# The benchmark measures servers that start slower than the tests' tiny models (PyTriton, a
# traced model): a longer wait than the tests' default, and a longer stop.
READY_TIMEOUT_S = 180
STOP_TIMEOUT_S = 20


def processes(server: Server) -> list[psutil.Process]:
    """The server's process and all its descendants that are alive now."""
    if server.process is None or server.process.poll() is not None:
        return []
    try:
        root = psutil.Process(server.process.pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_seconds(server: Server) -> float:
    """User + system CPU time of the server's processes so far."""
    total = 0.0
    for proc in processes(server):
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def rss_bytes(server: Server) -> int:
    """Resident memory of the server's processes now (summed)."""
    total = 0
    for proc in processes(server):
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total


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
                    self.peak[server.name] = max(self.peak[server.name], rss_bytes(server))


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
    `transformer_flags`) that reaches it over the gRPC hop, on free loopback ports, each ready
    once its model answers; `suffix` tells apart several pairs in one run, `cwd` runs another
    checkout's code."""
    named = ["--model_name", model_name]
    p = predictor(
        model_dir, logs, [*named, *predictor_flags], name=f"predictor{suffix}", dtype=None
    )
    t = transformer(
        model_dir, logs, p, "grpc-v2", [*named, *transformer_flags], name=f"transformer{suffix}"
    )
    for server in (p, t):
        server.ready_path = model_ready_path(model_name)
        if cwd is not None:
            server.cwd = cwd
    return p, t
