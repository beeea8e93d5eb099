"""Hybrid sentence search: dense (FAISS) and BM25 scores fused over one candidate pool."""

from __future__ import annotations

import math
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

DENSE_POOL = 100
BM25_POOL = 100
# Score = cosine + BM25_WEIGHT * BM25/max(BM25) + PREV_WEIGHT * (score of the sentence before)
#       + ANSWER_TYPE_BOOST (a number for "how many", a date for "when", a cause for "why")
#       + SOURCE_WEIGHT * (share of the question's IDF found in the article's title/outlet/URL).
# Tuned on the dev questions as a whole; benchmarks/run.py prints the figures.
BM25_WEIGHT = 0.2
PREV_WEIGHT = 0.1
ANSWER_TYPE_BOOST = 0.1
SOURCE_WEIGHT = 0.2
RARE_WORD_ZIPF = 3.0  # wordfreq Zipf below this: a name or jargon, not an everyday word
_MARKUP = re.compile(r"<[^>]*>|\b(?:https?://|www\.)\S+|\[[^\]]*\]\([^)]*\)")
_WORD = re.compile(r"[^\W\d_][\w'’.-]*[\w]|[^\W\d_]", re.UNICODE)

_NUMBER = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty"
    r"|fifty|hundred|thousand|million|billion|trillion|dozen|half)\b",
    re.I,
)
_DATE = re.compile(
    r"\b(19|20)\d\d\b|\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.? \d"
    r"|\d{1,2} (jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)"
    r"|\b(monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b|\d ?(am|pm)\b"
    r"|\b(yesterday|today|tomorrow|last week|this week|next week|early|late|mid)\b"
    r"|\b(january|february|march|april|june|july|august|september|october|november|december)\b",
    re.I,
)
_ASKS_NUMBER = re.compile(
    r"\bhow (many|much|long|big|badly|large|far|often)\b|\b(duration|value|total|number of|"
    r"percentage|share of|cost)\b",
    re.I,
)
_ASKS_DATE = re.compile(
    r"^\s*(when|by when|since when)\b|\bwhat (time|date|day|year|month)\b", re.I
)


_CAUSE = re.compile(
    r"\b(because|due to|as a result|in order to|so that|to allow|to enable|aimed at|in response"
    r"|following|leverage|retaliat\w*|linked|reason|amid|citing|after)\b",
    re.I,
)
ANSWER_PATTERNS = {"number": _NUMBER, "date": _DATE, "cause": _CAUSE}


def answer_type(question: str) -> str:
    """What kind of answer the question asks for, "number", "date", "cause" or "" (classic
    answer-type matching: a "how many" answer holds a number, a "why" answer a cause)."""
    if _ASKS_NUMBER.search(question):
        return "number"
    if _ASKS_DATE.search(question):
        return "date"
    if re.match(r"^\s*why\b", question, re.I):
        return "cause"
    return ""


@dataclass
class Candidate:
    """One scored sentence, with the parts of its score and, for quoting, the full scores of
    the sentences before and after it in its article (None at the article's edge)."""

    id: int
    score: float
    content: str
    row: int  # position in the index (and in ``Searcher.rows``/``matrix``)
    dense: float
    lexical: float
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


def looks_like_name(word: str, start: int) -> bool:
    """Capitalised inside the question, or rare in English at large (wordfreq)."""
    from wordfreq import zipf_frequency

    if start > 0 and word[:1].isupper():
        return True
    return zipf_frequency(word, "en") < RARE_WORD_ZIPF


class Searcher:
    """Loads the index of a data dir once and answers many queries."""

    def __init__(self, store: Store, embedder: Embedder, index: SearchIndex) -> None:
        self.store = store
        self.embedder = embedder
        self.index = index
        self._lock = threading.Lock()
        self._load_rows()

    @classmethod
    def open(cls, data_dir: Path, backend: str, embedder: Embedder | None = None) -> Searcher:
        store = Store(data_dir)
        embedder = embedder or load_embedder(backend, data_dir / "models")
        store.check_params(ingest_params(embedder.backend), write=False)
        return cls(store, embedder, load_or_rebuild(store))

    def _load_rows(self) -> None:
        rows = self.store.sentences([int(i) for i in self.index.ids])
        self.rows = [rows[int(i)] for i in self.index.ids]
        self.articles: dict[int, ArticleRow] = {a.id: a for a in self.store.articles()}
        self.source_terms = {
            article_id: set(tokenize(text)) for article_id, text in self.store.metadata_texts()
        }
        n = self.index.size
        self.matrix = self.index.vectors.reconstruct_n(0, n) if n else np.zeros((0, 1), np.float32)
        self.generation = self.index.manifest.get("generation")

    def refresh(self) -> bool:
        """Pick up articles another process ingested; True when the index changed."""
        if self.store.generation() == self.generation:
            return False
        with self._lock:
            self.index = load_or_rebuild(self.store)
            self._load_rows()
        return True

    @property
    def size(self) -> int:
        return self.index.size

    def analyse(self, question: str) -> QueryAnalysis:
        terms = list(dict.fromkeys(tokenize(question)))
        names = []
        # Markup and links pasted into a question are not names the corpus should know.
        words_only = _MARKUP.sub(lambda m: " " * len(m.group()), question)
        for match in _WORD.finditer(words_only):
            word = match.group()
            stems = tokenize(word)
            unknown = stems and not stems[0].isdigit() and stems[0] not in self.index.vocabulary
            if unknown and looks_like_name(word, match.start()):
                names.append(word)
        return QueryAnalysis(terms, names)

    def search(self, question: str, limit: int = 50) -> list[Candidate]:
        """Candidates best first."""
        n = self.index.size
        if n == 0:
            return []
        vector = self.embedder.embed([question])
        q = vector[0]
        with self._lock:
            index, rows = self.index, self.rows
            _, dense_rows = index.vectors.search(vector, min(n, DENSE_POOL))
            terms = [t for t in tokenize(question) if t in index.df]
            bm25 = (
                np.asarray(index.bm25.get_scores(terms), np.float32)
                if terms
                else np.zeros(n, np.float32)
            )
            pool = {int(r) for r in dense_rows[0] if r >= 0}
            if terms:
                top = np.argpartition(-bm25, min(BM25_POOL, n - 1))[:BM25_POOL]
                pool.update(int(r) for r in top if bm25[r] > 0)
            # Candidates and their neighbours (two back: a neighbour's score counts its own
            # predecessor), scored in one matrix product.
            wanted = sorted({m for r in pool for m in range(r - 2, r + 2) if 0 <= m < n})
            pos = {r: i for i, r in enumerate(wanted)}
            dense = self.matrix[wanted] @ q
            bm25_max = float(bm25.max()) if terms else 0.0
            lexical = bm25[wanted] / bm25_max if bm25_max > 0 else np.zeros(len(wanted))
            base = dense + BM25_WEIGHT * lexical
            kind = answer_type(question)
            if kind:
                pattern = ANSWER_PATTERNS[kind]
                base = base + ANSWER_TYPE_BOOST * np.array(
                    [bool(pattern.search(rows[r].text)) for r in wanted], np.float32
                )
            source = self._source_match(terms)
            article_ids = index.article_ids

            def score(r: int) -> float | None:
                """Full score of row r, or None for a row outside r's article."""
                before = (
                    base[pos[r - 1]] if r - 1 in pos and article_ids[r - 1] == article_ids[r] else 0
                )
                return (
                    float(base[pos[r]])
                    + PREV_WEIGHT * max(float(before), 0.0)
                    + SOURCE_WEIGHT * source.get(int(article_ids[r]), 0.0)
                )

            entries = []
            for r in pool:
                i = pos[r]
                same_prev = r - 1 >= 0 and article_ids[r - 1] == article_ids[r]
                same_next = r + 1 < n and article_ids[r + 1] == article_ids[r]
                sentence = rows[r]
                entries.append(
                    Candidate(
                        id=sentence.id,
                        score=score(r),
                        content=sentence.text,
                        row=r,
                        dense=float(dense[i]),
                        lexical=float(lexical[i]),
                        prev_score=score(r - 1) if same_prev else None,
                        next_score=score(r + 1) if same_next else None,
                        article_id=sentence.article_id,
                        position=sentence.position,
                        para=sentence.para,
                        kind=sentence.kind,
                    )
                )
        entries.sort(key=lambda e: e.score, reverse=True)
        return entries[:limit]

    def _source_match(self, terms: list[str]) -> dict[int, float]:
        """Per article, the share of the question's IDF weight found in its title, outlet or
        URL: "the Bloomberg report", "Ignatius's column" point at one source."""
        if not terms:
            return {}
        weights = {t: idf(self.index.df.get(t, 0), self.index.size) for t in set(terms)}
        total = sum(weights.values())
        out = {}
        for article_id, meta_terms in self.source_terms.items():
            shared = sum(w for t, w in weights.items() if t in meta_terms)
            if shared:
                out[article_id] = shared / total
        return out


def idf(df: int, n: int) -> float:
    return math.log(1 + (n - df + 0.5) / (df + 0.5))
