"""Shared fixtures: the model directories every tier uses."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kserve_kit.cli import import_model_server

# kserve.model_server parses sys.argv when first imported, and argparse would read pytest's own
# options as abbreviations of its flags (--timeout -> --timeout-keep-alive): import it hidden.
import_model_server()

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A random 2-layer BERT with the MiniLM tokenizer and labels negative/neutral/positive."""
    pytest.importorskip("torch", reason="building the tiny model needs the predictor extra")
    from demo.build import build_tiny

    out = tmp_path_factory.mktemp("tiny-model")
    build_tiny(out)
    return out


@pytest.fixture(scope="session")
def demo_model_dir(tmp_path_factory) -> Path:
    """The trained demo model: `make model`'s output, or built here when it is missing."""
    configured = Path(os.environ.get("KIT_DEMO_MODEL_DIR", REPO / "models" / "demo"))
    if (configured / "config.json").is_file():
        return configured
    pytest.importorskip("torch", reason="building the demo model needs the predictor extra")
    from demo.build import build_demo

    out = tmp_path_factory.mktemp("demo-model")
    build_demo(out)
    return out
