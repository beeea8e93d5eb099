"""Shared fixtures: a fixture corpus, data dirs built with the fake hash embedder, and a CLI
runner that starts the real ``talksbot`` entry point in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from index.embed import HashEmbedder
from index.ingest import Ingester, IngestReport
from index.store import Store
from retrieval.answer import Answerer
from retrieval.search import Searcher
from tests.fake_web import FakeWeb

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
CORPUS = FIXTURES / "corpus"


def ingest(data_dir: Path, *paths: Path) -> IngestReport:
    store = Store(data_dir)
    try:
        return Ingester(store, HashEmbedder()).ingest_paths(list(paths), progress=False)
    finally:
        store.close()


def open_answerer(data_dir: Path) -> Answerer:
    return Answerer(Searcher.open(data_dir, "hash", embedder=HashEmbedder()))


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real model's int8 ONNX export, made once per test session."""
    from index.embed import load_embedder

    cache = tmp_path_factory.mktemp("models")
    load_embedder("onnx-int8", cache)
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


def cli_env(data_dir: Path, backend: str = "hash", **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TALKSBOT_", "TELEGRAM_"))}
    env.update(TALKSBOT_DATA_DIR=str(data_dir), TALKSBOT_BACKEND=backend, HF_HUB_OFFLINE="1")
    env.update(extra)
    return env


def run_cli(
    data_dir: Path,
    *args: str,
    stdin: str | None = None,
    backend: str = "hash",
    script: str = "cli.py",
    timeout: float = 120,
    **extra: str,
) -> subprocess.CompletedProcess[str]:
    """Run ``python cli.py ARGS`` (or bot.py) as a user would, from a neutral working dir."""
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env=cli_env(data_dir, backend, **extra),
        cwd=data_dir.parent,
        timeout=timeout,
    )
