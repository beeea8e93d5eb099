"""Hybrid sentence search: dense (FAISS) and BM25 scores fused over one candidate pool."""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index.backend import SearchBackend
from index.embed import Embedder, load_embedder
from index.live_index import LiveIndex
from index.params import ingest_params
from index.store import ArticleRow, SentenceRow, Store
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
    """One scored sentence, with the parts of its score and, for quoting, the sentences
    before and after it in its article with their full scores (None at the article's edge)."""

    id: int
    score: float
    content: str
    vector: np.ndarray  # its embedding (near-duplicate checks)
    dense: float
    lexical: float
    prev_score: float | None
    next_score: float | None
    prev: SentenceRow | None
    next: SentenceRow | None
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
    """Answers many queries over a data dir's live index.

    Holds no sentence, article or vector of its own: the index maps its snapshot files, and
    the rows of a query's candidates (and their neighbours) are read from SQLite per query.
    """

    def __init__(self, store: Store, embedder: Embedder, index: SearchBackend) -> None:
        self.store = store
        self.embedder = embedder
        self.index = index
        self._lock = threading.Lock()
        self._coverage: tuple[int, dict] | None = None

    @classmethod
    def open(cls, data_dir: Path, backend: str, embedder: Embedder | None = None) -> Searcher:
        store = Store(data_dir)
        embedder = embedder or load_embedder(backend, data_dir / "models")
        store.check_params(ingest_params(embedder.backend), write=False)
        return cls(store, embedder, LiveIndex.open(store))

    def refresh(self) -> bool:
        """Pick up what any process committed since; True when the index changed. Cheap when
        nothing did (one read of the change log's position)."""
        with self._lock:
            return self.index.refresh()

    @property
    def size(self) -> int:
        return self.index.size

    def article(self, article_id: int) -> ArticleRow | None:
        return self.store.article(article_id)

    def coverage(self) -> dict:
        """The store's coverage (articles, outlets, dates), recounted only after a write."""
        generation = self.store.generation()
        if self._coverage is None or self._coverage[0] != generation:
            self._coverage = (generation, self.store.coverage())
        return self._coverage[1]

    def analyse(self, question: str) -> QueryAnalysis:
        terms = list(dict.fromkeys(tokenize(question)))
        names = []
        # Markup and links pasted into a question are not names the corpus should know.
        words_only = _MARKUP.sub(lambda m: " " * len(m.group()), question)
        with self._lock:
            for match in _WORD.finditer(words_only):
                word = match.group()
                stems = tokenize(word)
                unknown = stems and not stems[0].isdigit() and not self.index.mentioned(stems[0])
                if unknown and looks_like_name(word, match.start()):
                    names.append(word)
        return QueryAnalysis(terms, names)

    def search(self, question: str, limit: int = 50) -> list[Candidate]:
        """Candidates best first."""
        vector = self.embedder.embed([question])
        q = vector[0]
        with self._lock:
            index = self.index
            if index.size == 0:
                return []
            dense_ids, _ = index.dense_search(q, DENSE_POOL)
            pool = {int(i) for i in dense_ids}
            terms = [t for t in tokenize(question) if index.df(t) > 0]
            lex = index.lexical(terms) if terms else None
            if lex is not None:
                pool.update(int(i) for i in lex.top(BM25_POOL)[0])
            # Candidates and their neighbours in their article (two back: a neighbour's score
            # counts its own predecessor), scored in one matrix product.
            near = index.neighbourhood(sorted(pool), before=2, after=1)
            pool = {i for i in pool if i in near.rows}
            wanted = near.order
            pos = {sid: i for i, sid in enumerate(wanted)}
            dense = near.matrix @ q
            bm25_max = lex.max if lex is not None else 0.0
            lexical = (
                lex.scores_for(wanted) / bm25_max
                if lex is not None and bm25_max > 0
                else np.zeros(len(wanted))
            )
            base = dense + BM25_WEIGHT * lexical
            kind = answer_type(question)
            if kind:
                pattern = ANSWER_PATTERNS[kind]
                base = base + ANSWER_TYPE_BOOST * np.array(
                    [bool(pattern.search(near.rows[i].text)) for i in wanted], np.float32
                )
            source = self._source_match(terms, {near.rows[i].article_id for i in pool})

            def prev_of(sid: int) -> int | None:
                found = near.before.get(sid) or []
                return found[0] if found else None

            def next_of(sid: int) -> int | None:
                found = near.after.get(sid) or []
                return found[0] if found else None

            def score(sid: int, prev: int | None) -> float:
                before = base[pos[prev]] if prev is not None and prev in pos else 0
                return (
                    float(base[pos[sid]])
                    + PREV_WEIGHT * max(float(before), 0.0)
                    + SOURCE_WEIGHT * source.get(near.rows[sid].article_id, 0.0)
                )

            entries = []
            for sid in pool:
                i = pos[sid]
                prev, nxt = prev_of(sid), next_of(sid)
                sentence = near.rows[sid]
                before2 = near.before.get(sid, [])
                entries.append(
                    Candidate(
                        id=sid,
                        score=score(sid, prev),
                        content=sentence.text,
                        vector=near.matrix[i],
                        dense=float(dense[i]),
                        lexical=float(lexical[i]),
                        prev_score=(
                            score(prev, before2[1] if len(before2) > 1 else None)
                            if prev is not None
                            else None
                        ),
                        next_score=score(nxt, sid) if nxt is not None else None,
                        prev=near.rows[prev] if prev is not None else None,
                        next=near.rows[nxt] if nxt is not None else None,
                        article_id=sentence.article_id,
                        position=sentence.position,
                        para=sentence.para,
                        kind=sentence.kind,
                    )
                )
        entries.sort(key=lambda e: (-e.score, e.id))
        return entries[:limit]

    def _source_match(self, terms: list[str], article_ids: set[int]) -> dict[int, float]:
        """Per candidate article, the share of the question's IDF weight found in its title,
        outlet or URL: "the Bloomberg report", "Ignatius's column" point at one source."""
        if not terms:
            return {}
        n = self.index.size
        weights = {t: idf(self.index.df(t), n) for t in set(terms)}
        total = sum(weights.values())
        out = {}
        for article_id, meta_terms in self.index.source_terms(article_ids).items():
            shared = sum(w for t, w in weights.items() if t in meta_terms)
            if shared:
                out[article_id] = shared / total
        return out


def idf(df: int, n: int) -> float:
    return math.log(1 + (n - df + 0.5) / (df + 0.5))
