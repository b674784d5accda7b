"""The gRPC side of the fence around KServe's server (`kserve_kit.serving`, whose docstring
says what each part works around and whose KSERVE_INTERNALS lists the KServe names used here):
the servicer, the request guard in the place of KServe's logging interceptor, and `grpc.aio`
with the kit's server options."""

# No `from __future__ import annotations`, as in kserve_kit.serving.

from kserve_kit.errors import BadInput, ServingError
from kserve_kit.metrics import log_refusal


def servicer_class():
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc.servicer import InferenceServicer

    def logged(method):
        """gRPC handlers log a refusal as one line, as the REST error handler does."""

        async def handler(self, request, context):
            try:
                return await method(self, request, context)
            except ServingError as exc:
                inference = method.__name__ == "ModelInfer"
                log_refusal("grpc", f"gRPC {method.__name__}", exc, inference)
                raise

        handler.__name__ = method.__name__
        return handler

    class KitServicer(InferenceServicer):
        @logged
        async def ModelMetadata(self, request, context):  # noqa: N802 - gRPC's method name
            self._data_plane.check_model(request.name, request.version or None)
            metadata = await self._data_plane.model_metadata(model_name=request.name)
            return pb.ModelMetadataResponse(
                name=metadata["name"],
                versions=metadata["versions"],
                platform=metadata["platform"],
                inputs=metadata["inputs"],
                outputs=metadata["outputs"],
            )

        @logged
        async def ModelReady(self, request, context):  # noqa: N802
            self._data_plane.check_model(request.name, request.version or None)
            return await super().ModelReady(request, context)

        @logged
        async def ModelInfer(self, request, context):  # noqa: N802
            from kserve.errors import InvalidInput

            try:
                return await super().ModelInfer(request, context)
            except InvalidInput as exc:  # KServe's own checks of the message's layout
                raise BadInput(exc.reason) from None

        @logged
        async def RepositoryModelLoad(self, request, context):  # noqa: N802
            return await super().RepositoryModelLoad(request, context)

        @logged
        async def RepositoryModelUnload(self, request, context):  # noqa: N802
            return await super().RepositoryModelUnload(request, context)

    return KitServicer


class _Undecodable:
    """What a gRPC request that is not a valid protobuf message deserializes to."""

    def __init__(self, reason: str):
        self.reason = reason


def request_guard_class():
    import grpc
    from grpc.aio import ServerInterceptor

    class RequestGuard(ServerInterceptor):
        async def intercept_service(self, continuation, handler_call_details):
            handler = await continuation(handler_call_details)
            if handler is None or handler.unary_unary is None or not handler.request_deserializer:
                return handler
            deserialize, behaviour = handler.request_deserializer, handler.unary_unary
            method = handler_call_details.method.rsplit("/", 1)[-1]

            def safe_deserialize(raw: bytes):
                try:
                    return deserialize(raw)
                except Exception as exc:  # noqa: BLE001 - only the client's bytes are parsed
                    return _Undecodable(str(exc) or type(exc).__name__)

            async def guarded(request, context):
                if isinstance(request, _Undecodable):
                    error = BadInput(
                        f"the {method} request is not a valid protobuf message: {request.reason}"
                    )
                    log_refusal("grpc", f"gRPC {method}", error, method == "ModelInfer")
                    await context.abort(error.status_code, error.message)
                return await behaviour(request, context)

            return grpc.unary_unary_rpc_method_handler(
                guarded,
                request_deserializer=safe_deserialize,
                response_serializer=handler.response_serializer,
            )

    return RequestGuard


class GRPCAio:
    """`grpc.aio` as KServe's gRPC server module sees it, with `extra_options` added to every
    `server(options=...)` it builds; everything else is grpc.aio's own."""

    def __init__(self, aio, extra_options):
        self._aio = aio
        self.extra_options = list(extra_options)

    def server(self, *args, options=None, **kwargs):
        merged = [*(options or ()), *self.extra_options]
        return self._aio.server(*args, options=merged, **kwargs)

    def __getattr__(self, name):
        return getattr(self._aio, name)


def connection_age_options(max_age_s: float, grace_s: float) -> list[tuple[str, int]]:
    """gRPC server options that close every connection after about `max_age_s` (gRPC adds
    +-10 % jitter) with a GOAWAY, letting calls in flight finish for `grace_s`; 0: no limit."""
    if not max_age_s:
        return []
    return [
        ("grpc.max_connection_age_ms", int(max_age_s * 1000)),
        ("grpc.max_connection_age_grace_ms", int(grace_s * 1000)),
    ]
