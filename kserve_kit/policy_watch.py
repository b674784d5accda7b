"""Live reload of the decision policy: watch the file, swap the policy whole, refuse a bad one.

A Kubernetes ConfigMap volume updates by writing a new `..<timestamp>` directory and renaming
the `..data` symlink onto it; `policy.json` itself is a symlink to `..data/policy.json` whose
inode never changes. So the watcher polls the PATH: `os.stat` follows the symlinks, and a hash
of the content catches a rewrite that keeps inode, size and mtime.

Readers take `watcher.current` once per request and use that object throughout: the swap is
one attribute assignment (atomic under the GIL) of a frozen policy, so a request sees the old
policy or the new one, never a mix. A new file that does not load keeps the old policy serving,
logs one warning line with the reason, and counts `kserve_kit_policy_reload_errors_total`;
the same bad content is reported once, not at every poll.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from prometheus_client import Counter

from kserve_kit.policy import DecisionPolicy

log = logging.getLogger(__name__)

RELOAD_ERRORS = Counter(
    "kserve_kit_policy_reload_errors",  # exposed as kserve_kit_policy_reload_errors_total
    "Policy files refused at reload (the previous policy kept serving)",
)


class PolicyWatcher:
    """Holds the serving policy and replaces it when the file at `path` changes.

    The first load happens here and raises what `load` raises (a server refuses to start on a
    bad file); later loads never raise.
    """

    def __init__(
        self,
        path: str | Path,
        load: Callable[[Path], DecisionPolicy],
        interval_s: float = 1.0,
    ):
        self.path = Path(path)
        self.interval_s = interval_s
        self._load = load
        # Fingerprint before loading: a change in between is then seen at the next poll.
        try:
            self._seen = self._fingerprint()
        except OSError as exc:
            self._seen = ("unreadable", type(exc).__name__, str(exc))
        self.current: DecisionPolicy = load(self.path)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _fingerprint(self) -> tuple:
        """What identifies the file's present content: the stat of the final target of any
        symlinks, and a hash of the bytes. Raises OSError when the path cannot be read."""
        st = os.stat(self.path)  # follows symlinks: a swapped ..data changes st_ino here
        digest = hashlib.sha256(self.path.read_bytes()).hexdigest()
        return digest, st.st_ino, st.st_size

    def check(self) -> bool:
        """One poll. True when a new policy was taken."""
        try:
            seen = self._fingerprint()
        except OSError as exc:
            seen = ("unreadable", type(exc).__name__, str(exc))
            if seen != self._seen:
                self._seen = seen
                self._refuse(f"cannot read it: {exc}")
            return False
        if seen[0] == self._seen[0]:  # same bytes: nothing to do, whatever the stat says
            self._seen = seen
            return False
        self._seen = seen
        try:
            policy = self._load(self.path)
        except Exception as exc:  # noqa: BLE001 - any failure must keep the old policy serving
            self._refuse(" ".join(str(exc).split()) or type(exc).__name__)
            return False
        old, self.current = self.current, policy
        log.info("policy %s taken from %s (was %s)", policy.version, self.path, old.version)
        return True

    def _refuse(self, reason: str) -> None:
        RELOAD_ERRORS.inc()
        log.warning("policy reload refused, %s keeps serving: %s", self.current.version, reason)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - the watcher must outlive any one poll
                log.exception("policy watcher poll failed")

    def start(self) -> PolicyWatcher:
        """Poll every `interval_s` on a daemon thread."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="policy-watcher", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
