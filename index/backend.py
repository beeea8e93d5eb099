"""What ``retrieval/`` needs from a search backend, and nothing more.

``index.live_index.LiveIndex`` implements it over SQLite + FAISS + bm25s files. A PostgreSQL
backend would implement the same methods over one shared database: ``dense_search`` as a
pgvector query (``ORDER BY embedding <#> $1 LIMIT k`` on an HNSW index), ``lexical`` over a
tsvector column of the stored tokens (or a BM25 extension), ``mentioned``/``df`` over a term
table, ``neighbourhood`` as one windowed SELECT, and ``refresh`` as a no-op (the database is
the index). Ranking code sees ids, scores and rows only, never FAISS or bm25s objects.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class LexicalResult(Protocol):
    """BM25 scores of one query."""

    @property
    def max(self) -> float: ...

    def top(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``k`` (sentence ids, scores) with a positive score, in no particular order."""
        ...

    def scores_for(self, sentence_ids: list[int]) -> np.ndarray:
        """The score of each of these sentences (0 where none of the terms occur)."""
        ...


class SearchBackend(Protocol):
    @property
    def size(self) -> int:
        """Searchable sentences."""
        ...

    @property
    def token_count(self) -> int:
        """Tokens in the searchable sentences (how large a vocabulary the corpus can have)."""
        ...

    def refresh(self) -> bool:
        """Catch up with commits by any process; True when something changed."""
        ...

    def prefetch(self) -> None:
        """Have the operating system read what queries read into its cache now (a long-running
        answerer's start); a no-op where that means nothing (a database server)."""
        ...

    def vocabulary_since(self) -> tuple[object, list[str]]:
        """(a base that changes only when the index is rewritten, the terms first used by
        searchable sentences added since that base, in order; the list only grows until the
        base changes). Lets a caller extend what it derived from the whole vocabulary instead
        of reading it all again after every new article."""
        ...

    def dense_search(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``k`` (sentence ids, inner products), best first."""
        ...

    def lexical(self, terms: list[str]) -> LexicalResult: ...

    def df(self, term: str) -> int:
        """Searchable sentences that use ``term``."""
        ...

    def mentioned(self, term: str) -> bool:
        """Whether any stored text (bylines, titles, URLs included) uses ``term``."""
        ...

    def source_terms(self, article_ids: set[int]) -> dict[int, str]:
        """Tokens of these articles' titles, outlets and URLs, space-joined."""
        ...

    def neighbourhood(self, ids: list[int], before: int, after: int):  # -> Neighbourhood
        """Rows and vectors of ``ids`` and of the searchable sentences around each in its
        article (``index.live_index.Neighbourhood``)."""
        ...
