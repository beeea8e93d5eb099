"""Features of (question, candidate unit) pairs, computed for a whole candidate pool at once.

The learned ranker (``retrieval/rank.py``) weighs these; nothing here holds a tuned constant.
The lexical score comes through ``LexicalScorer``, so another keyword index (e.g. SQLite FTS5)
can replace bm25s: refit the ranker after swapping it (``talksbot fit-ranker``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

# Candidates: the dense and the lexical top lists, merged.
DENSE_POOL = 100
LEXICAL_POOL = 100
LEXICAL_SCORED = 400  # lexical scores looked up (rows beyond count as 0)

FEATURES = (
    "dense",  # cosine of question and unit
    "dense_gap",  # dense minus the pool's best dense
    "dense_rank",  # 1 / (1 + rank by dense among the candidates)
    "window_dense",  # cosine with the unit and its neighbours' mean vector
    "lexical",  # lexical score / the best lexical score of the question
    "coverage",  # share of the question's IDF weight whose terms the unit holds
    "lexical_rank",  # 1 / (1 + rank by lexical score among the candidates)
    "window_coverage",  # coverage by the unit and its neighbours together
    "bigrams",  # share of the question's adjacent term pairs the unit holds in a row
    "dense_x_coverage",  # both at once: about the question and using its words
    "novelty",  # log(1 + terms of the unit the question does not use): answers add something
    "prev_dense",  # the unit before, same article (0 at the edge)
    "next_dense",
    "prev_lexical",
    "next_lexical",
    "article_dense",  # best dense of any candidate in the same article
    "article_coverage",  # share of the question's IDF weight found anywhere in the article's pool
    "source",  # share of the question's IDF weight in the article's title, outlet or URL
    "type_number",  # asks "how many" and the unit holds a number
    "type_date",  # asks "when" and the unit holds a date
    "type_cause",  # asks "why" and the unit holds a causal marker
    "type_name",  # asks "who"/"which"/"where" and the unit names someone the question does not
    "boilerplate",  # marked boilerplate by the segmenter (menus, captions, table rows …)
    "heading",
    "short",  # fewer than 8 words
    "log_chars",
    "position",  # log(1 + position in the article)
)

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
_CAUSE = re.compile(
    r"\b(because|due to|as a result|in order to|so that|to allow|to enable|aimed at|in response"
    r"|following|leverage|retaliat\w*|linked|reason|amid|citing|after)\b",
    re.I,
)
_ASKS_NUMBER = re.compile(
    r"\bhow (many|much|long|big|badly|large|far|often)\b|\b(duration|value|total|number of|"
    r"percentage|share of|cost)\b",
    re.I,
)
_ASKS_NAME = re.compile(r"^\s*(who|whom|whose|which|where)\b|\b(who|which|where)\b", re.I)
_INNER_NAME = re.compile(r"(?<=[\w,;:] )[A-Z][\w'’.-]+")
_ASKS_DATE = re.compile(
    r"^\s*(when|by when|since when)\b|\bwhat (time|date|day|year|month)\b", re.I
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


def row_terms_of(text: str) -> list[str]:
    from index.search_index import tokenize

    return tokenize(text)


def idf(df: int, n: int) -> float:
    return math.log(1 + (n - df + 0.5) / (df + 0.5))


class LexicalScorer(Protocol):
    """The keyword side of search (the seam for another keyword index, e.g. FTS5)."""

    def search(self, terms: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """(index rows, scores) of the ``k`` best-scoring rows with a score above 0."""
        ...


class Bm25Scorer:
    """bm25s over the index's stemmed unit tokens."""

    def __init__(self, bm25: object, size: int) -> None:
        self.bm25 = bm25
        self.size = size

    def search(self, terms: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        if not terms or not self.size:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        scores = np.asarray(self.bm25.get_scores(list(terms)), np.float32)
        k = min(k, self.size)
        top = np.argpartition(-scores, k - 1)[:k] if k < self.size else np.arange(self.size)
        top = top[scores[top] > 0]
        return top.astype(np.int64), scores[top]


@dataclass
class Pool:
    """The candidates of one question: rows, their neighbours, and a feature matrix over both."""

    rows: np.ndarray  # index rows scored (candidates and their neighbours), sorted
    candidates: np.ndarray  # bool per entry of ``rows``: in the candidate pool itself
    features: np.ndarray  # float32 (len(rows), len(FEATURES))
    dense: np.ndarray  # cosine per entry of ``rows``
    terms: list[str]


def build_pool(
    q: np.ndarray,
    terms: list[str],
    question: str,
    *,
    matrix: np.ndarray,
    dense_index: object,  # FAISS-like: search(vectors, k) -> (scores, rows)
    lexical: LexicalScorer,
    df: dict[str, int],
    article_ids: np.ndarray,
    positions: np.ndarray,
    kinds: np.ndarray,
    chars: np.ndarray,
    texts: Sequence[str],
    row_terms: object,
    row_pairs: object,
    question_terms: list[str],
    source_terms: dict[int, set[str]],
) -> Pool:
    """Candidates for one question with their features (see ``FEATURES``)."""
    n = len(article_ids)
    _, dense_rows = dense_index.search(q[None, :], min(n, DENSE_POOL))
    pool = {int(r) for r in dense_rows[0] if r >= 0}
    # Scores of the wider list also give candidates' neighbours their lexical score.
    lex_rows, lex_scores = lexical.search(terms, LEXICAL_SCORED)
    order = np.argsort(-lex_scores, kind="stable")
    pool.update(int(r) for r in lex_rows[order[:LEXICAL_POOL]])
    lex_of = dict(zip(lex_rows.tolist(), lex_scores.tolist(), strict=True))
    wanted = np.array(sorted({m for r in pool for m in (r - 1, r, r + 1) if 0 <= m < n}), np.int64)
    is_candidate = np.array([int(r) in pool for r in wanted])
    dense = matrix[wanted] @ q
    lex_max = float(lex_scores.max()) if len(lex_scores) else 0.0
    lex = np.array([lex_of.get(int(r), 0.0) for r in wanted], np.float32)
    lex = lex / lex_max if lex_max > 0 else lex

    weights = {t: idf(df.get(t, 0), n) for t in terms}
    asked_pairs = set(zip(question_terms, question_terms[1:], strict=False))
    total = sum(weights.values()) or 1.0
    coverage = np.zeros(len(wanted), np.float32)
    held: list[set[str]] = []
    for i, r in enumerate(wanted):
        own = row_terms(int(r))
        held.append(own)
        coverage[i] = sum(w for t, w in weights.items() if t in own) / total

    pos = {int(r): i for i, r in enumerate(wanted)}
    arts = article_ids[wanted]

    def neighbour(values: np.ndarray, step: int) -> np.ndarray:
        out = np.zeros(len(wanted), np.float32)
        for i, r in enumerate(wanted):
            j = pos.get(int(r) + step)
            if j is not None and arts[j] == arts[i]:
                out[i] = values[j]
        return out

    best_dense: dict[int, float] = {}
    art_terms: dict[int, set[str]] = {}
    for i in range(len(wanted)):
        if not is_candidate[i]:
            continue
        a = int(arts[i])
        best_dense[a] = max(best_dense.get(a, -1.0), float(dense[i]))
        art_terms.setdefault(a, set()).update(held[i])
    art_cov = {
        a: sum(w for t, w in weights.items() if t in ts) / total for a, ts in art_terms.items()
    }
    source = {
        a: sum(w for t, w in weights.items() if t in source_terms.get(a, ())) / total
        for a in set(int(x) for x in arts)
    }
    kind = answer_type(question)
    pattern = ANSWER_PATTERNS.get(kind)
    typed = (
        np.array([bool(pattern.search(texts[int(r)])) for r in wanted], np.float32)
        if pattern
        else np.zeros(len(wanted), np.float32)
    )
    zero = np.zeros(len(wanted), np.float32)
    asked = set(terms)
    novelty = np.array([np.log1p(len(h - asked)) for h in held], np.float32)
    if _ASKS_NAME.search(question):
        named = np.array(
            [
                any(
                    not (set(row_terms_of(m.group())) <= asked)
                    for m in _INNER_NAME.finditer(texts[int(r)])
                )
                for r in wanted
            ],
            np.float32,
        )
    else:
        named = zero
    cand_idx = np.flatnonzero(is_candidate)

    def rank_feature(values: np.ndarray) -> np.ndarray:
        out = np.zeros(len(wanted), np.float32)
        order = cand_idx[np.argsort(-values[cand_idx], kind="stable")]
        out[order] = 1.0 / (1.0 + np.arange(len(order)))
        return out

    window_cov = np.zeros(len(wanted), np.float32)
    for i, r in enumerate(wanted):
        together = set(held[i])
        for j in (pos.get(int(r) - 1), pos.get(int(r) + 1)):
            if j is not None and arts[j] == arts[i]:
                together |= held[j]
        window_cov[i] = sum(w for t, w in weights.items() if t in together) / total

    window = matrix[wanted].copy()
    for i, r in enumerate(wanted):
        for j in (pos.get(int(r) - 1), pos.get(int(r) + 1)):
            if j is not None and arts[j] == arts[i]:
                window[i] += matrix[wanted[j]]
    window /= np.maximum(np.linalg.norm(window, axis=1, keepdims=True), 1e-9)
    pool_best = float(dense[is_candidate].max()) if is_candidate.any() else 0.0
    k = kinds[wanted]
    columns = {
        "dense": dense,
        "dense_gap": dense - pool_best,
        "dense_rank": rank_feature(dense),
        "window_dense": window @ q,
        "lexical": lex,
        "coverage": coverage,
        "lexical_rank": rank_feature(lex),
        "novelty": novelty,
        "window_coverage": window_cov,
        "bigrams": np.array(
            [len(asked_pairs & row_pairs(int(r))) / max(len(asked_pairs), 1) for r in wanted],
            np.float32,
        ),
        "dense_x_coverage": dense * coverage,
        "prev_dense": neighbour(dense, -1),
        "next_dense": neighbour(dense, 1),
        "prev_lexical": neighbour(lex, -1),
        "next_lexical": neighbour(lex, 1),
        "article_dense": np.array([best_dense.get(int(a), 0.0) for a in arts], np.float32),
        "article_coverage": np.array([art_cov.get(int(a), 0.0) for a in arts], np.float32),
        "source": np.array([source[int(a)] for a in arts], np.float32),
        "type_number": typed if kind == "number" else zero,
        "type_date": typed if kind == "date" else zero,
        "type_cause": typed if kind == "cause" else zero,
        "type_name": named,
        "boilerplate": (k == 2).astype(np.float32),
        "heading": (k == 1).astype(np.float32),
        "short": np.array([len(texts[int(r)].split()) < 8 for r in wanted], np.float32),
        "log_chars": np.log1p(chars[wanted]).astype(np.float32),
        "position": np.log1p(positions[wanted]).astype(np.float32),
    }
    features = np.column_stack([columns[name] for name in FEATURES]).astype(np.float32)
    return Pool(wanted, is_candidate, features, dense.astype(np.float32), terms)


KIND_CODES = {"sentence": 0, "heading": 1, "boilerplate": 2}
