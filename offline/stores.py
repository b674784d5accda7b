"""Where the offline command's files live: a local path or an `s3://`, `gs://`, `az://` URL,
through fsspec (s3fs, gcsfs, adlfs). Credentials come from each cloud's standard chain (AWS_*
variables, IRSA / EKS Pod Identity; GOOGLE_APPLICATION_CREDENTIALS, GKE Workload Identity;
AZURE_STORAGE_* variables, Azure Workload Identity); an S3-compatible store's endpoint from
`AWS_ENDPOINT_URL` or `--s3_endpoint_url`.

Object stores cannot append or rename, so nothing here does: objects are written whole (an
S3 object appears only once its upload completes) and "moved" by copy then delete.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import PurePosixPath

URL_SCHEMES = ("s3://", "gs://", "gcs://", "az://", "abfs://")
# The package each scheme needs, for the error when it is not installed.
_PACKAGES = {"s3": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs"}


class StorageError(ValueError):
    """A location that cannot be read or written: the command stops with exit 2 before any
    row is scored (a retry will not make a bucket exist or a credential valid)."""

    def __init__(self, url: str, expected: str, exc: BaseException | str):
        got = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        super().__init__(f"{url}: expected {expected}, got {got}")


def is_url(text: str) -> bool:
    return text.startswith(URL_SCHEMES)


class Url(str):
    """An object-store URL given on the command line, with a path's `suffix`, `name`, `parent`
    (a `Path` would fold its `//`)."""

    @property
    def _path(self) -> PurePosixPath:
        return PurePosixPath(self.split("://", 1)[1])

    @property
    def suffix(self) -> str:
        return self._path.suffix

    @property
    def name(self) -> str:
        return self._path.name

    @property
    def parent(self) -> Url:
        return Url(f"{self.split('://', 1)[0]}://{self._path.parent}")


@dataclass(frozen=True)
class Store:
    """A filesystem and helpers on it; paths are the filesystem's own (no scheme for s3)."""

    fs: object  # fsspec.AbstractFileSystem
    scheme: str

    def url(self, path: str) -> str:
        return path if self.scheme == "file" else f"{self.scheme}://{path}"

    def join(self, *parts: str) -> str:
        return "/".join(p.rstrip("/") for p in parts)

    def exists(self, path: str) -> bool:
        return self.fs.exists(path)

    def size(self, path: str) -> int:
        return int(self.fs.info(path)["size"])

    def read_json(self, path: str) -> dict | None:
        try:
            with self.fs.open(path, "rb") as f:
                return json.loads(f.read())
        except FileNotFoundError:
            return None

    def put_bytes(self, path: str, data: bytes) -> None:
        """Write an object whole. Local files go through a temporary file and a rename, so a
        reader sees the old content or the new, never half; an object store's PUT is so."""
        if self.scheme == "file":
            self.fs.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            tmp = f"{path}.tmp"
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        else:
            self.fs.pipe_file(path, data)

    def put_json(self, path: str, value: dict) -> None:
        self.put_bytes(path, json.dumps(value, indent=1).encode())

    def move(self, src: str, dst: str) -> None:
        """Rename locally (atomic); copy then delete on an object store (the copy appears whole)."""
        if self.scheme == "file":
            self.fs.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
            os.replace(src, dst)
        else:
            self.fs.copy(src, dst)
            self.fs.rm(src)

    def remove(self, path: str, recursive: bool = False) -> None:
        try:
            self.fs.rm(path, recursive=recursive)
        except FileNotFoundError:
            pass

    def listdir(self, path: str) -> list[str]:
        try:
            return sorted(self.fs.ls(path, detail=False, refresh=True))
        except FileNotFoundError:
            return []
        except TypeError:  # filesystems without refresh=
            return sorted(self.fs.ls(path, detail=False))


def open_store(location: str, s3_endpoint_url: str | None = None) -> tuple[Store, str]:
    """(store, path in it) for a local path or a URL."""
    import fsspec

    scheme = location.split("://", 1)[0] if is_url(location) else "file"
    options: dict = {}
    if scheme == "s3":
        endpoint = s3_endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            options["endpoint_url"] = endpoint
        # Fail within seconds on an endpoint that does not answer, rather than retry for minutes.
        options["config_kwargs"] = {
            "connect_timeout": 5,
            "read_timeout": 60,
            "retries": {"max_attempts": 3, "mode": "standard"},
        }
    if scheme != "file":
        options["skip_instance_cache"] = True
    try:
        fs, path = fsspec.core.url_to_fs(location, **options)
    except ImportError as exc:
        raise StorageError(
            location,
            f"the {_PACKAGES.get(scheme, scheme)} package (pip install 'kserve-kit[batch]')",
            exc,
        ) from exc
    if scheme == "file":
        path = os.path.abspath(location)
    return Store(fs, scheme), path


def check_readable(store: Store, path: str, what: str) -> int:
    """The object's size; StorageError when it is missing, forbidden or unreachable."""
    try:
        info = store.fs.info(path)
    except Exception as exc:  # noqa: BLE001 - every backend raises its own kinds
        raise StorageError(store.url(path), f"a readable {what}", exc) from exc
    if info.get("type") == "directory":
        raise StorageError(store.url(path), f"a {what} file", "a directory")
    return int(info["size"])


def check_writable(store: Store, path: str) -> None:
    """Write and delete a small object at `path`: an unknown bucket, a missing permission or an
    unreachable endpoint shows here, before any row is scored."""
    try:
        store.put_bytes(path, b"{}")
        store.remove(path)
    except Exception as exc:  # noqa: BLE001
        raise StorageError(store.url(path), "a writable location", exc) from exc
