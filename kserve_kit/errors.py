"""Errors a client or an operator sees, each with its HTTP status and its gRPC code.

Each class builds its own message: it says what was expected and what came. The servers map
them to responses in one place (`install_error_handlers`), so no handler formats an error twice.
Subclassing grpc_interceptor's `GrpcException` is what KServe's gRPC interceptor understands.
"""

from __future__ import annotations

from http import HTTPStatus

import grpc
from grpc_interceptor.exceptions import GrpcException


class ServingError(GrpcException):
    """Base of the kit's errors: `http_status` for REST, `status_code` for gRPC."""

    http_status: HTTPStatus = HTTPStatus.INTERNAL_SERVER_ERROR
    status_code = grpc.StatusCode.INTERNAL

    def __init__(self, message: str):
        super().__init__(details=message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class BadInput(ServingError):
    """The request does not follow the V2 contract (400, INVALID_ARGUMENT)."""

    http_status = HTTPStatus.BAD_REQUEST
    status_code = grpc.StatusCode.INVALID_ARGUMENT


class TooLarge(BadInput):
    """A batch or a body above a configured limit (413, RESOURCE_EXHAUSTED)."""

    http_status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    status_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class PredictorUnavailable(ServingError):
    """The transformer cannot reach the predictor (503, UNAVAILABLE)."""

    http_status = HTTPStatus.SERVICE_UNAVAILABLE
    status_code = grpc.StatusCode.UNAVAILABLE

    def __init__(self, host: str, reason: str):
        super().__init__(f"predictor at {host} is unavailable: {reason}")


class PredictorTimeout(ServingError):
    """The predictor did not answer within the transformer's timeout (504, DEADLINE_EXCEEDED)."""

    http_status = HTTPStatus.GATEWAY_TIMEOUT
    status_code = grpc.StatusCode.DEADLINE_EXCEEDED

    def __init__(self, host: str, timeout_s: float):
        super().__init__(f"predictor at {host} did not answer within {timeout_s:g} s")


class PredictorFailed(ServingError):
    """The predictor answered with an error the transformer cannot blame on the client (502)."""

    http_status = HTTPStatus.BAD_GATEWAY
    status_code = grpc.StatusCode.INTERNAL

    def __init__(self, host: str, reason: str):
        super().__init__(f"predictor at {host} failed: {reason}")


class ModelUnfit(ValueError):
    """A model directory the servers cannot serve; raised at start-up, never per request."""


class SettingRefused(ValueError):
    """A setting, or a file it names, that cannot serve: the server stops at start with the
    one-line reason and exit code 2, as for a bad flag."""


class ModelNotFound(ServingError):
    """A model name, or a version of it, that this server does not serve (404, NOT_FOUND)."""

    http_status = HTTPStatus.NOT_FOUND
    status_code = grpc.StatusCode.NOT_FOUND

    def __init__(self, name: str, served: dict[str, str], version: str | None = None):
        what = f"model {name!r}" + (f" version {version!r}" if version else "")
        serving = ", ".join(f"{n!r} version {v!r}" for n, v in sorted(served.items()))
        super().__init__(f"{what} is not served here; this server serves {serving or 'nothing'}")


class RepositoryDisabled(ServingError):
    """A model-repository call (load, unload) on a server started without it (403)."""

    http_status = HTTPStatus.FORBIDDEN
    status_code = grpc.StatusCode.PERMISSION_DENIED

    def __init__(self, action: str):
        super().__init__(
            f"model {action} is disabled on this server: the model it serves is fixed at start "
            "(an operator may allow it with --enable_model_repository true)"
        )
