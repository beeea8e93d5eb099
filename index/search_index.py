"""The search index: a folder of named files derived from the store, saved and loaded whole.

``dense.faiss`` (inner product over normalised embeddings), ``ids.npy`` (row -> sentence id),
``bm25/`` (bm25s over stemmed sentence tokens), ``df.json`` (document frequency of each term),
``vocabulary.json`` (every term the corpus uses anywhere, bylines and URLs included, to tell
whether a question's names occur in the corpus at all) and
``manifest.json`` (store generation, counts, the params that built it).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from index.store import Store, rmtree_quiet
from index.text import tokenize


def quiet_bm25s() -> None:
    """bm25s logs every index build at DEBUG on a handler of its own."""
    logging.getLogger("bm25s").setLevel(logging.WARNING)


@dataclass
class SearchIndex:
    ids: np.ndarray  # int64, row -> sentence id
    article_ids: np.ndarray  # int64, row -> article id
    vectors: object  # faiss index
    bm25: object  # bm25s.BM25
    df: dict[str, int] = field(default_factory=dict)
    vocabulary: frozenset[str] = frozenset()
    manifest: dict = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.ids)

    # -- build ------------------------------------------------------------------------------
    @classmethod
    def build(cls, store: Store) -> SearchIndex:
        import bm25s
        import faiss

        quiet_bm25s()
        ids: list[int] = []
        article_ids: list[int] = []
        vectors: list[np.ndarray] = []
        corpus_tokens: list[list[str]] = []
        df: dict[str, int] = {}
        for sentence_id, article_id, text, blob in store.indexable():
            ids.append(sentence_id)
            article_ids.append(article_id)
            vectors.append(np.frombuffer(blob, dtype=np.float32))
            tokens = tokenize(text)
            corpus_tokens.append(tokens or ["_empty_"])
            for term in set(tokens):
                df[term] = df.get(term, 0) + 1
        vocabulary = frozenset(t for text in store.vocabulary_texts() for t in tokenize(text))
        params = store.read_params() or {}
        dim = int(params.get("dim", vectors[0].shape[0] if vectors else 384))
        dense = faiss.IndexFlatIP(dim)
        if vectors:
            dense.add(np.vstack(vectors).astype(np.float32))
        bm25 = bm25s.BM25(k1=1.2, b=0.75)
        bm25.index(corpus_tokens or [["_empty_"]], show_progress=False)
        manifest = {
            "generation": store.generation(),
            "sentences": len(ids),
            "params": params,
        }
        return cls(
            np.asarray(ids, np.int64),
            np.asarray(article_ids, np.int64),
            dense,
            bm25,
            df,
            vocabulary,
            manifest,
        )

    # -- save / load ------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        import faiss

        directory.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self.vectors, str(directory / "dense.faiss"))
        np.save(directory / "ids.npy", self.ids)
        np.save(directory / "article_ids.npy", self.article_ids)
        self.bm25.save(str(directory / "bm25"), show_progress=False)
        (directory / "df.json").write_text(json.dumps(self.df))
        (directory / "vocabulary.json").write_text(json.dumps(sorted(self.vocabulary)))
        (directory / "manifest.json").write_text(json.dumps(self.manifest, indent=2))

    @classmethod
    def load(cls, directory: Path) -> SearchIndex:
        import bm25s
        import faiss

        quiet_bm25s()
        manifest = json.loads((directory / "manifest.json").read_text())
        return cls(
            ids=np.load(directory / "ids.npy"),
            article_ids=np.load(directory / "article_ids.npy"),
            vectors=faiss.read_index(str(directory / "dense.faiss")),
            bm25=bm25s.BM25.load(str(directory / "bm25"), show_progress=False),
            df=json.loads((directory / "df.json").read_text()),
            vocabulary=frozenset(json.loads((directory / "vocabulary.json").read_text())),
            manifest=manifest,
        )


def _index_root(store: Store) -> Path:
    return store.data_dir / "index"


def current_index_dir(store: Store) -> Path | None:
    pointer = _index_root(store) / "CURRENT"
    if not pointer.exists():
        return None
    path = _index_root(store) / pointer.read_text().strip()
    return path if (path / "manifest.json").exists() else None


def rebuild(store: Store) -> SearchIndex:
    """Build from the store into a new folder, then point CURRENT at it atomically."""
    root = _index_root(store)
    root.mkdir(parents=True, exist_ok=True)
    built = SearchIndex.build(store)
    name = f"gen-{built.manifest['generation']:08d}-{os.getpid()}"
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
    built.save(tmp)
    if (root / name).exists():
        rmtree_quiet(tmp)  # this generation was built already (by another process)
    else:
        os.replace(tmp, root / name)
    with tempfile.NamedTemporaryFile("w", dir=root, delete=False) as f:
        f.write(name)
    os.replace(f.name, root / "CURRENT")
    for old in root.iterdir():
        if old.is_dir() and old.name != name and not old.name.startswith(".build-"):
            rmtree_quiet(old)
    return built


def load_or_rebuild(store: Store) -> SearchIndex:
    """The index for the store's current generation; stale or damaged files are rebuilt."""
    directory = current_index_dir(store)
    if directory is not None:
        try:
            loaded = SearchIndex.load(directory)
            if loaded.manifest.get("generation") == store.generation():
                return loaded
        except (OSError, ValueError, RuntimeError, KeyError):
            pass  # damaged or half-written: rebuilt below from the store
    return rebuild(store)
