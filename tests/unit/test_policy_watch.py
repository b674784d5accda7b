"""Live reload on a real directory laid out as a Kubernetes ConfigMap volume: `policy.json` ->
`..data/policy.json`, `..data` -> `..<timestamp>`; an update swaps the `..data` symlink."""

import json
import logging
import os
import threading
import time
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from kserve_kit.policy import DecisionPolicy, PolicyError, load_policy
from kserve_kit.policy_watch import PolicyWatcher
from tests.support.configmap import ConfigMapVolume

pytestmark = pytest.mark.unit

LABELS = ("billing", "shipping", "account")
MODEL = "demo-0123456789ab"


def document(version: str, threshold: float = 0.6, temperature: float = 1.5) -> dict:
    return {
        "format": 1,
        "version": version,
        "model_version": MODEL,
        "others_label": "others",
        "temperature": temperature,
        "threshold": threshold,
        "class_thresholds": {},
    }


class PolicyVolume(ConfigMapVolume):
    """A ConfigMap volume holding one key, policy.json."""

    @property
    def path(self) -> Path:
        return self.root / "policy.json"

    def publish(self, content: str) -> None:
        super().publish({"policy.json": content})


def errors_total() -> float:
    return REGISTRY.get_sample_value("kserve_kit_policy_reload_errors_total") or 0.0


def load(path: Path) -> DecisionPolicy:
    return load_policy(path, LABELS, MODEL)


@pytest.fixture
def volume(tmp_path):
    v = PolicyVolume(tmp_path)
    v.publish(json.dumps(document("v1")))
    return v


def test_a_symlink_swap_is_taken_and_logged(volume, caplog):
    watcher = PolicyWatcher(volume.path, load)
    assert watcher.current.version == "v1"
    assert watcher.check() is False  # nothing changed
    link_before = os.readlink(volume.path)
    volume.publish(json.dumps(document("v2", threshold=0.7)))
    assert os.readlink(volume.path) == link_before  # the watched path itself never changed
    with caplog.at_level(logging.INFO, logger="kserve_kit.policy_watch"):
        assert watcher.check() is True
    assert (watcher.current.version, watcher.current.threshold) == ("v2", 0.7)
    (line,) = [r for r in caplog.records if r.name == "kserve_kit.policy_watch"]
    assert (
        line.levelno == logging.INFO and "v2" in line.getMessage() and "was v1" in line.getMessage()
    )
    assert watcher.check() is False


@pytest.mark.parametrize(
    "content, reason",
    [
        ("{not json", "invalid JSON"),
        (json.dumps({**document("v2"), "temperature": -1}), "temperature: expected a finite"),
        (json.dumps({**document("v2"), "model_version": "other"}), "model_version: expected"),
        (json.dumps({**document("v2"), "extra": 1}), "extra: expected only the keys"),
    ],
)
def test_a_bad_new_file_keeps_the_old_policy_with_one_line_and_one_count(
    volume, caplog, content, reason
):
    watcher = PolicyWatcher(volume.path, load)
    before = errors_total()
    volume.publish(content)
    with caplog.at_level(logging.INFO, logger="kserve_kit.policy_watch"):
        assert watcher.check() is False
        assert watcher.check() is False  # the same bad file is not reported again
    assert watcher.current.version == "v1"
    assert errors_total() == before + 1
    (line,) = [r for r in caplog.records if r.name == "kserve_kit.policy_watch"]
    message = line.getMessage()
    assert line.levelno == logging.WARNING and "\n" not in message
    assert "v1 keeps serving" in message and reason in message and str(volume.path) in message

    volume.publish(json.dumps(document("v3")))  # fixed: taken at the next poll
    assert watcher.check() is True and watcher.current.version == "v3"
    assert errors_total() == before + 1


def test_a_rewrite_in_place_with_the_same_size_and_mtime_is_seen(tmp_path):
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(document("v1", threshold=0.61)))
    stat = path.stat()
    watcher = PolicyWatcher(path, load)
    path.write_text(json.dumps(document("v1", threshold=0.62)))  # same length
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    assert watcher.check() is True and watcher.current.threshold == 0.62


def test_a_touch_without_a_change_loads_nothing(tmp_path):
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(document("v1")))
    calls = []
    watcher = PolicyWatcher(path, lambda p: calls.append(p) or load(p))
    os.utime(path, ns=(1, 1))
    assert watcher.check() is False and len(calls) == 1


def test_a_vanished_file_keeps_the_old_policy(tmp_path, caplog):
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(document("v1")))
    watcher = PolicyWatcher(path, load)
    before = errors_total()
    path.unlink()
    with caplog.at_level(logging.WARNING, logger="kserve_kit.policy_watch"):
        assert watcher.check() is False
        assert watcher.check() is False
    assert watcher.current.version == "v1" and errors_total() == before + 1
    assert len(caplog.records) == 1 and "cannot read it" in caplog.records[0].getMessage()
    path.write_text(json.dumps(document("v2")))
    assert watcher.check() is True and watcher.current.version == "v2"


def test_a_bad_file_at_start_raises(tmp_path):
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({**document("v1"), "threshold": 2}))
    with pytest.raises(PolicyError, match="threshold: expected a number in"):
        PolicyWatcher(path, load)


def test_the_thread_takes_a_swap_and_readers_never_see_a_mix(volume):
    watcher = PolicyWatcher(volume.path, load, interval_s=0.01).start()
    seen, stop = set(), threading.Event()

    def read():
        while not stop.is_set():
            policy = watcher.current  # one read per "request"
            seen.add((policy.version, policy.threshold, policy.temperature))

    readers = [threading.Thread(target=read) for _ in range(3)]
    for r in readers:
        r.start()
    try:
        volume.publish(json.dumps(document("v2", threshold=0.8, temperature=0.7)))
        deadline = time.monotonic() + 5
        while watcher.current.version != "v2" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert watcher.current.version == "v2"
    finally:
        stop.set()
        for r in readers:
            r.join()
        watcher.stop()
    assert seen <= {("v1", 0.6, 1.5), ("v2", 0.8, 0.7)}
    assert watcher._thread is None
