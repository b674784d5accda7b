"""The kit's KServe ModelServer: what it changes in KServe 0.21's server, and why.

Each class here replaces one part of KServe's server that answers a client wrongly:

- `KitDataPlane`: an unknown model or version is the kit's 404 (KServe logs its own with a full
  traceback at ERROR); request bytes that do not decode are the client's 400, not a 500; a JSON
  body sent without a Content-Type header (as NVIDIA's tritonclient sends it) is read as JSON
  instead of as a binary-tensor body without its header; model metadata carries `platform` and
  `versions`; an inference naming a version this server does not serve is refused.
- `KitRepositoryExtension`: KServe's model-repository extension (`/v2/repository/models/{m}/
  load|unload` and the gRPC twins) is on by default and unauthenticated, so anyone who can reach
  a server can unload its model. Off unless `--enable_model_repository true`; on, an unknown
  model is a 404 (KServe answered 503).
- `KitServicer` (in `kserve_kit.serving_grpc`, with `RequestGuard` and `GRPCAio`: the gRPC side
  of this fence, whose KServe names are listed here too): KServe's gRPC servicer drops
  `versions` from model metadata and ignores the version in ModelMetadata, ModelReady and
  ModelInfer.
- `install_versioned_routes`: KServe's REST `/v2/models/{m}/versions/{v}/...` routes answer 501.
- `RequestGuard`, in the place of KServe's gRPC `LoggingInterceptor`: a message that is not a
  valid protobuf is the client's INVALID_ARGUMENT (gRPC answers INTERNAL when a request does
  not deserialize); and no INFO line per call (`grpc method: ...`, with no status, time or
  request id: noise that cost about 5 % of the transformer's CPU per request).
- `kit_model_server()`: the drain fix (see its docstring), and the gRPC server's connection
  age: KServe builds its `grpc.aio.server` with message-size options only, so a client
  balancing over a headless Service would keep its connections to the old pods forever and never
  re-resolve. `GRPCAio` stands in for `grpc.aio` in KServe's server module and adds the kit's
  options (`grpc.max_connection_age_ms`, `grpc.max_connection_age_grace_ms`). The drain
  holds for one worker process, so the parsers refuse `--workers` above 1
  (`kserve_kit.cli.parse_or_exit`).
- `import_model_server()` and `adopt_args()`: KServe parses `sys.argv` when its server module is
  imported, and its server reads that module's `args`.
- `KitDataPlane.infer` also starts each request's trace span (`kserve_kit.tracing`): REST and
  gRPC inference both pass through it with their headers or metadata.

The kit's models describe themselves with two attributes, `version` and `platform`.
"""

# No `from __future__ import annotations`: FastAPI reads the route handlers' annotations at
# runtime, and they name classes imported inside a function.
import asyncio
import sys

from kserve_kit import tracing
from kserve_kit.errors import BadInput, ModelNotFound, RepositoryDisabled, ServingError
from kserve_kit.serving_grpc import GRPCAio, request_guard_class, servicer_class

# The KServe release whose internals this module was written against. Each name below is one
# this module (and kserve_kit.cli) replaces, wraps or reads; tests/unit/test_kserve_internals.py
# fails in milliseconds when an upgrade moves one, instead of a chaos test failing obscurely.
KSERVE_VERSION = "0.21.0"
KSERVE_INTERNALS = (
    ("kserve.model_server", "app"),  # error handlers, middleware and routes added to it
    ("kserve.model_server", "args"),  # module-level args its server reads: made ours
    ("kserve.model_server", "parser"),  # the parent of both servers' parsers
    ("kserve.model_server", "ModelServer._serve"),  # the drain fix wraps it
    ("kserve.model_server", "ModelServer.start"),  # builds RESTServer/GRPCServer from the two below
    ("kserve.protocol.rest.server", "RESTServer.create_application"),
    # replaced by a pass-through unless --access_log: per request it reads getrusage twice and
    # matches the path against every route, only to write a `kserve.trace` line
    ("kserve.protocol.rest.server", "TimingMiddleware"),
    ("kserve.protocol.grpc.server", "InferenceServicer"),  # replaced: KitServicer
    ("kserve.protocol.grpc.server", "LoggingInterceptor"),  # replaced: RequestGuard
    ("kserve.protocol.grpc.server", "GRPCServer.stop"),
    ("kserve.protocol.grpc.server", "GRPCServer.start"),  # builds aio.server(options=...)
    ("kserve.protocol.grpc.server", "aio"),  # replaced: GRPCAio adds the kit's server options
    ("kserve.protocol.grpc.servicer", "InferenceServicer.ModelInfer"),
    ("kserve.protocol.grpc.servicer", "InferenceServicer.ModelMetadata"),
    ("kserve.protocol.grpc.servicer", "InferenceServicer.ModelReady"),
    ("kserve.protocol.grpc.servicer", "InferenceServicer.RepositoryModelLoad"),
    ("kserve.protocol.grpc.servicer", "InferenceServicer.RepositoryModelUnload"),
    ("kserve.protocol.dataplane", "DataPlane.decode_inference_request"),
    ("kserve.protocol.dataplane", "DataPlane.get_model_from_registry"),
    ("kserve.protocol.dataplane", "DataPlane.get_model"),
    ("kserve.protocol.dataplane", "DataPlane.model_ready"),
    ("kserve.protocol.dataplane", "DataPlane.ready"),
    ("kserve.protocol.dataplane", "DataPlane.model_metadata"),
    ("kserve.protocol.dataplane", "DataPlane.metadata"),
    ("kserve.protocol.dataplane", "DataPlane.infer"),
    ("kserve.protocol.model_repository_extension", "ModelRepositoryExtension.load"),
    ("kserve.protocol.model_repository_extension", "ModelRepositoryExtension.unload"),
    ("kserve.protocol.rest.v2_endpoints", "V2Endpoints.infer"),
    ("kserve.protocol.rest.v2_endpoints", "V2Endpoints.model_metadata"),
    ("kserve.protocol.rest.v2_endpoints", "V2Endpoints.model_ready"),
    ("kserve.protocol.infer_type", "RequestedOutput"),
    ("kserve.constants.constants", "INFERENCE_CONTENT_LENGTH_HEADER"),
    ("kserve.logging", "KSERVE_LOGGER_FORMAT"),
    ("kserve.logging", "KSERVE_LOGGER_DATE_FORMAT"),
    ("uvicorn", "Server.shutdown"),  # the drain fix wraps the REST server's shutdown
)
# Attributes that KServe sets on instances (no class attribute to look up): checked in the
# constructors' source by the same test.
KSERVE_INSTANCE_ATTRIBUTES = (
    ("kserve.model_server", "ModelServer.__init__", "self._rest_server"),
    ("kserve.model_server", "ModelServer.__init__", "self._grpc_server"),
    ("kserve.model_server", "ModelServer.__init__", "self.dataplane"),
    ("kserve.model_server", "ModelServer.__init__", "self.model_repository_extension"),
    ("kserve.protocol.rest.server", "RESTServer.__init__", "self._server"),
    ("kserve.protocol.dataplane", "DataPlane.__init__", "self._model_registry"),
    ("kserve.protocol.grpc.servicer", "InferenceServicer.__init__", "self._data_plane"),
    (
        "kserve.protocol.model_repository_extension",
        "ModelRepositoryExtension.__init__",
        "self._model_registry",
    ),
)

REPOSITORY_EXTENSION = "model_repository_extension"


def import_model_server():
    """`kserve.model_server`, imported with this process's arguments hidden.

    KServe's module parses sys.argv with its own parser when first imported, where argparse
    would read another command's flags as abbreviations of its own (--grpc -> --grpc_port).
    """
    argv, sys.argv = sys.argv, sys.argv[:1]
    try:
        from kserve import model_server
    finally:
        sys.argv = argv
    return model_server


def adopt_args(args) -> None:
    """KServe's server reads its module-level `args` (gRPC message limits, logging): make them
    this command's, since `import_model_server` kept the command line from its import-time
    parse."""
    vars(import_model_server().args).update(vars(args))


def served_versions(registry) -> dict[str, str]:
    """{model name: the version it serves} for every model in a KServe registry."""
    return {name: getattr(m, "version", "") for name, m in registry.get_models().items()}


def _data_plane_class():
    from kserve.errors import InvalidInput
    from kserve.protocol.dataplane import DataPlane
    from kserve.protocol.infer_type import InferRequest

    class KitDataPlane(DataPlane):
        def __init__(self, model_registry, repository_enabled: bool):
            super().__init__(model_registry=model_registry)
            self.repository_enabled = repository_enabled

        def metadata(self) -> dict:
            metadata = super().metadata()
            if not self.repository_enabled:
                metadata["extensions"] = [
                    e for e in metadata["extensions"] if e != REPOSITORY_EXTENSION
                ]
            return metadata

        def check_model(self, name: str, version: str | None = None):
            """The model `name` serves, or the kit's 404 naming what is served."""
            model = self._model_registry.get_model(name)
            if model is None or (version and version != getattr(model, "version", None)):
                raise ModelNotFound(name, served_versions(self._model_registry), version)
            return model

        def get_model_from_registry(self, name: str):
            return self.check_model(name)

        async def get_model(self, name: str):
            self.check_model(name)
            return await super().get_model(name)

        async def ready(self) -> bool:
            # The server's readiness (the startup probe) is its own: KServe's asks the predictor
            # through its own one-channel client when the predictor health check is on, and
            # raises (a 500 carrying the RpcError) while no predictor answers.
            return True

        async def model_ready(self, model_name: str, disable_predictor_health_check=False):
            # KServe's own predictor check is replaced by the model's `dependencies_ready` (the
            # balanced hop); an inference asks with the check disabled, so it costs no call.
            model = self.check_model(model_name)
            ready = await super().model_ready(model_name, True)
            if disable_predictor_health_check:
                return ready
            return ready and await _dependencies_ready(model)

        async def model_metadata(self, model_name: str) -> dict:
            metadata = await super().model_metadata(model_name)
            model = self.check_model(model_name)
            metadata["platform"] = getattr(model, "platform", "")
            metadata["versions"] = [getattr(model, "version", "")]
            return metadata

        async def infer(self, model_name: str, request, headers=None):
            # REST and gRPC inference both pass here, with the HTTP headers or the gRPC
            # metadata: the one place the server span starts from the caller's trace context.
            with tracing.server_span(headers, {"kserve_kit.model": model_name}):
                if isinstance(request, InferRequest):
                    self.check_model(model_name, request.model_version or None)
                return await super().infer(model_name, request, headers)

        def decode_inference_request(self, body, headers, model_name):
            # KServe parses a binary-tensor body (`Inference-Header-Content-Length`) with int(),
            # struct and numpy.frombuffer: a header or length prefix that lies about sizes raised
            # ValueError or struct.error, answered with a 500. Only the client's bytes are parsed
            # here, so whatever fails is the client's 400.
            try:
                if isinstance(body, bytes) and _is_untyped_json(headers):
                    return _json_request(body, model_name)
                return super().decode_inference_request(body, headers, model_name)
            except InvalidInput as exc:
                raise BadInput(f"cannot decode the request: {exc.reason}") from None
            except ServingError:
                raise
            except Exception as exc:  # noqa: BLE001 - only the client's bytes are being parsed
                raise BadInput(f"cannot decode the request: {exc}") from None

    return KitDataPlane


async def _dependencies_ready(model) -> bool:
    """A model's `dependencies_ready()` (the transformer's: a predictor endpoint is ready), for
    the model's readiness (the readiness probe) only: KServe's `Model.healthy()` is also asked
    on every inference, where an unhealthy model is loaded again; and the server's
    `/v2/health/ready` (the startup probe) must not wait for the predictors to load."""
    check = getattr(model, "dependencies_ready", None)
    return True if check is None else await check()


def _is_untyped_json(headers) -> bool:
    """A body with neither a Content-Type nor the binary-tensor header: V2 REST is JSON."""
    from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER

    keys = {k.lower() for k in (headers or {})}
    return "content-type" not in keys and INFERENCE_CONTENT_LENGTH_HEADER not in keys


def _json_request(body: bytes, model_name: str):
    from kserve.protocol.infer_type import InferRequest
    from kserve.protocol.rest.v2_datamodels import InferenceRequest
    from pydantic import ValidationError

    try:
        parsed = InferenceRequest.model_validate_json(body)
    except ValidationError as exc:
        problems = sorted(
            {f"{'.'.join(map(str, e['loc'][:3])) or 'body'}: {e['msg']}" for e in exc.errors()}
        )
        raise BadInput(
            "not a V2 inference request (read as JSON: no Content-Type header): "
            + "; ".join(problems[:5])
        ) from None
    return InferRequest.from_inference_request(parsed, model_name)


def _repository_extension_class():
    from kserve.protocol.model_repository_extension import ModelRepositoryExtension

    class KitRepositoryExtension(ModelRepositoryExtension):
        def __init__(self, model_registry, enabled: bool):
            super().__init__(model_registry=model_registry)
            self.enabled = enabled

        def _check(self, action: str, name: str) -> None:
            if not self.enabled:
                raise RepositoryDisabled(action)
            if self._model_registry.get_model(name) is None:
                raise ModelNotFound(name, served_versions(self._model_registry))

        async def load(self, model_name: str) -> None:
            self._check("load", model_name)
            await super().load(model_name)

        async def unload(self, model_name: str) -> None:
            self._check("unload", model_name)
            await super().unload(model_name)

    return KitRepositoryExtension


def install_versioned_routes(app, dataplane) -> None:
    """Metadata, readiness and inference of a model version: `/v2/models/{m}/versions/{v}/...`,
    and KServe's `?model_version=v` query on the unversioned routes. The version served is
    served; another is a 404 naming it (KServe answered 501 to both forms).

    Added before KServe adds its own routes when the server starts, so these are matched first;
    the unversioned ones stay out of the OpenAPI schema, where KServe's describe them already.
    """
    from typing import Optional, Union

    from fastapi import Request, Response
    from kserve.protocol.rest.v2_datamodels import InferenceRequest
    from kserve.protocol.rest.v2_endpoints import V2Endpoints

    endpoints = V2Endpoints(dataplane)

    async def model_metadata(model_name: str, model_version: Optional[str] = None):  # noqa: UP045
        dataplane.check_model(model_name, model_version)
        return await endpoints.model_metadata(model_name)

    async def model_ready(model_name: str, model_version: Optional[str] = None):  # noqa: UP045
        dataplane.check_model(model_name, model_version)
        return await endpoints.model_ready(model_name)

    async def infer(
        raw_request: Request,
        raw_response: Response,
        model_name: str,
        request_body: Union[InferenceRequest, bytes],  # noqa: UP007 - FastAPI reads this form
        model_version: Optional[str] = None,  # noqa: UP045
    ):
        dataplane.check_model(model_name, model_version)
        return await endpoints.infer(raw_request, raw_response, model_name, request_body)

    for prefix, documented in (
        ("/v2/models/{model_name}", False),
        ("/v2/models/{model_name}/versions/{model_version}", True),
    ):
        routes = (("", model_metadata, "GET"), ("/ready", model_ready, "GET"))
        for suffix, handler, method in (*routes, ("/infer", infer, "POST")):
            app.add_api_route(
                prefix + suffix,
                handler,
                methods=[method],
                response_model=None,
                include_in_schema=documented,
                tags=["V2"],
            )


class _Untimed:
    """Stands in for KServe's TimingMiddleware when its log lines are off: passes through."""

    def __init__(self, app, **_options):
        self.app = app

    async def __call__(self, scope, receive, send):
        await self.app(scope, receive, send)


def kit_model_server(repository_enabled: bool, grpc_options=(), request_timing: bool = True):
    """KServe's ModelServer with the parts above, and a SIGTERM that drains REST and gRPC
    together.

    Draining, what KServe 0.21 does with one worker: uvicorn catches SIGTERM, stops accepting,
    and waits up to the grace period for the requests it holds, while the gRPC server still
    takes new calls. Only then does uvicorn hand the signal on to `ModelServer.stop`, which
    starts the gRPC drain and, without waiting for it, unloads the models, failing the gRPC
    calls still in flight (the predictor's batcher is closed under them). Here the gRPC drain
    starts with uvicorn's, and both end before the models are unloaded: one grace period in all.

    `request_timing=False` (--access_log off) drops KServe's per-request timing middleware,
    whose only output is the `kserve.trace` lines that the log configuration then drops.
    """
    from kserve import ModelServer
    from kserve import model_server as model_server_module
    from kserve.protocol.grpc import server as grpc_server_module
    from kserve.protocol.rest import server as rest_server_module

    if not request_timing:  # RESTServer._add_middlewares reads the module global at start
        rest_server_module.TimingMiddleware = _Untimed

    # GRPCServer.start builds its servicer and its interceptors from these module globals;
    # there is no parameter for either.
    grpc_server_module.InferenceServicer = servicer_class()
    grpc_server_module.LoggingInterceptor = request_guard_class()
    import grpc.aio

    grpc_server_module.aio = GRPCAio(grpc.aio, grpc_options)
    data_plane_class = _data_plane_class()
    repository_class = _repository_extension_class()

    class KitModelServer(ModelServer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dataplane = data_plane_class(self.registered_models, repository_enabled)
            self.model_repository_extension = repository_class(
                self.registered_models, repository_enabled
            )
            install_versioned_routes(model_server_module.app, self.dataplane)

        async def _serve(self):
            uvicorn_server = getattr(self._rest_server, "_server", None)
            if uvicorn_server is not None and self._grpc_server is not None:
                shutdown = uvicorn_server.shutdown

                async def shutdown_both(sockets=None):
                    grpc_drained = asyncio.ensure_future(self._grpc_server.stop())
                    try:
                        await shutdown(sockets)
                    finally:
                        await grpc_drained

                uvicorn_server.shutdown = shutdown_both
            await super()._serve()

    return KitModelServer
