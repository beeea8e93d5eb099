"""Opens what a process needs, once: the store, the embedder, the searcher and the ingester.

The CLI and the bot both start here; a store built with other settings is refused before any
model loads, and an empty data dir is filled from the bundled sample corpus.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from index.embed import BACKENDS, DEFAULT_BACKEND, Embedder, load_embedder
from index.ingest import Ingester, IngestReport
from index.params import ingest_params
from index.store import Store, StoreError
from retrieval.answer import Answerer
from retrieval.rank import default_ranker
from retrieval.search import Searcher
from talksbot.config import SAMPLE_CORPUS, Settings

T = TypeVar("T")


def _echo(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def backend_of(settings: Settings, store: Store) -> str:
    """The embedding backend to use on ``store``: unset, the one the store was built with (an
    upgrade that changed the default keeps an existing store working), and for a new store
    ``DEFAULT_BACKEND``; set, it must be the store's. ``Store.check_params`` then checks the
    rest of the recorded settings."""
    try:
        params = store.read_params()
    except StoreError:
        params = None  # check_params reports the unreadable file
    built = params.get("backend") if params else None
    configured = settings.talksbot_backend
    if params is not None and built not in (*BACKENDS, "hash"):
        raise StoreError(
            f"{store.params_path} names an embedding backend this talksbot does not know "
            f"({built!r}); restore the file that built this store, or ingest into a new "
            "TALKSBOT_DATA_DIR"
        )
    if configured and built and configured != built:
        raise StoreError(
            f"TALKSBOT_BACKEND is {configured!r}, but the index in {store.data_dir} was built "
            f"with {built!r}: unset TALKSBOT_BACKEND (a store keeps the backend it was built "
            f"with), set it to {built!r}, or ingest into a new TALKSBOT_DATA_DIR"
        )
    return configured or built or DEFAULT_BACKEND


def open_answerer(settings: Settings, quiet: bool = False, refit: bool = False) -> Answerer:
    """The answer pipeline on one store connection; an empty data dir is first built from the
    sample corpus, and a store built with other settings is refused before the model loads.
    ``refit``: start from the default ranker (the shipped one may no longer fit the code)."""
    data_dir = settings.data_dir
    store = Store(data_dir)
    try:
        backend = backend_of(settings, store)
        store.check_params(ingest_params(backend), write=False)
        embedder = load_embedder(backend, settings.model_cache)
        if store.article_count() == 0:
            if not quiet:
                _echo(f"talksbot: {data_dir} is empty; building it from the sample corpus …")
            report = Ingester(store, embedder).ingest_paths([SAMPLE_CORPUS], progress=False)
            if not quiet:
                _echo(f"talksbot: {report.summary()}")
        ranker = default_ranker(embedder.name) if refit else None
        return Answerer(Searcher(store, embedder, ranker=ranker))  # index: on first search
    except BaseException:
        store.close()
        raise


def open_ingester(settings: Settings, embedder: Embedder | None = None) -> Ingester:
    """An Ingester on a store connection of its own, with ``embedder`` or the configured model
    (a mismatched store is refused before it loads). The caller closes ``ingester.store``."""
    store = Store(settings.data_dir)
    try:
        if embedder is None:
            backend = backend_of(settings, store)
            store.check_params(ingest_params(backend), write=False)
            embedder = load_embedder(backend, settings.model_cache)
        return Ingester(store, embedder)
    except BaseException:
        store.close()
        raise


def with_ingester(
    settings: Settings, work: Callable[[Store, Ingester], T], embedder: Embedder | None = None
) -> T:
    """Run ``work(store, ingester)`` on a store connection of its own, then close it (the bot
    runs network-bound ingest off its answering thread this way)."""
    ingester = open_ingester(settings, embedder)
    try:
        return work(ingester.store, ingester)
    finally:
        ingester.store.close()


def run_ingest(settings: Settings, paths: list[Path], urls: list[str] = ()) -> IngestReport:
    """Files, folders and URLs into the store: one report for all of them."""
    from index.feeds import ingest_url

    def work(store: Store, ingester: Ingester) -> IngestReport:
        report = ingester.ingest_paths(paths) if paths else IngestReport()
        for url in urls:
            report.merge(ingest_url(store, ingester, url, settings.fetch_policy))
        return report

    return with_ingester(settings, work)
