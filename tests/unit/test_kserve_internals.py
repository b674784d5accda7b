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

from kserve_kit import serving

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
    for assigned in ("InferenceServicer", "LoggingInterceptor"):
        assert f"grpc_server_module.{assigned} =" in source
        assert ("kserve.protocol.grpc.server", assigned) in serving.KSERVE_INTERNALS
