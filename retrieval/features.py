"""Features of (question, candidate unit) pairs, computed for a whole candidate pool at once.

The learned ranker (``retrieval/rank.py``) weighs these; nothing here holds a tuned constant.
Candidates, scores and rows come through ``index.backend.SearchBackend`` (ids, never FAISS or
bm25s objects); another backend needs the ranker refitted (``talksbot fit-ranker``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from index.backend import SearchBackend
from index.live_index import Neighbourhood, bm25_idf
from index.unit_features import CAUSE, DATE, NUMBER, UnitInfo, unit_info
from retrieval.pieces import PieceMatcher

# Candidates: the dense and the lexical top lists, merged.
DENSE_POOL = 100
LEXICAL_POOL = 100
LEXICAL_SCORED = 400  # lexical scores looked up (rows beyond count as 0)
# What other articles say ("support") is looked for among the question's dense candidates, all
# of them: out of fold over four fold seeds (hit@1 / hit@3 / MRR) the closest 10 scored
# .524/.701/.618, 20 .524/.709/.622, 40 .524/.722/.627, 60 .524/.717/.627, all 100
# .524/.717/.626; past 40 within a question, so no count is picked from the dev set.
SUPPORT_POOL = DENSE_POOL

FEATURES = (
    "dense",  # cosine of question and unit
    "dense_gap",  # dense minus the pool's best dense
    "dense_rank",  # 1 / (1 + rank by dense among the candidates)
    "window_dense",  # cosine with the unit and its neighbours' mean vector
    "lexical",  # lexical score / the best lexical score of the question
    "coverage",  # share of the question's IDF weight whose terms the unit holds
    "piece_recall",  # the question's word pieces softly matched in the unit (retrieval.pieces)
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
    "article_rank",  # 1 / (1 + rank by dense among the scored units of the same article)
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
    "support",  # best cosine with one of the question's closest units in another article
)
# Features the first citation is chosen without (``rank.Ranker.rest`` weighs them for the
# others). Fitted, ``support`` weighs negatively there: after the first citation, what many
# articles near the question also say (background, wire copies) goes lower. As a feature for the
# first citation too, it picked that one worse out of fold. ``article_rank`` weighs positively
# there: the citations after the first lean to each article's own closest sentence. As a
# feature for the first citation too, it picked that one worse with mpnet out of fold (four
# fold seeds: hit@1 .498 against .512) and no better with MiniLM (.526 against .524).
LATER_ONLY = ("support", "article_rank")

_ASKS_NUMBER = re.compile(
    r"\bhow (many|much|long|big|badly|large|far|often)\b|\b(duration|value|total|number of|"
    r"percentage|share of|cost)\b",
    re.I,
)
_ASKS_DATE = re.compile(
    r"^\s*(when|by when|since when)\b|\bwhat (time|date|day|year|month)\b", re.I
)
_INTERROGATIVE = re.compile(r"\b(who|whom|whose|which|where|when|why|how|what)\b", re.I)
_HOW_MUCH = re.compile(r"how (many|much|long|big|badly|large|far|often)\b", re.I)
_YES_NO = re.compile(
    r"^\s*(is|are|was|were|will|would|do|does|did|can|could|has|have|had|should)\b", re.I
)
_NAME_WORDS = frozenset({"who", "whom", "whose", "which", "where"})
ANSWER_PATTERNS = {"number": NUMBER, "date": DATE, "cause": CAUSE}


def interrogative(question: str) -> str:
    """The question's first interrogative word, lower-cased ("how much" for how many/much/
    long …); "" for a yes/no question (it opens with an auxiliary: an interrogative inside it,
    "… when Ukraine votes", asks for nothing) or a question without one. The first one decides
    what is asked: "how did they work out the value" asks how, not for a number, and "why did
    Beijing caution its nationals who live in Russia" asks why, not who."""
    if _YES_NO.match(question):
        return ""
    m = _INTERROGATIVE.search(question)
    if m is None:
        return ""
    word = m.group(1).lower()
    return "how much" if word == "how" and _HOW_MUCH.match(question, m.start()) else word


def answer_type(question: str) -> str:
    """What kind of answer the question asks for, "number", "date", "cause" or "" (classic
    answer-type matching: a "how many" answer holds a number, a "why" answer a cause). Words
    such as "total" or "what year" count only in a "what" question or one without an
    interrogative ("geneva talks day two duration")."""
    word = interrogative(question)
    if word == "how much":
        return "number"
    if word == "when":
        return "date"
    if word == "why":
        return "cause"
    if word == "what" or (word == "" and not _YES_NO.match(question)):
        if _ASKS_NUMBER.search(question):
            return "number"
        if _ASKS_DATE.search(question):
            return "date"
    return ""


def asks_name(question: str) -> bool:
    """A "who"/"which"/"where" question (its first interrogative): its answer names someone or
    somewhere."""
    return interrogative(question) in _NAME_WORDS


@dataclass
class Pool:
    """The candidates of one question: rows, their neighbours, and a feature matrix over both."""

    rows: np.ndarray  # sentence ids scored (candidates and their neighbours), ascending
    candidates: np.ndarray  # bool per entry of ``rows``: in the candidate pool itself
    features: np.ndarray  # float32 (len(rows), len(FEATURES))
    dense: np.ndarray  # cosine per entry of ``rows``
    terms: list[str]
    near: Neighbourhood  # their stored rows, vectors and neighbour links

    @property
    def texts(self) -> list[str]:
        """The text of each entry of ``rows``."""
        return [self.near.rows[int(r)].text for r in self.rows]


# What features need of a unit's text alone: computed at ingest and stored (index/unit_features.py
# is the one place that computes them), read with the candidates' rows.
RowInfo = UnitInfo
row_info = unit_info


def build_pool(
    q: np.ndarray,
    terms: list[str],
    question: str,
    *,
    backend: SearchBackend,
    info: Callable[[int, str], RowInfo],
    question_terms: list[str],
    spellings: dict[str, list[str]] | None = None,
    pieces: PieceMatcher | None = None,
) -> Pool:
    """Candidates for one question with their features (see ``FEATURES``); vectorised over
    the candidates and their neighbours, whose rows are read from the store for this query.
    ``spellings``: for a term the corpus spells otherwise, its spellings, searched and counted
    as that term. ``pieces``: the soft piece matcher (``piece_recall`` is 0 without one)."""
    n = backend.size
    dense_ids, _ = backend.dense_search(q, DENSE_POOL)
    pool = {int(r) for r in dense_ids}
    # Scores of the wider list also give candidates' neighbours their lexical score.
    spellings = spellings or {}
    # Each term's (or its spellings') document frequency, looked up once: a lookup counts the
    # tail's postings of the word, and both the search and the IDF weights below need it.
    df_of = {v: backend.df(v) for t in terms for v in spellings.get(t, [t])}
    searched = [v for v, df in df_of.items() if df > 0]
    if searched:
        lex_rows, lex_scores = backend.lexical(searched).top(LEXICAL_SCORED)
    else:
        lex_rows, lex_scores = np.zeros(0, np.int64), np.zeros(0, np.float32)
    order = np.argsort(-lex_scores, kind="stable")
    pool.update(int(r) for r in lex_rows[order[:LEXICAL_POOL]])
    near = backend.neighbourhood(sorted(pool), before=1, after=1)
    wanted = np.array(near.order, np.int64)  # ascending ids: candidates and their neighbours
    m = len(wanted)
    ids = near.order  # = wanted, as Python ints
    # Membership by set and by binary search in the sorted ids: ``np.isin`` sorts both sides.
    is_candidate = np.fromiter((r in pool for r in ids), bool, m)
    vectors = near.matrix
    dense = vectors @ q
    lex_max = float(lex_scores.max()) if len(lex_scores) else 0.0
    lex = np.zeros(m, np.float32)
    at_lex = np.searchsorted(wanted, lex_rows)
    found = wanted[np.minimum(at_lex, m - 1)] == lex_rows if m else np.zeros(len(lex_rows), bool)
    lex[at_lex[found]] = lex_scores[found]
    lex = lex / lex_max if lex_max > 0 else lex
    rows = [near.rows[r] for r in ids]
    stored = near.units
    infos = [stored.get(r) or info(r, row.text) for r, row in zip(ids, rows, strict=True)]
    arts = np.array([row.article_id for row in rows], np.int64)

    # Neighbours inside the scored units and the same article.
    at = {r: i for i, r in enumerate(ids)}
    prev_of, next_of = near.prev_of, near.next_of
    prev_i = np.array([at.get(prev_of.get(r, -1), 0) for r in ids], np.int64)
    next_i = np.array([at.get(next_of.get(r, -1), 0) for r in ids], np.int64)
    has_prev = np.array([r in prev_of for r in ids], bool)
    has_next = np.array([r in next_of for r in ids], bool)

    def neighbour(values: np.ndarray, idx: np.ndarray, ok: np.ndarray) -> np.ndarray:
        return np.where(ok, values[idx], 0.0).astype(np.float32)

    weights = np.array(
        [bm25_idf(sum(df_of[v] for v in spellings.get(t, [t])), n) for t in terms], np.float32
    )
    total = float(weights.sum()) or 1.0
    held = holding_spelt([x.joined for x in infos], terms, spellings)
    coverage = (held @ weights) / total
    together = held | (held[prev_i] & has_prev[:, None]) | (held[next_i] & has_next[:, None])
    window_cov = (together @ weights) / total

    # Per article, over the candidates: best cosine, and which question terms occur at all.
    codes, art_index = np.unique(arts, return_inverse=True)
    best = np.full(len(codes), -1.0, np.float32)
    np.maximum.at(best, art_index[is_candidate], dense[is_candidate])
    art_held = np.zeros((len(codes), len(terms)), bool)
    np.logical_or.at(art_held, art_index[is_candidate], held[is_candidate])
    art_cov = (art_held @ weights) / total
    sources = backend.source_terms({int(a) for a in codes})
    src = holding_spelt([sources.get(int(a), "") for a in codes], terms, spellings)
    source = (src @ weights) / total

    window = vectors + vectors[prev_i] * has_prev[:, None] + vectors[next_i] * has_next[:, None]
    window /= np.maximum(np.linalg.norm(window, axis=1, keepdims=True), 1e-9)

    kind = answer_type(question)
    zero = np.zeros(m, np.float32)
    typed = np.array([getattr(x, kind) for x in infos], np.float32) if kind else zero
    asked = set(terms)
    asked_pairs = set(zip(question_terms, question_terms[1:], strict=False))
    # len(x.terms - asked): ``terms`` are the asked words a unit can hold, each once.
    sizes = np.array([x.distinct for x in infos], np.int64)
    novelty = np.log1p(sizes - held.sum(axis=1)).astype(np.float32)
    named = (
        np.array([any(not (name <= asked) for name in x.names) for x in infos], np.float32)
        if asks_name(question)
        else zero
    )
    cand_idx = np.flatnonzero(is_candidate)

    def by(values: np.ndarray) -> np.ndarray:
        """The candidates' indices, best first (ties keep id order)."""
        return cand_idx[np.argsort(-values[cand_idx], kind="stable")]

    def rank_feature(ranked: np.ndarray) -> np.ndarray:
        out = np.zeros(m, np.float32)
        out[ranked] = 1.0 / (1.0 + np.arange(len(ranked)))
        return out

    pool_best = float(dense[is_candidate].max()) if is_candidate.any() else 0.0
    by_dense = by(dense)
    k = np.array([KIND_CODES.get(row.kind, 2) for row in rows], np.int8)
    chars = np.array([len(row.text) for row in rows], np.float32)
    positions = np.array([row.position for row in rows], np.float32)
    columns = {
        "dense": dense,
        "dense_gap": dense - pool_best,
        "dense_rank": rank_feature(by_dense),
        "window_dense": window @ q,
        "lexical": lex,
        "coverage": coverage,
        "piece_recall": piece_recall(pieces, question, rows, cand_idx, m),
        "lexical_rank": rank_feature(by(lex)),
        "novelty": novelty,
        "window_coverage": window_cov,
        "bigrams": bigrams(infos, held, terms, asked_pairs),
        "dense_x_coverage": dense * coverage,
        "prev_dense": neighbour(dense, prev_i, has_prev),
        "next_dense": neighbour(dense, next_i, has_next),
        "prev_lexical": neighbour(lex, prev_i, has_prev),
        "next_lexical": neighbour(lex, next_i, has_next),
        "article_dense": best[art_index].clip(0.0, None),
        "article_coverage": art_cov[art_index],
        "article_rank": article_rank(dense, art_index),
        "source": source[art_index],
        "type_number": typed if kind == "number" else zero,
        "type_date": typed if kind == "date" else zero,
        "type_cause": typed if kind == "cause" else zero,
        "type_name": named,
        "boilerplate": (k == 2).astype(np.float32),
        "heading": (k == 1).astype(np.float32),
        "short": np.array([x.short for x in infos], np.float32),
        "log_chars": np.log1p(chars).astype(np.float32),
        "position": np.log1p(positions).astype(np.float32),
        "support": support(vectors, arts, by_dense[:SUPPORT_POOL]),
    }
    features = np.column_stack([columns[name] for name in FEATURES]).astype(np.float32)
    return Pool(wanted, is_candidate, features, dense.astype(np.float32), terms, near)


def piece_recall(
    pieces: PieceMatcher | None, question: str, rows: list, cand_idx: np.ndarray, m: int
) -> np.ndarray:
    """``PieceMatcher.recall`` of the candidates (0 for their neighbours and without a
    matcher). Citations are chosen among candidates; a neighbour's score only decides which
    side a quote is extended to, and leaving it at 0 changed no figure out of fold, while
    reading the neighbours' pieces too more than doubled the cost (~480 units a question on
    the dev corpus instead of ~200)."""
    out = np.zeros(m, np.float32)
    if pieces is not None and len(cand_idx):
        out[cand_idx] = pieces.recall(question, [rows[int(i)].text for i in cand_idx])
    return out


def article_rank(dense: np.ndarray, art_index: np.ndarray) -> np.ndarray:
    """1 / (1 + each unit's rank by cosine among the scored units of its own article): which
    of an article's sentences is closest to the question, whatever the article's own rank (the
    pool-wide ``dense_rank`` cannot tell an article's best sentence from its runner-up when
    other articles come between them). Ties keep id order."""
    order = np.lexsort((-dense, art_index))  # by article, then closest first
    grouped = art_index[order]
    first = np.searchsorted(grouped, grouped)  # where each unit's article starts in ``order``
    out = np.empty(len(dense), np.float32)
    out[order] = 1.0 / (1.0 + np.arange(len(order)) - first)
    return out


def support(vectors: np.ndarray, arts: np.ndarray, closest: np.ndarray) -> np.ndarray:
    """Each unit's best cosine with one of ``closest`` (indices into ``vectors``) from another
    article, at least 0: how closely another article says the same thing (a wire copy, the
    background every report repeats). The ranker learns which way it counts.

    One matrix-vector product per closest unit, not one matrix product: OpenBLAS runs a matrix
    product this size on two threads, whose spinning slowed the embedding and SQLite of the
    same answer (warm p50 20.7 ms against 14.1, p95 39.9 against 16.5, on the dev questions)."""
    out = np.zeros(len(vectors), np.float32)
    for c in closest:
        sims = vectors @ vectors[c]
        sims[arts == arts[c]] = 0.0
        np.maximum(out, sims, out=out)
    return out


KIND_CODES = {"sentence": 0, "heading": 1, "boilerplate": 2}


def holding(joined: list[str], terms: list[str]) -> np.ndarray:
    """Which of these token strings (each space-joined, as stored for units and articles)
    hold which terms (bool, strings x terms): ``term in joined[i].split()``.

    One search per term over all the strings joined into one, instead of a test per string
    and term: a scored pool is ~600 units at a million, and those tests were ~1.5 ms of a
    20 ms answer. A match `` term `` cannot span two strings (a newline parts them; tokens
    hold no whitespace)."""
    out = np.zeros((len(joined), len(terms)), bool)
    if not joined or not terms:
        return out
    parts = [f" {j} \n" for j in joined]
    starts = np.cumsum([0] + [len(part) for part in parts[:-1]])
    text = "".join(parts)
    for column, term in enumerate(terms):
        found = [m.start() for m in re.finditer(re.escape(f" {term} "), text)]
        if found:
            out[np.searchsorted(starts, found, side="right") - 1, column] = True
    return out


def holding_spelt(
    joined: list[str], terms: list[str], spellings: dict[str, list[str]]
) -> np.ndarray:
    """``holding``, a term with ``spellings`` held where any of its spellings is."""
    out = holding(joined, terms)
    for column, term in enumerate(terms):
        if spellings.get(term):
            out[:, column] = holding(joined, spellings[term]).any(axis=1)
    return out


def bigrams(
    infos: list[RowInfo], held: np.ndarray, terms: list[str], asked: set[tuple[str, str]]
) -> np.ndarray:
    """Share of the question's adjacent term pairs each unit holds in a row; only units that
    hold both words of some pair (``held``) are looked at."""
    out = np.zeros(len(infos), np.float32)
    column = {t: i for i, t in enumerate(terms)}
    maybe = np.zeros(len(infos), bool)
    for a, b in asked:
        if a in column and b in column:
            maybe |= held[:, column[a]] & held[:, column[b]]
    for i in np.flatnonzero(maybe):
        out[i] = len(asked & infos[i].pairs) / max(len(asked), 1)
    return out
