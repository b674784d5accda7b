"""What both servers' command lines share: KServe's own parser as the parent, the kit's
defaults, and one way to start a `kserve.ModelServer` from parsed arguments."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from kserve_kit.contract import DEFAULT_MODEL_NAME
from kserve_kit.logs import LOG_FORMATS, configure_kit_logging, configure_server_logging
from kserve_kit.metrics import count_request, log_refusal
from kserve_kit.serving import adopt_args, import_model_server, kit_model_server
from kserve_kit.serving_grpc import connection_age_options

# Above gRPC's own 8 MiB message limit REST would take what gRPC refuses; keep them equal.
DEFAULT_MAX_REQUEST_BYTES = 8 * 1024 * 1024


def base_parser(description: str) -> argparse.ArgumentParser:
    """A parser that knows KServe's ModelServer flags plus the flags both servers share."""
    model_server = import_model_server()

    # No abbreviations: a misspelt flag in a manifest must fail, not match a longer one.
    parser = argparse.ArgumentParser(
        description=description, parents=[model_server.parser], allow_abbrev=False
    )
    parser.set_defaults(model_name=DEFAULT_MODEL_NAME)
    add_model_dir_argument(parser)
    # KServe's ModelServer takes a grace period but its parser has no flag for it.
    parser.add_argument(
        "--grace_period",
        type=positive(int),
        default=30,
        help="seconds a SIGTERM'd server keeps serving requests already accepted (REST and gRPC); "
        "keep it below the pod's terminationGracePeriodSeconds",
    )
    parser.add_argument(
        "--max_request_bytes",
        type=positive(int),
        default=DEFAULT_MAX_REQUEST_BYTES,
        help="largest REST request body; a larger one is refused with 413 before it is read",
    )
    parser.add_argument(
        "--access_log",
        type=str2bool,
        default=False,
        help="one line per request (uvicorn's access log and KServe's timing lines); off, the "
        "log holds start-up, refusals (one line each), faults and shutdown",
    )
    parser.add_argument(
        "--log_format",
        choices=LOG_FORMATS,
        default="text",
        help="text: KServe's format; json: one JSON object per line",
    )
    parser.add_argument(
        "--enable_model_repository",
        type=str2bool,
        default=False,
        help="serve KServe's model-repository extension (load and unload over REST and gRPC); "
        "off, those calls answer 403: anyone who reaches the port could unload the model",
    )
    return parser


def add_model_dir_argument(parser: argparse.ArgumentParser) -> None:
    """--model_dir: the servers' and the in-process commands' (offline.batch, calibrate)."""
    parser.add_argument(
        "--model_dir",
        default="/mnt/models",
        help="Hugging Face model directory (KServe's storage initializer mounts it at /mnt/models)",
    )


def parse_or_exit(parser: argparse.ArgumentParser, argv: Sequence[str] | None, check) -> tuple:
    """Parse `argv` and validate with `check(args)`, which raises ValueError with a reason.
    A bad value stops the process with that one-line reason (argparse's exit code 2)."""
    args = parser.parse_args(argv)
    try:
        if getattr(args, "workers", 1) > 1:
            raise ValueError(
                f"--workers {args.workers}: the kit serves from one process (its drain of REST "
                "and gRPC on SIGTERM and the predictor's batcher live there); run more replicas"
            )
        return args, check(args)
    except ValueError as exc:
        parser.error(str(exc))


def positive(kind):
    """An argparse type: a number of `kind` greater than zero."""

    def convert(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
        return value

    convert.__name__ = kind.__name__
    return convert


def str2bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def install_error_handlers() -> None:
    """Answer the kit's errors with their own status and a one-line JSON message.

    KServe maps only its own exceptions; everything else would become a 500. Starlette picks
    the most specific handler, so this one wins over KServe's catch-all.
    """
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from kserve import model_server
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from kserve_kit.errors import ServingError

    async def handle(request, exc: ServingError) -> JSONResponse:
        path = request.url.path
        log_refusal("rest", f"{request.method} {path}", exc, path.endswith("/infer"))
        return JSONResponse(status_code=int(exc.http_status), content={"error": exc.message})

    async def handle_unparsable(_request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default echoes the whole body back; name the problems instead.
        problems = sorted(
            {f"{'.'.join(map(str, e['loc'][1:3]))}: {e['msg']}" for e in exc.errors()}
        )
        return JSONResponse(
            status_code=400,
            content={"error": "not a V2 inference request: " + "; ".join(problems[:5])},
        )

    async def handle_http(_request, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI's own refusals (a body it cannot parse, an unknown route) in the kit's shape.
        return JSONResponse(
            status_code=exc.status_code, content={"error": str(exc.detail)}, headers=exc.headers
        )

    model_server.app.add_exception_handler(ServingError, handle)
    model_server.app.add_exception_handler(RequestValidationError, handle_unparsable)
    model_server.app.add_exception_handler(StarletteHTTPException, handle_http)


class BodyLimit:
    """Pure ASGI middleware: a request body above `max_bytes` gets a 413, never read into memory.

    A declared Content-Length above the limit is refused before the app runs, without reading a
    byte of the body. A body without one (chunked) is counted as it streams: once past the limit
    the 413 goes out, the app's read fails, and whatever the app answers after that is dropped.
    """

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            return await self._refuse(scope, send, f"{declared} bytes declared")

        received = 0
        refused = False

        async def counting_receive():
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes and not refused:
                    refused = True
                    await self._refuse(scope, send, f"more than {self.max_bytes} bytes sent")
            if refused:
                raise _BodyLimitExceeded
            return message

        async def guarded_send(message):
            if not refused:
                await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not refused:
                raise

    async def _refuse(self, scope, send, what: str) -> None:
        if scope.get("path", "").endswith("/infer"):
            count_request("rest", 413, "too_large")
        body = json.dumps(
            {
                "error": f"request body too large: {what}, the limit is {self.max_bytes} bytes "
                "(--max_request_bytes)"
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),  # the rest of the body is not worth reading
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _BodyLimitExceeded(Exception):
    """Raised into the app's body read once the 413 has gone out."""


def _content_length(scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the HTTP parser has refused malformed ones already
    return None


def install_body_limit(max_bytes: int) -> None:
    """Put `BodyLimit` on KServe's app; outermost but for what KServe adds when it starts."""
    from kserve import model_server

    model_server.app.add_middleware(BodyLimit, max_bytes=max_bytes)


def load_and_serve(args: argparse.Namespace, component: str, build) -> None:
    """Build the model with `build()`, load it, and serve it (blocks).

    A model directory the server cannot serve (`ModelUnfit`) or a decision policy it cannot
    apply (`PolicyError`, exit 2) stops the process at start with a one-line reason, before any
    port is opened, so the pod fails visibly instead of serving 500s.
    """
    from kserve_kit import tracing
    from kserve_kit.errors import ModelUnfit, SettingRefused
    from kserve_kit.policy import PolicyError

    if args.configure_logging:
        configure_kit_logging()
    try:
        tracing.configure(component)  # off unless OTEL_* configures an exporter
    except tracing.TracingConfigError as exc:
        print(f"{component}: error: {exc}", file=sys.stderr)
        sys.exit(2)
    try:
        model = build()
        model.load()
    except ModelUnfit as exc:
        logging.getLogger(component).error("cannot serve %s: %s", args.model_dir, exc)
        sys.exit(f"{component}: {exc}")
    except (PolicyError, SettingRefused) as exc:  # argparse's exit code for a bad setting
        print(f"{component}: error: {exc}", file=sys.stderr)
        sys.exit(2)
    start_server(args, model)


def start_server(args: argparse.Namespace, model, predictor_config=None) -> None:
    """Register `model` and serve it with the ports and options from `args` (blocks)."""
    install_error_handlers()
    install_body_limit(args.max_request_bytes)
    adopt_args(args)

    # The predictor's connection age (predictor.config); the transformer's server sets none.
    max_age_s = getattr(args, "grpc_max_connection_age_seconds", 0)
    age_grace_s = getattr(args, "grpc_max_connection_age_grace_seconds", None)
    grpc_options = connection_age_options(
        max_age_s, args.grace_period if age_grace_s is None else age_grace_s
    )
    server = kit_model_server(
        args.enable_model_repository, grpc_options, request_timing=args.access_log
    )(
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        workers=args.workers,
        max_threads=args.max_threads,
        max_asyncio_workers=args.max_asyncio_workers,
        enable_grpc=args.enable_grpc,
        enable_docs_url=args.enable_docs_url,
        enable_latency_logging=args.enable_latency_logging,
        access_log_format=args.access_log_format,
        event_loop=args.event_loop,
        timeout_keep_alive=args.timeout_keep_alive,
        grace_period=args.grace_period,
        predictor_config=predictor_config,
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
    )
    configure_server_logging(args.access_log, args.log_format)
    server.start([model])
