"""Fixtures of the container tier: a Docker engine, the two images, and both servers running as
containers the way the kind overlay runs them as pods.

Images are tagged `kserve-kit-{predictor,transformer}:test-<hash>`, the hash covering everything
that goes into them (the build context that .dockerignore lets through, the base image's id and
the build settings), so an image is reused only while it is still what a build would make.

Build settings come from the environment, with the names that `make images` uses:
BASE_IMAGE, TORCH_INDEX_URL, WHEELS, PIP_OFFLINE, EXTRA_CA_CERTS, DOCKER_BUILD_ARGS.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.support.cmdline import flag

REPO = Path(__file__).resolve().parents[2]
DEFAULT_BASE_IMAGE = "python:3.11-slim-bookworm"
LOCAL_BASE_IMAGE = "kserve-kit/python:3.11-bookworm-local"
CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
# What .dockerignore lets into the build context (plus the build script itself).
CONTEXT_FILES = (
    "pyproject.toml",
    "constraints.txt",
    "README.md",
    ".dockerignore",
    "scripts/build-images.sh",
)
CONTEXT_DIRS = ("kserve_kit", "predictor", "transformer", "hack/docker")
READY_TIMEOUT_S = 600


def docker(
    *args: str, check: bool = True, timeout: float = 120, **kwargs
) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["docker", *args], check=check, timeout=timeout, text=True, capture_output=True, **kwargs
    )


def engine_problem() -> str | None:
    """Why no Docker engine can be used, or None when one answers."""
    if shutil.which("docker") is None:
        return "no docker CLI on PATH (scripts/ensure-docker.sh installs docker.io)"
    try:
        result = docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=30)
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer within 30 s"
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return (
            f"no Docker engine answers (`docker info`: {last}); "
            "start one with scripts/ensure-docker.sh"
        )
    return None


@pytest.fixture(scope="session")
def engine() -> str:
    problem = engine_problem()
    if problem:
        pytest.skip(f"container tier skipped: {problem}")
    return docker("info", "--format", "{{.ServerVersion}}").stdout.strip()


def image_id(ref: str) -> str | None:
    result = docker("image", "inspect", "--format", "{{.Id}}", ref, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


@dataclass(frozen=True)
class BuildSettings:
    base_image: str
    torch_index_url: str
    wheels: str
    pip_offline: str
    extra_ca_certs: str
    docker_build_args: str

    @classmethod
    def from_env(cls) -> BuildSettings:
        env = os.environ
        base = env.get("BASE_IMAGE", "")
        if not base:
            # No registry on this machine: the debootstrap base (make base-image) stands in for
            # python:3.11-slim-bookworm when that is not present locally.
            base = DEFAULT_BASE_IMAGE
            if image_id(base) is None and image_id(LOCAL_BASE_IMAGE) is not None:
                base = LOCAL_BASE_IMAGE
        wheels = env.get("WHEELS", "")
        torch_index = env.get("TORCH_INDEX_URL", "")
        if not wheels and not torch_index:
            torch_index = CPU_TORCH_INDEX  # the tests run on CPU: no 3 GB of CUDA wheels
        return cls(
            base,
            torch_index,
            wheels,
            env.get("PIP_OFFLINE", "0"),
            env.get("EXTRA_CA_CERTS", ""),
            env.get("DOCKER_BUILD_ARGS", ""),
        )

    def env(self) -> dict[str, str]:
        return {
            "BASE_IMAGE": self.base_image,
            "TORCH_INDEX_URL": self.torch_index_url,
            "WHEELS": self.wheels,
            "PIP_OFFLINE": self.pip_offline,
            "EXTRA_CA_CERTS": self.extra_ca_certs,
            "DOCKER_BUILD_ARGS": self.docker_build_args,
        }

    def extra_ca_files(self) -> list[Path]:
        if not self.extra_ca_certs:
            return []
        path = Path(self.extra_ca_certs)
        if path.is_dir():
            return sorted(p for p in path.iterdir() if p.suffix in (".crt", ".pem") and p.is_file())
        return [path]


def content_hash(settings: BuildSettings) -> str:
    """A hash of everything that decides what the images contain."""
    h = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        h.update(label.encode() + b"\0" + hashlib.sha256(data).digest())

    files = [REPO / f for f in CONTEXT_FILES if (REPO / f).is_file()]
    for d in CONTEXT_DIRS:
        files += [
            p
            for p in (REPO / d).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")
        ]
    for path in sorted(files):
        add(str(path.relative_to(REPO)), path.read_bytes())
    add("base", (image_id(settings.base_image) or settings.base_image).encode())
    for name in ("torch_index_url", "pip_offline", "docker_build_args"):
        add(name, getattr(settings, name).encode())
    if settings.wheels:
        listing = sorted(
            f"{p.name}:{p.stat().st_size}" for p in Path(settings.wheels).glob("*.whl")
        )
        add("wheels", "\n".join(listing).encode())
    for path in settings.extra_ca_files():
        add(f"ca:{path.name}", path.read_bytes())
    return h.hexdigest()[:12]


@dataclass(frozen=True)
class Images:
    predictor: str
    transformer: str
    settings: BuildSettings
    built: bool


@pytest.fixture(scope="session")
def build_settings() -> BuildSettings:
    return BuildSettings.from_env()


@pytest.fixture(scope="session")
def images(engine, build_settings, tmp_path_factory) -> Images:
    tag = f"test-{content_hash(build_settings)}"
    predictor, transformer = f"kserve-kit-predictor:{tag}", f"kserve-kit-transformer:{tag}"
    if image_id(predictor) and image_id(transformer):
        print(f"reusing {predictor} and {transformer}")
        return Images(predictor, transformer, build_settings, built=False)
    log = tmp_path_factory.mktemp("image-build") / "build.log"
    env = {
        **os.environ,
        **build_settings.env(),
        "PREDICTOR_IMAGE": predictor,
        "TRANSFORMER_IMAGE": transformer,
    }
    with open(log, "w") as out:
        result = subprocess.run(
            [str(REPO / "scripts" / "build-images.sh")],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=3000,
        )
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-60:])
        pytest.fail(f"building the images on {build_settings.base_image} failed:\n{tail}")
    remove_stale_test_images(keep=tag)
    return Images(predictor, transformer, build_settings, built=True)


def remove_stale_test_images(keep: str) -> None:
    """Earlier `test-<hash>` images are never reused once the hash moved on: free their space."""
    for repo in ("kserve-kit-predictor", "kserve-kit-transformer"):
        tags = docker("image", "ls", repo, "--format", "{{.Tag}}", check=False).stdout.split()
        stale = [f"{repo}:{t}" for t in tags if t.startswith("test-") and t != keep]
        if stale:
            docker("rmi", *stale, check=False)


# --- the kind overlay, rendered -------------------------------------------------------------


def kubectl() -> str | None:
    local = REPO / "bin" / "kubectl"
    return str(local) if local.is_file() else shutil.which("kubectl")


@pytest.fixture(scope="session")
def kind_isvc() -> dict:
    """The InferenceService of `kubectl kustomize manifests/overlays/kind`."""
    binary = kubectl()
    if binary is None:
        pytest.skip("container tier skipped: no kubectl to render manifests/overlays/kind")
    rendered = subprocess.run(
        [binary, "kustomize", str(REPO / "manifests/overlays/kind")],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    for doc in yaml.safe_load_all(rendered):
        if doc and doc.get("kind") == "InferenceService":
            return doc
    raise AssertionError("manifests/overlays/kind renders no InferenceService")


def docker_memory(quantity: str) -> str:
    units = {"Ki": "k", "Mi": "m", "Gi": "g"}
    for suffix, unit in units.items():
        if quantity.endswith(suffix):
            return quantity[: -len(suffix)] + unit
    return quantity


def docker_cpus(quantity: str) -> str:
    return str(int(quantity[:-1]) / 1000) if quantity.endswith("m") else quantity


# --- running containers ---------------------------------------------------------------------


@dataclass
class Container:
    name: str
    http_port: int  # on 127.0.0.1
    grpc_port: int | None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def logs(self, lines: int = 60) -> str:
        result = docker("logs", "--tail", str(lines), self.name, check=False)
        return result.stdout + result.stderr

    def running(self) -> bool:
        state = docker("inspect", "--format", "{{.State.Running}}", self.name, check=False)
        return state.stdout.strip() == "true"

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        delay = 0.2
        while time.monotonic() < deadline:
            if not self.running():
                raise AssertionError(f"container {self.name} stopped:\n{self.logs()}")
            with contextlib.suppress(OSError, urllib.error.URLError):
                with urllib.request.urlopen(f"{self.url}/v2/health/ready", timeout=5) as r:
                    if r.status == 200:
                        return
            time.sleep(delay)
            delay = min(delay * 2, 3.0)
        raise AssertionError(f"{self.name} not ready after {timeout_s} s:\n{self.logs()}")


def published_port(name: str, port: int) -> int:
    out = docker("port", name, f"{port}/tcp").stdout.strip().splitlines()[0]
    return int(out.rsplit(":", 1)[1])


def run_like_pod(
    image: str,
    name: str,
    network: str,
    container_spec: dict,
    model_dir: Path,
    alias: str | None = None,
) -> Container:
    """Start `image` with the container's args, env and limits, under the pod's security
    context: uid 1000, read-only root filesystem with a tmpfs /tmp, no capabilities."""
    args = list(container_spec.get("args", []))
    http = int(flag(args, "--http_port") or 8080)
    grpc_ = int(flag(args, "--grpc_port") or 8081)
    limits = container_spec.get("resources", {}).get("limits", {})
    cmd = [
        "run",
        "--detach",
        "--name",
        name,
        "--network",
        network,
        "--user",
        "1000:1000",
        "--read-only",
        "--tmpfs",
        "/tmp:rw,mode=1777,size=512m",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--volume",
        f"{model_dir}:/mnt/models:ro",
        "--publish",
        f"127.0.0.1::{http}",
        "--publish",
        f"127.0.0.1::{grpc_}",
    ]
    if alias:
        cmd += ["--network-alias", alias]
    if "memory" in limits:
        cmd += ["--memory", docker_memory(str(limits["memory"]))]
    if "cpu" in limits:
        cmd += ["--cpus", docker_cpus(str(limits["cpu"]))]
    for var in container_spec.get("env", []):
        # STORAGE_URI is the storage initializer's: the model is mounted at /mnt/models instead.
        if var["name"] != "STORAGE_URI" and "value" in var:
            cmd += ["--env", f"{var['name']}={var['value']}"]
    docker(*cmd, image, *args)
    return Container(name, published_port(name, http), published_port(name, grpc_))


def readable_copy(model_dir: Path) -> Path:
    """A copy of the model that uid 1000 can read (pytest's temporary directories are 0700)."""
    root = Path(tempfile.mkdtemp(prefix="kserve-kit-model-"))
    root.chmod(0o755)
    copy = root / "model"
    shutil.copytree(model_dir, copy)
    for path in [copy, *copy.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return copy


@dataclass(frozen=True)
class Deployment:
    transformer: Container
    predictor: Container
    model_name: str
    labels: tuple[str, ...]
    others_label: str


@pytest.fixture(scope="module")
def deployment(images, kind_isvc, demo_model_dir) -> Iterator[Deployment]:
    """The predictor and the transformer on a user-defined network, as the kind overlay's pods."""
    predictor_spec = kind_isvc["spec"]["predictor"]["containers"][0]
    transformer_spec = kind_isvc["spec"]["transformer"]["containers"][0]
    t_args = transformer_spec["args"]
    # What KServe's controller adds to a custom transformer where missing.
    isvc = kind_isvc["metadata"]["name"]
    if flag(t_args, "--model_name") is None:
        t_args = [*t_args, f"--model_name={isvc}"]
    if flag(t_args, "--predictor_host") is None:
        t_args = [*t_args, f"--predictor_host={isvc}-predictor.default"]
    if flag(t_args, "--http_port") is None:
        t_args = [*t_args, "--http_port=8080"]
    transformer_spec = {**transformer_spec, "args": t_args}
    # The predictor answers on the Service name the transformer is given (a gRPC target such as
    # dns:///<name>:<port> names it after its scheme).
    predictor_host = flag(t_args, "--predictor_host").removeprefix("dns:///").rsplit(":", 1)[0]

    model = readable_copy(demo_model_dir)
    suffix = uuid.uuid4().hex[:8]
    network = f"kserve-kit-test-{suffix}"
    names = [f"kserve-kit-predictor-{suffix}", f"kserve-kit-transformer-{suffix}"]
    docker("network", "create", network)
    try:
        predictor = run_like_pod(
            images.predictor, names[0], network, predictor_spec, model, alias=predictor_host
        )
        transformer = run_like_pod(images.transformer, names[1], network, transformer_spec, model)
        predictor.wait_ready()
        transformer.wait_ready()
        config = json.loads((model / "config.json").read_text())
        labels = tuple(config["id2label"][k] for k in sorted(config["id2label"], key=int))
        yield Deployment(
            transformer,
            predictor,
            flag(t_args, "--model_name"),
            labels,
            flag(t_args, "--others_label") or "others",
        )
    finally:
        for name in names:
            logs = docker("logs", "--tail", "30", name, check=False)
            print(f"--- {name}\n{logs.stdout}{logs.stderr}")
            docker("rm", "--force", name, check=False)
        docker("network", "rm", network, check=False)
        shutil.rmtree(model.parent, ignore_errors=True)
