"""The release version is written once, as pyproject.toml's [project] version: `make images`
and scripts/build-images.sh tag and label the images with it, kserve_kit.__version__ reads it
from the installed package. Every copy that cannot read it (kustomize's newTag, Chart.yaml's
appVersion, the Dockerfiles' default VERSION, commands and tables in the docs) must equal it."""

from __future__ import annotations

import re
import subprocess
import tomllib

import pytest
import render
import yaml
from conftest import REPO

pytestmark = pytest.mark.manifests

RELEASE = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
KIT_IMAGES = ("kserve-kit-predictor", "kserve-kit-transformer")
# A kit image with a tag, as written in docs, comments and commands.
TAGGED = re.compile(r"kserve-kit-(?:predictor|transformer):([0-9][^\s`'\"),]*)")
# Files that name the images with a tag; tests/ builds its own test tags.
TEXTS = ["README.md", "docs/*.md", "manifests/**/*.yaml", "*/Dockerfile", "scripts/*", "mk/*.mk"]


def test_chart_app_version_is_the_release():
    chart = yaml.safe_load((render.CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == RELEASE


def test_installed_package_reports_the_release():
    import kserve_kit

    assert kserve_kit.__version__ == RELEASE, "pyproject.toml changed: run `make install` again"


def test_overlays_pin_the_release():
    pins = []
    for path in sorted(render.MANIFESTS.rglob("kustomization.yaml")):
        for image in yaml.safe_load(path.read_text()).get("images", []):
            if image["name"] in KIT_IMAGES:
                pins.append((path.relative_to(REPO), image["name"], image.get("newTag")))
    assert len(pins) >= 2 * len(render.OVERLAYS)
    assert [p for p in pins if p[2] != RELEASE] == []


def kit_images(node) -> list[str]:
    """Every image reference of a kit image anywhere in a rendered object."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if (
                key == "image"
                and isinstance(value, str)
                and value.split(":")[0].endswith(KIT_IMAGES)
            ):
                found.append(value)
            else:
                found += kit_images(value)
    elif isinstance(node, list):
        for value in node:
            found += kit_images(value)
    return found


def test_every_rendered_kit_image_is_tagged_with_the_release(objects):
    images = {variant: kit_images(docs) for variant, docs in objects.items()}
    for variant in [*(f"overlay-{o}" for o in render.OVERLAYS), "chart-default", "chart-kind"]:
        assert len(set(images[variant])) == 2, (variant, images[variant])
    wrong = {
        v: [i for i in found if i.rsplit(":", 1)[-1] != RELEASE] for v, found in images.items()
    }
    assert {v: found for v, found in wrong.items() if found} == {}


def test_dockerfiles_label_the_release_by_default():
    for component in ("predictor", "transformer"):
        text = (REPO / component / "Dockerfile").read_text()
        assert re.findall(r"^ARG VERSION=(\S+)$", text, re.M) == [RELEASE], component


def test_every_tag_written_in_docs_and_sources_is_the_release():
    written = []
    for pattern in TEXTS:
        for path in sorted(REPO.glob(pattern)):
            if path.is_file():
                text = path.read_text()
                written += [(str(path.relative_to(REPO)), tag) for tag in TAGGED.findall(text)]
    images_md = (REPO / "docs" / "images.md").read_text()
    written += [
        ("docs/images.md VERSION", t) for t in re.findall(r"\| `VERSION` \| `([^`]+)`", images_md)
    ]
    assert len(written) >= 10
    assert [w for w in written if w[1] != RELEASE] == []


def test_image_targets_tag_with_the_release():
    out = subprocess.run(
        ["make", "-n", "images"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    for image in KIT_IMAGES:
        assert f"{image}:{RELEASE}'" in out, out
