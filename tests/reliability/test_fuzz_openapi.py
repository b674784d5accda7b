"""The whole REST surface of both servers, driven by their own `/openapi.json` through the
third-party fuzzer schemathesis: requests that fit the schema and requests that break it, for
every route the server publishes (health, metadata, infer, the model repository, V1...).

No answer may be a 5xx or carry a traceback, and the server still serves its model afterwards:
an anonymous `POST /v2/repository/models/{m}/unload` among the generated calls must not take
the model away. Derandomized; KIT_FUZZ_EXAMPLES sets the count per server and mode.
"""

from __future__ import annotations

from collections import Counter

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation.modes import GenerationMode

from tests.reliability.conftest import FUZZ_EXAMPLES
from tests.support.http import get

pytestmark = pytest.mark.reliability


def fuzz(server, mode: GenerationMode, path_parameters: dict) -> tuple[Counter, set[str]]:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json", timeout=10)
    statuses: Counter = Counter()
    routes: set[str] = set()
    session = requests.Session()

    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(schema.as_strategy(generation_mode=mode, path_parameters=path_parameters))
    def check(case):
        response = case.call(base_url=server.url, session=session, timeout=30)
        statuses[response.status_code] += 1
        routes.add(f"{case.method} {case.operation.path}")
        described = f"{case.method} {case.formatted_path} -> {response.status_code}"
        assert response.status_code < 500, f"{described}: {response.text[:300]}"
        assert "Traceback" not in response.text and 'File "' not in response.text, described

    check()
    return statuses, routes


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("role", ["transformer", "predictor"])
def test_the_openapi_surface_never_answers_5xx(chain, role, mode):
    transformer, predictor = chain
    server = transformer if role == "transformer" else predictor
    # Data that fits the schema goes to the served model, so that it reaches the model (and an
    # unload names it); data that breaks the schema goes anywhere.
    served = {"model_name": "text-classifier"} if mode == GenerationMode.POSITIVE else {}
    statuses, routes = fuzz(server, mode, served)
    print(
        f"openapi fuzz {role} {mode.value}: {sum(statuses.values())} requests over "
        f"{len(routes)} routes, statuses {dict(sorted(statuses.items()))}"
    )
    assert sum(statuses.values()) >= FUZZ_EXAMPLES
    if mode == GenerationMode.POSITIVE:
        assert any("unload" in r for r in routes), routes  # the dangerous route was tried
        assert statuses[200] > 0, statuses
    for s in (transformer, predictor):
        assert get(f"{s.url}/v2/health/ready")[0] == 200
        assert get(f"{s.url}/v2/models/text-classifier/ready")[0] == 200
