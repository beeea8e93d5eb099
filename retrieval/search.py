"""Hybrid unit search: dense (FAISS) and lexical candidates, scored by the learned ranker."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index.embed import Embedder, load_embedder
from index.params import ingest_params
from index.search_index import SearchIndex, load_or_rebuild
from index.store import ArticleRow, Store
from index.text import tokenize
from retrieval.features import (
    FEATURES,
    KIND_CODES,
    Bm25Scorer,
    LexicalScorer,
    Pool,
    RowInfo,
    build_pool,
    idf,
    row_info,
)
from retrieval.names import NameMatcher
from retrieval.rank import EVIDENCE, Ranker, load_ranker

COVERAGE = FEATURES.index("coverage")
RARE_WORD_ZIPF = 3.0  # wordfreq Zipf below this: a name or jargon, not an everyday word
_MARKUP = re.compile(r"<[^>]*>|\b(?:https?://|www\.)\S+|\[[^\]]*\]\([^)]*\)")
_WORD = re.compile(r"[^\W\d_][\w'’.-]*[\w]|[^\W\d_]", re.UNICODE)


@dataclass
class Candidate:
    """One scored unit, with parts of its evidence and, for quoting, the ranker's scores of
    the units before and after it in its article (None at the article's edge)."""

    id: int
    score: float
    content: str
    row: int  # position in the index (and in ``Searcher.rows``/``matrix``)
    dense: float
    coverage: float  # share of the question's IDF weight the unit holds
    prev_score: float | None
    next_score: float | None
    article_id: int
    position: int
    para: int
    kind: str


@dataclass
class QueryAnalysis:
    """What the question's words say about coverage, used to abstain."""

    terms: list[str]  # stemmed content terms
    unknown_names: list[str]  # names or rare words (as typed) the corpus never mentions
    vocab_coverage: float = 1.0  # share of the terms' IDF weight the corpus uses anywhere


@dataclass
class Result:
    """Candidates best first, and the evidence the abstainer weighs."""

    entries: list[Candidate]
    evidence: np.ndarray
    analysis: QueryAnalysis
    best_dense: float


def looks_like_name(word: str, start: int) -> bool:
    """Capitalised inside the question, or rare in English at large (wordfreq)."""
    from wordfreq import zipf_frequency

    if start > 0 and word[:1].isupper():
        return True
    return zipf_frequency(word, "en") < RARE_WORD_ZIPF


class Searcher:
    """Loads the index of a data dir once and answers many queries."""

    def __init__(
        self, store: Store, embedder: Embedder, index: SearchIndex, ranker: Ranker | None = None
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.index = index
        self.ranker = ranker or load_ranker(embedder.name)
        self._lock = threading.Lock()
        # Pools by question: evaluation re-ranks the same questions under many rankers.
        self.pool_cache: dict[str, Pool] | None = None
        self._load_rows()

    @classmethod
    def open(
        cls,
        data_dir: Path,
        backend: str,
        embedder: Embedder | None = None,
        ranker: Ranker | None = None,
    ) -> Searcher:
        store = Store(data_dir)
        embedder = embedder or load_embedder(backend, data_dir / "models")
        store.check_params(ingest_params(embedder.backend), write=False)
        return cls(store, embedder, load_or_rebuild(store), ranker)

    def _load_rows(self) -> None:
        rows = self.store.sentences([int(i) for i in self.index.ids])
        self.rows = [rows[int(i)] for i in self.index.ids]
        self.texts = [r.text for r in self.rows]
        self.kinds = np.array([KIND_CODES.get(r.kind, 2) for r in self.rows], np.int8)
        self.positions = np.array([r.position for r in self.rows], np.float32)
        self.chars = np.array([len(r.text) for r in self.rows], np.float32)
        self._row_info: dict[int, RowInfo] = {}
        self.articles: dict[int, ArticleRow] = {a.id: a for a in self.store.articles()}
        self.source_terms = {
            article_id: set(tokenize(text)) for article_id, text in self.store.metadata_texts()
        }
        n = self.index.size
        self.matrix = self.index.vectors.reconstruct_n(0, n) if n else np.zeros((0, 1), np.float32)
        import faiss

        # One query at a time: FAISS's OpenMP threads only wait on each other (and on a busy
        # machine, for a core).
        faiss.omp_set_num_threads(1)
        self.lexical: LexicalScorer = Bm25Scorer(self.index.bm25, n)
        self.names = NameMatcher(self.index.vocabulary)
        self.generation = self.index.manifest.get("generation")

    def refresh(self) -> bool:
        """Pick up articles another process ingested; True when the index changed."""
        if self.store.generation() == self.generation:
            return False
        with self._lock:
            self.index = load_or_rebuild(self.store)
            self._load_rows()
            if self.pool_cache is not None:
                self.pool_cache.clear()
        return True

    @property
    def size(self) -> int:
        return self.index.size

    def row_info(self, row: int) -> RowInfo:
        """A unit's text-only features, computed on first use and kept."""
        found = self._row_info.get(row)
        if found is None:
            found = self._row_info[row] = row_info(self.texts[row])
        return found

    def analyse(self, question: str) -> QueryAnalysis:
        terms = list(dict.fromkeys(tokenize(question)))
        names = []
        # Markup and links pasted into a question are not names the corpus should know.
        words_only = _MARKUP.sub(lambda m: " " * len(m.group()), question)
        for match in _WORD.finditer(words_only):
            word = match.group()
            stems = tokenize(word)
            if not stems or stems[0].isdigit() or stems[0] in self.index.vocabulary:
                continue
            if looks_like_name(word, match.start()) and not self.names.known(word, stems[0]):
                names.append(word)
        n = max(self.index.size, 1)
        weights = {t: idf(self.index.df.get(t, 0), n) for t in terms}
        total = sum(weights.values())
        known = sum(
            w for t, w in weights.items() if t in self.index.vocabulary or self.names.known(t, t)
        )
        return QueryAnalysis(terms, names, known / total if total else 1.0)

    def pool(self, question: str) -> Pool:
        """Candidates and their features (cached per question when ``pool_cache`` is set)."""
        if self.pool_cache is not None and question in self.pool_cache:
            return self.pool_cache[question]
        q = self.embedder.embed([question])[0]
        terms = [t for t in dict.fromkeys(tokenize(question)) if t in self.index.df]
        pool = build_pool(
            q,
            terms,
            question,
            matrix=self.matrix,
            dense_index=self.index.vectors,
            lexical=self.lexical,
            df=self.index.df,
            article_ids=self.index.article_ids,
            positions=self.positions,
            kinds=self.kinds,
            chars=self.chars,
            info=self.row_info,
            question_terms=tokenize(question),
            source_terms=self.source_terms,
        )
        if self.pool_cache is not None:
            self.pool_cache[question] = pool
        return pool

    def search(
        self, question: str, limit: int = 50, ranker: Ranker | None = None
    ) -> list[Candidate]:
        """Candidates best first."""
        return self.result(question, limit, ranker).entries

    def result(self, question: str, limit: int = 50, ranker: Ranker | None = None) -> Result:
        """Candidates best first, with the evidence for abstaining."""
        ranker = ranker or self.ranker
        analysis = self.analyse(question)
        if self.index.size == 0:
            return Result([], np.zeros(len(EVIDENCE), np.float32), analysis, 0.0)
        with self._lock:
            pool = self.pool(question)
            rows = self.rows
            article_ids = self.index.article_ids
            scores = ranker.score(pool.features)
            pos = {int(r): i for i, r in enumerate(pool.rows)}
            entries = []
            candidates = np.flatnonzero(pool.candidates)
            best_first = candidates[np.argsort(-scores[candidates], kind="stable")][:limit]
            for i in best_first:
                r = int(pool.rows[i])
                prev_i = pos.get(r - 1)
                next_i = pos.get(r + 1)
                same = article_ids[r]
                sentence = rows[r]
                entries.append(
                    Candidate(
                        id=sentence.id,
                        score=float(scores[i]),
                        content=sentence.text,
                        row=r,
                        dense=float(pool.dense[i]),
                        coverage=float(pool.features[i, COVERAGE]),
                        prev_score=float(scores[prev_i])
                        if prev_i is not None and article_ids[r - 1] == same
                        else None,
                        next_score=float(scores[next_i])
                        if next_i is not None and article_ids[r + 1] == same
                        else None,
                        article_id=sentence.article_id,
                        position=sentence.position,
                        para=sentence.para,
                        kind=sentence.kind,
                    )
                )
        best_dense = float(pool.dense[pool.candidates].max()) if pool.candidates.any() else 0.0
        return Result(entries, evidence(entries, analysis, best_dense), analysis, best_dense)


def evidence(entries: list[Candidate], analysis: QueryAnalysis, best_dense: float) -> np.ndarray:
    """The abstainer's inputs (``rank.EVIDENCE``) for one question."""
    scores = [e.score for e in entries]
    top = scores[0] if scores else -10.0
    fifth = scores[min(4, len(scores) - 1)] if scores else -10.0
    values = {
        "top_score": top,
        "top_dense": best_dense,
        "top3_coverage": max((e.coverage for e in entries[:3]), default=0.0),
        "vocab_coverage": analysis.vocab_coverage,
        "unknown_names": float(len(analysis.unknown_names)),
        "score_margin": top - fifth,
    }
    return np.array([values[name] for name in EVIDENCE], np.float32)
