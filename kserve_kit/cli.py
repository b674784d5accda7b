"""What both servers' command lines share: KServe's own parser as the parent, the kit's
defaults, and one way to start a `kserve.ModelServer` from parsed arguments."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from kserve_kit.contract import DEFAULT_MODEL_NAME


def base_parser(description: str) -> argparse.ArgumentParser:
    """A parser that knows KServe's ModelServer flags plus the flags both servers share."""
    # Imported here: kserve.model_server parses sys.argv when first imported.
    from kserve import model_server

    # No abbreviations: a misspelt flag in a manifest must fail, not match a longer one.
    parser = argparse.ArgumentParser(
        description=description, parents=[model_server.parser], allow_abbrev=False
    )
    parser.set_defaults(model_name=DEFAULT_MODEL_NAME)
    parser.add_argument(
        "--model_dir",
        default="/mnt/models",
        help="Hugging Face model directory (KServe's storage initializer mounts it at /mnt/models)",
    )
    return parser


def parse_or_exit(parser: argparse.ArgumentParser, argv: Sequence[str] | None, check) -> tuple:
    """Parse `argv` and validate with `check(args)`, which raises ValueError with a reason.
    A bad value stops the process with that one-line reason (argparse's exit code 2)."""
    args = parser.parse_args(argv)
    try:
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
    from fastapi.responses import JSONResponse
    from kserve import model_server

    from kserve_kit.errors import ServingError

    from fastapi.exceptions import RequestValidationError

    async def handle(_request, exc: ServingError) -> JSONResponse:
        return JSONResponse(status_code=int(exc.http_status), content={"error": exc.message})

    async def handle_unparsable(_request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default echoes the whole body back; name the problems instead.
        problems = sorted({f"{'.'.join(map(str, e['loc'][1:3]))}: {e['msg']}" for e in exc.errors()})
        return JSONResponse(
            status_code=400,
            content={"error": "not a V2 inference request: " + "; ".join(problems[:5])},
        )

    model_server.app.add_exception_handler(ServingError, handle)
    model_server.app.add_exception_handler(RequestValidationError, handle_unparsable)


def start_server(args: argparse.Namespace, model, predictor_config=None) -> None:
    """Register `model` and serve it with the ports and options from `args` (blocks)."""
    from kserve import ModelServer

    install_error_handlers()

    ModelServer(
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
        predictor_config=predictor_config,
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
    ).start([model])
