"""Each chart value that renders a server flag is tied to a real flag of that server's parser:
the value's name spells the flag (`maxBatchSize` <-> `--max_batch_size`) unless listed below,
its schema enum is the parser's choices, the default renders what the server would do anyway,
and a changed value reaches the server as that flag with that value."""

from __future__ import annotations

import copy
import functools
import json
import re

import pytest
import render
from conftest import container, inference_services

pytestmark = pytest.mark.manifests

DEFAULTS = render.load_values(render.CHART / "values.yaml")
SCHEMA = json.loads((render.CHART / "values.schema.json").read_text())
COMPONENTS = ("predictor", "transformer")

# predictor.* / transformer.* values that pass no flag to their server: KServe's component
# fields, the container's image, resources, volumes and pod fields, and the free-form extras.
NOT_FLAGS = {
    "image",
    "minReplicas",
    "maxReplicas",
    "scaleMetric",
    "scaleTarget",
    "timeout",
    "resources",
    "scratchSizeLimit",
    "extraArgs",
    "extraEnv",
    "tolerations",
    # Makes the headless Service and changes the transformer's --predictor_host
    # (test_consistency.py, test_standard_mode_balances_the_hop_over_every_predictor_pod).
    "headlessService",
}
# Values whose flag is not their name in snake_case (KServe named the flag; the value is the
# shorter spelling the chart had before this test).
RENAMED = {("transformer", "predictorTimeoutSeconds"): "--predictor_request_timeout_seconds"}
# Values outside predictor.* / transformer.* that render a flag, with the servers that get it
# and the values that make the chart render it at all.
ELSEWHERE = {
    ("modelName",): ("--model_name", COMPONENTS, {}),
    ("drain", "gracePeriodSeconds"): ("--grace_period", COMPONENTS, {}),
    ("gpu", "dtype"): ("--dtype", ("predictor",), {"gpu": {"enabled": True}}),
    ("policy", "reloadIntervalSeconds"): (
        "--policy_reload_interval_seconds",
        ("transformer",),
        render.load_values(render.CHART / "ci" / "policy-values.yaml"),
    ),
}
# Choices of a parser that the schema leaves out on purpose.
NOT_OFFERED = {
    # KServe's V1 protocol: the kit's predictor serves V2 only.
    ("transformer", "predictorProtocol"): {"v1"},
    # gpu.dtype names the type a GPU serves in; auto would pick float16 there anyway.
    ("gpu", "dtype"): {"auto"},
}
# Values whose empty default does not leave the flag out: the chart derives one.
DERIVED_WHEN_EMPTY = {("transformer", "predictorProtocol")}  # grpc-v2 in Standard mode
# Probes that the generic rule (below, probe_values) would not make telling enough.
PROBES = {
    # Large enough that a float rendering (1.6777216e+07) would show.
    ("predictor", "maxRequestBytes"): [16 * 1024 * 1024],
    ("transformer", "maxRequestBytes"): [16 * 1024 * 1024],
}


def parser_of(component: str):
    if component == "predictor":
        from predictor.config import build_parser
    else:
        from transformer.config import build_parser
    return build_parser()


def parse(component: str, args: list[str]):
    """The namespace of `args`, validated as the server validates them at start."""
    if component == "predictor":
        from predictor.config import PredictorSettings as Config
    else:
        from transformer.config import TransformerSettings as Config
    return Config.parse(args)[0]


@functools.cache
def options(component: str) -> dict:
    return {
        opt: action for action in parser_of(component)._actions for opt in action.option_strings
    }


def snake(name: str) -> str:
    return "--" + re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def schema_at(path: tuple[str, ...]) -> dict:
    node = SCHEMA
    for key in path:
        node = resolve(node)["properties"][key]
    return resolve(node)


def resolve(node: dict) -> dict:
    while "$ref" in node:
        target = SCHEMA
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def default_at(path: tuple[str, ...]):
    node = DEFAULTS
    for key in path:
        node = node[key]
    return node


def ties() -> list[tuple[tuple[str, ...], str, tuple[str, ...], dict]]:
    """(value path, flag, servers, values that switch it on) for every value that renders a flag."""
    out = []
    for component in COMPONENTS:
        for key in DEFAULTS[component]:
            if key not in NOT_FLAGS:
                flag = RENAMED.get((component, key), snake(key))
                out.append(((component, key), flag, (component,), {}))
    out += [(path, flag, servers, context) for path, (flag, servers, context) in ELSEWHERE.items()]
    return out


TIES = ties()


def tie_id(tie) -> str:
    return ".".join(tie[0])


def with_value(values: dict, path: tuple[str, ...], value) -> dict:
    values = copy.deepcopy(values)
    node = values
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return values


def rendered_args(values: dict) -> dict[str, list[str]]:
    docs = render.documents(render.chart_manifest(render.render_chart(values)))
    (isvc,) = inference_services(docs)
    return {component: container(isvc, component)["args"] for component in COMPONENTS}


def passed(args: list[str], flag: str) -> bool:
    return any(a == flag or a.startswith(f"{flag}=") for a in args)


def same(parsed, value) -> bool:
    """Whether the parser read `value`; a flag without a type (--confidence_threshold, checked
    later in from_namespace) stays the string it was given."""
    if isinstance(parsed, str) and isinstance(value, (int, float)) and not isinstance(value, bool):
        parsed = type(value)(parsed)
    return parsed == value and isinstance(parsed, bool) == isinstance(value, bool)


def probe_values(path: tuple[str, ...]) -> list:
    """Values other than the default: every choice of an enum, the other boolean, a number
    off the default, a string with a suffix."""
    if path in PROBES:
        return PROBES[path]
    default, schema = default_at(path), schema_at(path)
    if "enum" in schema:
        return [v for v in schema["enum"] if v not in ("", default)]
    if isinstance(default, bool):
        return [not default]
    if schema["type"] == "integer":
        return [default + 1]
    if schema["type"] == "number":
        return [default / 2 if default else 0.5]
    return [f"{default}-probe"]


@pytest.mark.parametrize("tie", TIES, ids=tie_id)
def test_each_value_names_a_flag_of_its_server(tie):
    path, flag, servers, _ = tie
    for server in servers:
        assert flag in options(server), f"{'.'.join(path)}: {server} has no {flag}"


def test_exceptions_name_real_values():
    for key in NOT_FLAGS:
        assert any(key in DEFAULTS[c] for c in COMPONENTS), f"NOT_FLAGS: no value {key}"
    for path in [*RENAMED, *ELSEWHERE, *NOT_OFFERED, *DERIVED_WHEN_EMPTY, *PROBES]:
        default_at(path)


@pytest.mark.parametrize("tie", TIES, ids=tie_id)
def test_schema_enum_is_the_parsers_choices(tie):
    path, flag, servers, _ = tie
    enum = schema_at(path).get("enum")
    for server in servers:
        choices = options(server)[flag].choices
        if choices is None:
            assert enum is None, f"{'.'.join(path)} has an enum, {flag} takes any value"
            continue
        assert enum is not None, f"{'.'.join(path)}: {flag} takes only {list(choices)}"
        offered = set(enum) - {""}
        assert offered == set(choices) - NOT_OFFERED.get(path, set()), ".".join(path)
        # Empty is offered exactly where it leaves the server's (or the chart's) default.
        assert ("" in enum) == (default_at(path) == ""), ".".join(path)


@pytest.mark.parametrize("tie", TIES, ids=tie_id)
def test_default_renders_what_the_server_would_do_anyway(tie):
    path, flag, servers, context = tie
    default = default_at(path)
    args = rendered_args(context)
    for server in servers:
        # "" and 0 mean "not passed"; False is 0 in Python but a value of its own here.
        if default in ("", 0) and default is not False and path not in DERIVED_WHEN_EMPTY:
            assert not passed(args[server], flag), f"{'.'.join(path)} empty, {flag} passed"
        elif path not in DERIVED_WHEN_EMPTY:
            dest = options(server)[flag].dest
            assert same(getattr(parse(server, args[server]), dest), default), ".".join(path)


@pytest.mark.parametrize("tie", TIES, ids=tie_id)
def test_a_changed_value_reaches_its_server_as_the_flag(tie):
    path, flag, servers, context = tie
    for value in probe_values(path):
        args = rendered_args(with_value(context, path, value))
        for server in servers:
            dest = options(server)[flag].dest
            assert same(getattr(parse(server, args[server]), dest), value), (path, value, args)
            assert passed(args[server], flag) or value == options(server)[flag].default
