"""The kit's import shape (tests/support/layers.py): no cycle, no import across or up a floor.
The checker is shown to catch both on a small tree written for the test."""

from __future__ import annotations

import pytest

from tests.support.layers import FLOORS, cycles, import_graph, upward_imports
from tests.support.servers import REPO

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def graph():
    return import_graph(REPO, FLOORS)


def test_the_kit_has_no_import_cycle(graph):
    assert cycles(graph) == []


def test_no_package_imports_across_or_up_a_floor(graph):
    assert upward_imports(graph) == []


def test_the_graph_sees_deferred_and_relative_imports(graph):
    """The graph is not empty by accident: the imports the layering rests on are in it."""
    assert "offline.scoring" in graph["offline.calibrate"]
    assert "predictor.config" in graph["offline.scoring"]
    assert "predictor.runtime" in graph["offline.scoring"]  # imported inside a method
    assert "kserve_kit.policy" in graph["transformer.model"]


def write(root, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_checker_finds_a_cycle_through_a_deferred_import(tmp_path):
    write(
        tmp_path,
        {
            "offline/__init__.py": "",
            "offline/a.py": "from offline.b import thing\n",
            "offline/b.py": "def f():\n    from offline import a\n",
            "offline/c.py": "from . import a\n",
        },
    )
    graph = import_graph(tmp_path, ["offline"])
    assert graph["offline.c"] == {"offline.a"}
    assert cycles(graph) == [["offline.a", "offline.b"]]


def test_the_checker_finds_an_upward_and_a_sideways_import(tmp_path):
    write(
        tmp_path,
        {
            "kserve_kit/__init__.py": "",
            "kserve_kit/demo.py": "def build():\n    from offline.calibrate import calibrate\n",
            "offline/__init__.py": "",
            "offline/calibrate.py": "import kserve_kit.demo\n",
            "predictor/__init__.py": "",
            "predictor/model.py": "from transformer.hop import PredictorClient\n",
            "transformer/__init__.py": "",
            "transformer/hop.py": "",
        },
    )
    graph = import_graph(tmp_path, ["kserve_kit", "offline", "predictor", "transformer"])
    assert upward_imports(graph) == [
        "kserve_kit.demo -> offline.calibrate",
        "predictor.model -> transformer.hop",
    ]
    assert cycles(graph) == [["kserve_kit.demo", "offline.calibrate"]]


def test_no_module_of_the_kit_is_over_500_lines():
    """A module past 500 lines holds more than one concern: split it along them."""
    long = {
        str(path.relative_to(REPO)): n
        for package in ("kserve_kit", "predictor", "transformer", "offline", "demo")
        for path in sorted((REPO / package).rglob("*.py"))
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 500
    }
    assert long == {}
