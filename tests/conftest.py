"""Fixtures shared by the tests; the helpers they use live in ``tests/harness``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from index.store import Store
from tests.harness.data import CORPUS
from tests.harness.web import FakeWeb


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real model's ONNX export for the default backend, made once per test session."""
    from index.embed import DEFAULT_BACKEND, load_embedder

    cache = tmp_path_factory.mktemp("models")
    load_embedder(DEFAULT_BACKEND, cache)
    return cache


@pytest.fixture
def web() -> Iterator[FakeWeb]:
    """A local web server for feeds and article pages."""
    w = FakeWeb()
    w.start()
    yield w
    w.stop()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    """A writable copy of the fixture corpus."""
    target = tmp_path / "corpus"
    target.mkdir()
    for f in CORPUS.iterdir():
        (target / f.name).write_bytes(f.read_bytes())
    return target


@pytest.fixture
def store(data_dir: Path) -> Iterator[Store]:
    """The store of ``data_dir``, closed after the test."""
    opened = Store(data_dir)
    yield opened
    opened.close()
