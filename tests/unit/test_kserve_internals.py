"""The fence around KServe's internals (kserve_kit.serving): the installed KServe is the one
the kit was written against, and every private name the kit touches is still there.

A KServe upgrade that moves one fails here in milliseconds, naming it, rather than in the
SIGTERM chaos test or as a silently dropped fix.
"""

from __future__ import annotations

import importlib
import inspect
from importlib import metadata

import pytest

from kserve_kit import serving, serving_grpc

pytestmark = pytest.mark.unit


def resolve(module: str, qualified: str):
    target = importlib.import_module(module)
    for part in qualified.split("."):
        target = getattr(target, part)
    return target


def test_kserve_is_the_version_the_fence_was_written_for():
    assert metadata.version("kserve") == serving.KSERVE_VERSION, (
        "KServe changed: re-check every name in kserve_kit.serving.KSERVE_INTERNALS against "
        "the new release, then update KSERVE_VERSION"
    )


@pytest.mark.parametrize("module, name", serving.KSERVE_INTERNALS, ids=lambda x: str(x))
def test_each_touched_kserve_name_exists(module, name):
    resolve(module, name)


@pytest.mark.parametrize(
    "module, constructor, attribute", serving.KSERVE_INSTANCE_ATTRIBUTES, ids=lambda x: str(x)
)
def test_each_instance_attribute_is_still_set_by_kserve(module, constructor, attribute):
    source = inspect.getsource(resolve(module, constructor))
    assert f"{attribute} =" in source, f"{constructor} no longer sets {attribute}"


def test_the_fence_is_what_the_servers_use():
    """Every name the kit replaces in a KServe module is listed, so the list cannot drift."""
    source = inspect.getsource(serving)
    for assigned in ("InferenceServicer", "LoggingInterceptor", "aio"):
        assert f"grpc_server_module.{assigned} =" in source
        assert ("kserve.protocol.grpc.server", assigned) in serving.KSERVE_INTERNALS


def test_kserve_builds_its_grpc_server_through_the_module_aio():
    """GRPCAio reaches the server's options only while KServe calls `aio.server(...)`."""
    source = inspect.getsource(resolve("kserve.protocol.grpc.server", "GRPCServer.start"))
    assert "aio.server(" in source and "options=" in source


def test_connection_age_options_are_added_to_kserves_own():
    calls = []

    class FakeAio:
        def server(self, *args, **kwargs):
            calls.append(kwargs)

    options = serving_grpc.connection_age_options(30, 10)
    assert options == [
        ("grpc.max_connection_age_ms", 30000),
        ("grpc.max_connection_age_grace_ms", 10000),
    ]
    serving_grpc.GRPCAio(FakeAio(), options).server(None, options=[("grpc.a", 1)])
    assert calls == [{"options": [("grpc.a", 1), *options]}]
    assert serving_grpc.connection_age_options(0, 10) == []
