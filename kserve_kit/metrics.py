"""What both servers count about the requests they answer, on their `/metrics` (Prometheus).

Label values come only from the kit's own sets (protocols, status classes, error kinds), never
from what a client sends, so the number of series stays bounded whatever the traffic.

- `kserve_kit_requests_total{protocol, code_class, error}`: every inference request answered,
  by protocol (`rest`, `grpc`), status class (`2xx`, `4xx`, `5xx`) and error kind (`none`, or
  one of `ERROR_KINDS`).
- `kserve_kit_request_seconds{protocol}`: the time a request spent inside the model's handler.
"""

from __future__ import annotations

import logging
import time

from prometheus_client import Counter, Histogram

from kserve_kit.errors import (
    BadInput,
    ModelNotFound,
    PredictorFailed,
    PredictorTimeout,
    PredictorUnavailable,
    RepositoryDisabled,
    ServingError,
    TooLarge,
)

# The name refusals have always been logged under (log filters and tests read it).
logger = logging.getLogger("kserve_kit.serving")

PROTOCOLS = ("rest", "grpc")
# Most specific first: TooLarge is a BadInput.
ERROR_KINDS = {
    TooLarge: "too_large",
    BadInput: "bad_input",
    ModelNotFound: "not_found",
    RepositoryDisabled: "forbidden",
    PredictorUnavailable: "predictor_unavailable",
    PredictorTimeout: "predictor_timeout",
    PredictorFailed: "predictor_failed",
}
INTERNAL = "internal"  # anything else: a bug, answered 500

REQUESTS = Counter(
    "kserve_kit_requests",
    "Inference requests answered, by protocol, status class and error kind",
    ["protocol", "code_class", "error"],
)
REQUEST_SECONDS = Histogram(
    "kserve_kit_request_seconds",
    "Time an inference request spent inside the server's model handler",
    ["protocol"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
for _protocol in PROTOCOLS:  # series exist from the start, so rate() has a zero to begin at
    REQUESTS.labels(_protocol, "2xx", "none")
    REQUEST_SECONDS.labels(_protocol)


def error_kind(exc: BaseException) -> str:
    for cls, kind in ERROR_KINDS.items():
        if isinstance(exc, cls):
            return kind
    return INTERNAL


def count_request(protocol: str, status: int, error: str = "none") -> None:
    REQUESTS.labels(protocol, f"{status // 100}xx", error).inc()


def protocol_of(body) -> str:
    return "grpc" if getattr(body, "from_grpc", False) else "rest"


class CountedModel:
    """A mixin for a `kserve.Model`: times every call and counts those that succeed or fail
    with an unexpected error. A refusal (a `ServingError`) is counted where it is answered,
    `log_refusal`, which also sees those raised before the model runs."""

    async def __call__(self, body, headers=None, *args, **kwargs):
        protocol = protocol_of(body)
        started = time.perf_counter()
        try:
            response = await super().__call__(body, headers, *args, **kwargs)
        except Exception as exc:
            if error_kind(exc) == INTERNAL:
                count_request(protocol, 500, INTERNAL)
            raise
        finally:
            REQUEST_SECONDS.labels(protocol).observe(time.perf_counter() - started)
        count_request(protocol, 200)
        return response


def log_refusal(protocol: str, where: str, exc: ServingError, inference: bool) -> None:
    """One line per refused request: a 4xx is the client's doing, not the server's error, so no
    traceback and no ERROR; a 5xx the kit answers on purpose (503, 504) is a WARNING. A refused
    inference is counted in `kserve_kit_requests_total`."""
    status = int(exc.http_status)
    level = logging.INFO if status < 500 else logging.WARNING
    logger.log(level, "%s -> %d %s: %s", where, status, exc.status_code.name, exc.message)
    if inference:
        count_request(protocol, status, error_kind(exc))
