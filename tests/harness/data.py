"""Data dirs built with the fake hash embedder, and the ``talksbot`` CLI run as a user would."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from index.embed import HashEmbedder
from index.ingest import Ingester, IngestReport
from index.store import Store
from retrieval.answer import Answerer
from retrieval.search import Searcher

ROOT = Path(__file__).resolve().parent.parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
CORPUS = FIXTURES / "corpus"


def ingest(data_dir: Path, *paths: Path) -> IngestReport:
    store = Store(data_dir)
    try:
        return Ingester(store, HashEmbedder()).ingest_paths(list(paths), progress=False)
    finally:
        store.close()


def open_answerer(data_dir: Path) -> Answerer:
    return Answerer(Searcher.open(data_dir, "hash", embedder=HashEmbedder()))


def close_answerer(answerer: Answerer) -> None:
    answerer.searcher.store.close()


@contextlib.contextmanager
def answering(data_dir: Path) -> Iterator[Answerer]:
    """``open_answerer``, with its store connection closed afterwards."""
    answerer = open_answerer(data_dir)
    try:
        yield answerer
    finally:
        close_answerer(answerer)


def cli_env(data_dir: Path, backend: str = "hash", **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TALKSBOT_", "TELEGRAM_"))}
    env.update(TALKSBOT_DATA_DIR=str(data_dir), HF_HUB_OFFLINE="1")
    if backend:  # "": unset, as a user who never chose one
        env["TALKSBOT_BACKEND"] = backend
    env.update(extra)
    return env


def refusal(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a refused command printed: exit code 1, one stderr line, no traceback."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, result.stderr
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def run_cli(
    data_dir: Path,
    *args: str,
    stdin: str | None = None,
    backend: str = "hash",
    script: str = "talksbot",
    timeout: float = 120,
    **extra: str,
) -> subprocess.CompletedProcess[str]:
    """Run ``talksbot ARGS`` (or ``python bot.py ARGS``) from a neutral working dir."""
    command = (
        [sys.executable, "-m", "talksbot.cli"]
        if script == "talksbot"
        else [
            sys.executable,
            str(ROOT / script),
        ]
    )
    return subprocess.run(
        [*command, *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env=cli_env(data_dir, backend, **extra),
        cwd=data_dir.parent,
        timeout=timeout,
    )
