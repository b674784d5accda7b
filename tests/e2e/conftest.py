"""Fixtures of the e2e tier: a real cluster with KServe (make kind-up kserve-install kind-load
model-upload), reached only through the kube context named by E2E_KUBE_CONTEXT (default
kind-kserve-kit, the cluster `make kind-up` creates), so the tier never acts on another cluster.

Skipped, with the reason, when that context does not exist or its cluster does not answer.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.servers import free_port

REPO = Path(__file__).resolve().parents[2]
CONTEXT = os.environ.get("E2E_KUBE_CONTEXT", "kind-kserve-kit")
NAMESPACE = os.environ.get("E2E_NAMESPACE", "default")


def tool(name: str) -> str | None:
    """The tool make passes (KUBECTL=..., HELM=...), else ./bin, else PATH."""
    configured = os.environ.get(name.upper())
    if configured and Path(configured).is_file():
        return configured
    local = REPO / "bin" / name
    return str(local) if local.is_file() else shutil.which(name)


@dataclass(frozen=True)
class Cluster:
    kubectl_bin: str
    helm_bin: str | None
    context: str
    namespace: str

    def kubectl(self, *args: str, check: bool = True, timeout: float = 900):
        return subprocess.run(
            [self.kubectl_bin, "--context", self.context, "-n", self.namespace, *args],
            check=check,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def helm(self, *args: str, check: bool = True, timeout: float = 900):
        assert self.helm_bin, "helm is needed (make tools installs it into ./bin)"
        return subprocess.run(
            [self.helm_bin, "--kube-context", self.context, "--namespace", self.namespace, *args],
            check=check,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def wait_isvc_ready(self, name: str, timeout_s: int = 600) -> None:
        result = self.kubectl(
            "wait",
            "--for=condition=Ready",
            f"inferenceservice/{name}",
            f"--timeout={timeout_s}s",
            check=False,
            timeout=timeout_s + 60,
        )
        if result.returncode != 0:
            described = self.kubectl("describe", f"inferenceservice/{name}", check=False).stdout
            pods = self.kubectl("get", "pods", "-o", "wide", check=False).stdout
            pytest.fail(f"InferenceService {name} not Ready:\n{result.stderr}\n{described}\n{pods}")


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    kubectl = tool("kubectl")
    if kubectl is None:
        pytest.skip("e2e tier skipped: no kubectl (make tools installs one into ./bin)")
    contexts = subprocess.run(
        [kubectl, "config", "get-contexts", "-o", "name"],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout.split()
    if CONTEXT not in contexts:
        pytest.skip(
            f"e2e tier skipped: no kube context {CONTEXT!r} (make kind-up creates it; "
            "E2E_KUBE_CONTEXT names another)"
        )
    info = subprocess.run(
        [kubectl, "--context", CONTEXT, "cluster-info", "--request-timeout=15s"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if info.returncode != 0:
        last = (info.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(
            f"e2e tier skipped: the cluster of context {CONTEXT!r} does not answer ({last})"
        )
    found = Cluster(kubectl, tool("helm"), CONTEXT, NAMESPACE)
    crd = found.kubectl("get", "crd", "inferenceservices.serving.kserve.io", check=False)
    if crd.returncode != 0:
        pytest.fail(f"KServe is not installed in {CONTEXT!r}: run make kserve-install")
    pvc = found.kubectl("get", "pvc", "kserve-kit-models", check=False)
    if pvc.returncode != 0:
        pytest.fail("the PVC kserve-kit-models is missing: run make model-upload")
    return found


@contextlib.contextmanager
def port_forward(
    cluster: Cluster, service: str, remote_port: int = 80, timeout_s: float = 60
) -> Iterator[str]:
    """`kubectl port-forward svc/<service>`; yields the local base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [
            cluster.kubectl_bin,
            "--context",
            cluster.context,
            "-n",
            cluster.namespace,
            "port-forward",
            f"svc/{service}",
            f"{port}:{remote_port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"port-forward to {service} exited: {proc.stdout.read()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"port-forward to {service} not listening in {timeout_s} s")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        if proc.poll() is None:
            proc.kill()
