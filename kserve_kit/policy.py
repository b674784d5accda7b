"""The decision policy as data: what turns a model's logits into an answer or a refusal.

Pure: json and numpy, no kserve, no torch. The transformer and the batch command load the same
file and answer the same way; `python -m offline.calibrate` writes it.

`policy.json`, beside the model (or wherever `--policy_file` points):

    {
      "format": 1,                      # this layout; another number is refused
      "version": "cal-3f2a9c0d1b7e",    # named in every answer (`policy_version`)
      "model_version": "demo-0123abcd", # the model it was fitted for; null: any model
      "others_label": "others",         # answered when the top class is below its threshold
      "temperature": 1.73,              # logits are divided by it before the softmax
      "threshold": 0.62,                # the threshold of a class not in class_thresholds
      "class_thresholds": {"billing": 0.55, "shipping": 0.71},   # optional, by label
      "provenance": {...}               # optional: how it was fitted (data hash, rows, date,
    }                                   # metrics); kept, never read by the servers

Every key but `class_thresholds`, `model_version` and `provenance` is required; any other key is
refused. A threshold is a number in (0, 1); a temperature a finite number > 0; a label of
`class_thresholds` one of the model's `id2label`; `model_version`, when not null, the served
model's version.

Precedence, for one request: its `confidence_threshold` parameter (which replaces the default
AND the per-class thresholds for that request; the temperature still applies), then the policy
file, then the flags (`--confidence_threshold`, `--others_label`), which are a policy too:
`DecisionPolicy.from_flags`, version `flags-<12 hex digits of a hash of its content>`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from kserve_kit.decision import Decisions, decide, validate_threshold

FORMAT = 1
FILE_NAME = "policy.json"
# `--policy_file none`: ignore a policy.json in the model directory and decide by the flags.
NO_POLICY = "none"
REQUIRED_KEYS = ("format", "version", "others_label", "temperature", "threshold")
OPTIONAL_KEYS = ("model_version", "class_thresholds", "provenance")
KEYS = (*REQUIRED_KEYS, *OPTIONAL_KEYS)


class PolicyError(ValueError):
    """A policy file that cannot serve: one line, `<file>: <key>: expected <...>, got <...>`."""

    def __init__(self, source: str, key: str, expected: str, got: str):
        super().__init__(f"{source}: {key}: expected {expected}, got {got}")
        self.source, self.key = source, key


@dataclass(frozen=True)
class DecisionPolicy:
    """How logits become answers. Frozen: a new policy is a new object, swapped in whole."""

    version: str
    threshold: float
    others_label: str
    temperature: float = 1.0
    class_thresholds: Mapping[str, float] = field(default_factory=dict)
    model_version: str | None = None
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        # Read-only views: a policy shared by every request must not change under them.
        object.__setattr__(self, "class_thresholds", MappingProxyType(dict(self.class_thresholds)))
        object.__setattr__(self, "provenance", MappingProxyType(dict(self.provenance)))

    @classmethod
    def from_flags(cls, threshold: float, others_label: str) -> DecisionPolicy:
        """Today's behaviour: one threshold on the raw softmax. The version is derived from the
        content, so the same flags give the same version on every replica and every run."""
        threshold = validate_threshold(threshold)
        return cls(
            version="flags-"
            + content_hash(
                {"threshold": threshold, "others_label": others_label, "temperature": 1.0}
            ),
            threshold=threshold,
            others_label=others_label,
        )

    def decide(
        self,
        logits: np.ndarray,
        labels: Mapping[int, str] | Sequence[str],
        threshold_override: float | None = None,
    ) -> Decisions:
        """Decisions for a batch of logits. `threshold_override` (a request's
        `confidence_threshold`) replaces the default and every per-class threshold for this
        call; the temperature applies either way."""
        if threshold_override is None:
            threshold, per_class = self.threshold, self.class_thresholds
        else:
            threshold, per_class = validate_threshold(threshold_override), None
        return decide(
            logits,
            labels,
            threshold,
            self.others_label,
            temperature=self.temperature,
            class_thresholds=per_class,
        )

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "version": self.version,
            "model_version": self.model_version,
            "others_label": self.others_label,
            "temperature": self.temperature,
            "threshold": self.threshold,
            "class_thresholds": dict(self.class_thresholds),
            "provenance": _plain(self.provenance),
        }

    def to_json(self) -> str:
        """The file's text, which `load_policy` reads back into an equal policy."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"


def content_hash(content: Mapping[str, Any]) -> str:
    """12 hex digits of the SHA-256 of `content` as canonical JSON (sorted keys)."""
    canonical = json.dumps(_plain(content), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _plain(value):
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# ----------------------------------------------------------------------------- reading


def load_policy(
    path: str | Path, labels: Sequence[str], model_version: str | None
) -> DecisionPolicy:
    """Read and check a policy file against the served model; raises PolicyError."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(source, "(file)", "a policy file", "nothing at that path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(source, "(file)", "a readable UTF-8 file", _one_line(exc)) from None
    return parse_policy(text, source, labels, model_version)


def parse_policy(
    text_or_dict: str | bytes | Mapping[str, Any],
    source: str,
    labels: Sequence[str],
    model_version: str | None,
) -> DecisionPolicy:
    """Check a policy document (its text, or the parsed object) and build the policy.

    `labels` are the model's (index order); `model_version` the served model's (None: do not
    check). Raises PolicyError naming `source`, the key, what was expected and what came.
    """
    if isinstance(text_or_dict, (str, bytes)):
        try:
            doc = json.loads(text_or_dict)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PolicyError(
                source, "(file)", "JSON", f"invalid JSON ({_one_line(exc)})"
            ) from None
    else:
        doc = text_or_dict
    if not isinstance(doc, Mapping):
        raise PolicyError(source, "(file)", "a JSON object", _kind(doc))

    def fail(key: str, expected: str, value: Any) -> PolicyError:
        return PolicyError(source, key, expected, _show(value))

    unknown = sorted(set(doc) - set(KEYS))
    if unknown:
        raise PolicyError(
            source, ", ".join(unknown), "only the keys " + ", ".join(KEYS), "unknown keys"
        )
    missing = [key for key in REQUIRED_KEYS if key not in doc]
    if missing:
        raise PolicyError(source, ", ".join(missing), "a value (required)", "nothing")

    fmt = doc["format"]
    if isinstance(fmt, bool) or fmt != FORMAT:
        raise fail("format", f"{FORMAT} (the layout this kit reads)", fmt)
    version = doc["version"]
    if not isinstance(version, str) or not version.strip():
        raise fail("version", "a non-empty string", version)
    others_label = doc["others_label"]
    if not isinstance(others_label, str) or not others_label:
        raise fail("others_label", "a non-empty string", others_label)
    temperature = doc["temperature"]
    if not _number(temperature) or not (math.isfinite(temperature) and temperature > 0):
        raise fail("temperature", "a finite number > 0", temperature)
    threshold = _threshold(doc["threshold"], "threshold", fail)

    class_thresholds = doc.get("class_thresholds") or {}
    if not isinstance(class_thresholds, Mapping):
        raise fail("class_thresholds", "an object of label -> threshold", class_thresholds)
    known = set(labels)
    checked = {}
    for label, value in class_thresholds.items():
        key = f"class_thresholds.{label}"
        if label not in known:
            raise PolicyError(
                source, key, "a label of the model (" + ", ".join(labels) + ")", _show(label)
            )
        checked[label] = _threshold(value, key, fail)

    fitted_for = doc.get("model_version")
    if fitted_for is not None and not isinstance(fitted_for, str):
        raise fail("model_version", "a string or null", fitted_for)
    if fitted_for is not None and model_version is not None and fitted_for != model_version:
        raise fail("model_version", f"the served model's version {model_version!r}", fitted_for)
    provenance = doc.get("provenance") or {}
    if not isinstance(provenance, Mapping):
        raise fail("provenance", "an object", provenance)

    return DecisionPolicy(
        version=version,
        threshold=threshold,
        others_label=others_label,
        temperature=float(temperature),
        class_thresholds=checked,
        model_version=fitted_for,
        provenance=provenance,
    )


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _threshold(value: Any, key: str, fail) -> float:
    if not _number(value) or not (math.isfinite(value) and 0.0 < value < 1.0):
        raise fail(key, "a number in (0, 1)", value)
    return float(value)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=repr)  # NaN, Infinity as JSON has them
    return text if len(text) <= 60 else text[:57] + "..."


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


# ----------------------------------------------------------------------------- which policy


def policy_file_for(flag_value: str | None, model_dir: str | Path) -> Path | None:
    """The policy file to serve: `--policy_file` when given (it must exist), else
    `<model_dir>/policy.json` when present, else None (decide by the flags). `--policy_file
    none` also means the flags, whatever the model directory holds."""
    if flag_value:
        if flag_value == NO_POLICY:
            return None
        path = Path(flag_value)
        if not path.is_file():
            raise PolicyError(flag_value, "--policy_file", "an existing file", "nothing there")
        return path
    default = Path(model_dir) / FILE_NAME
    return default if default.is_file() else None


def resolve_policy(
    flag_value: str | None,
    model_dir: str | Path,
    labels: Sequence[str],
    model_version: str | None,
    threshold: float,
    others_label: str,
    watch: Callable[[Path, Callable[[Path], DecisionPolicy]], Any] | None = None,
) -> DecisionPolicy | Any:
    """The policy a server starts with: the policy file (see `policy_file_for`) checked
    against the model, or the flags when there is none. Raises PolicyError. With `watch`, a
    policy file goes to `watch(path, load)` instead (the transformer's watcher, which loads it
    now and again on every change) and its result is returned; the flags' policy never changes."""
    path = policy_file_for(flag_value, model_dir)
    if path is None:
        return DecisionPolicy.from_flags(threshold, others_label)

    def load(p: Path) -> DecisionPolicy:
        return load_policy(p, labels, model_version)

    return load(path) if watch is None else watch(path, load)
