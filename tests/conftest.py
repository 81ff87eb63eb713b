"""Shared fixtures: tiny models saved to disk in the real format, and awkward images."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from servers import http_server, ssh_server  # noqa: F401  (fixtures: real SSH (asyncssh) and HTTP servers)

import stages  # noqa: F401  (before torch loads: the CPU kernels every stage pins, varireal.cpu_pins)
from varireal.models.tiny import build_detector, build_llm, build_segmenter

# What makes a test slow: it builds the whole pipeline, saves tiny models to disk or starts servers.
# Such tests are marked `slow`, so `pytest -m "not slow"` runs the rest in about two minutes
# (docs/contributing.md); CI runs everything.
SLOW_FIXTURES = frozenset({"repro", "tiny_model_dirs", "ssh_server", "http_server", "editors"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", autouse=True)
def model_caches(tmp_path_factory) -> dict[str, Path]:
    """Every test (and every dvc command it runs) uses caches of its own session, never ~/.cache.

    The hub cache stays empty and offline: no test downloads weights.
    """
    caches = {
        "VARIREAL_CACHE": tmp_path_factory.mktemp("varireal-cache"),
        "HF_HUB_CACHE": tmp_path_factory.mktemp("hf-cache"),
    }
    saved = {name: os.environ.get(name) for name in (*caches, "HF_HUB_OFFLINE")}
    os.environ.update({name: str(path) for name, path in caches.items()}, HF_HUB_OFFLINE="1")
    yield caches
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory) -> dict[str, Path]:
    """Detector, SAM 2 and LLM built once per test session, loaded by each test from disk."""
    root = tmp_path_factory.mktemp("tiny-models")
    builders = {"detector": build_detector, "segmenter": build_segmenter, "llm": build_llm}
    for role, build in builders.items():
        build(root / role, seed=0)
    return {role: root / role for role in builders}


def _photo(size: tuple[int, int], seed: int) -> Image.Image:
    """A blob on a gradient: something object-like for the detector and SAM 2 to look at."""
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(seed)
    pixels = np.stack([xx * 255 // max(width - 1, 1), yy * 255 // max(height - 1, 1), np.full_like(xx, 90)], -1)
    blob = (xx - width / 2) ** 2 / (width / 4) ** 2 + (yy - height / 2) ** 2 / (height / 4) ** 2 < 1
    pixels[blob] = rng.integers(0, 255, 3)
    return Image.fromarray(pixels.astype(np.uint8))


@pytest.fixture()
def odd_images(tmp_path) -> list[Path]:
    """One of each kind of input the stages must cope with (named by what is odd about it)."""
    folder = tmp_path / "odd"
    folder.mkdir()
    photo = _photo((96, 64), seed=1)
    photo.save(folder / "rgb.jpg", quality=90)
    photo.convert("L").save(folder / "gray.png")
    photo.convert("RGBA").save(folder / "rgba.png")
    photo.convert("CMYK").save(folder / "cmyk.jpg")
    photo.convert("P").save(folder / "palette.png")
    _photo((4, 4), seed=2).save(folder / "tiny.png")
    buffer = io.BytesIO()
    _photo((80, 80), seed=3).save(buffer, format="JPEG")
    (folder / "truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 3])
    (folder / "not_an_image.jpg").write_bytes(b"this is not a JPEG")
    return sorted(folder.iterdir())


@pytest.fixture(scope="session")
def repro(tmp_path_factory) -> Path:
    """The default profile built once per test session by `dvc repro` in a fresh git repo.

    Tests read it; a test that changes files, params or experiments works in its own copy.
    """
    from pipeline_repo import clone, dvc

    repo = clone(tmp_path_factory.mktemp("pipeline"))
    dvc("repro", cwd=repo)
    return repo
