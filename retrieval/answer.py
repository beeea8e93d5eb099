"""Answers: up to three cited sentences, or an honest abstention.

Nothing here generates text about the world: every claim shown is a quoted sentence from a
stored article, with its outlet, date and a link that jumps to the quote on the source page.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from urllib.parse import quote as urlquote

import numpy as np

from index.store import SentenceRow
from index.text import plural, tokenize
from retrieval.rank import Ranker
from retrieval.search import Candidate, Searcher

MAX_QUESTION_CHARS = 1000
MAX_QUOTE_CHARS = 400
NEAR_DUPLICATE_COSINE = 0.9

# Abstention is the fitted ranker's (``retrieval/rank.py``): evidence in, answer or not. When it
# abstains and even the best candidate's cosine is below DECLINE_BELOW, the question is off topic
# and the reply says what talksbot covers instead. A ranker without an abstainer (a model no
# ranker was fitted for) falls back to: abstain below ABSTAIN_BELOW, or on a name the corpus
# never mentions.
DECLINE_BELOW = 0.25
ABSTAIN_BELOW = 0.30

ANSWERED, ABSTAINED, DECLINED, INVALID = "answered", "abstained", "declined", "invalid"
_ANAPHORA = re.compile(
    r"^(he|she|it|they|this|that|these|those|his|her|their|its|the move|the decision|but|and"
    r"|however|instead|meanwhile|also)\b",
    re.I,
)


@dataclass
class Citation:
    quote: str
    title: str
    outlet: str
    url: str
    published: str
    score: float
    link: str
    sentence_id: int
    article_id: int


@dataclass
class ArticleRef:
    title: str
    outlet: str
    url: str
    published: str


@dataclass
class Answer:
    question: str
    status: str
    citations: list[Citation] = field(default_factory=list)
    message: str = ""
    nearest: list[ArticleRef] = field(default_factory=list)
    coverage: dict = field(default_factory=dict)
    has_more: bool = False

    @property
    def answered(self) -> bool:
        return self.status == ANSWERED

    def to_json(self) -> dict:
        """The ``ask --json`` line: question, answered, why not (``status``: answered,
        abstained (not covered), declined (off topic) or invalid, with the one-line
        ``message`` a reader is shown), citations best first."""
        question = self.question
        if len(question) > MAX_QUESTION_CHARS:  # refused as too long: not echoed whole
            question = question[:MAX_QUESTION_CHARS] + "…"
        return {
            "question": question,
            "answered": self.answered,
            "status": self.status,
            "message": self.message,
            "citations": [
                {
                    "quote": c.quote,
                    "title": c.title,
                    "outlet": c.outlet,
                    "url": c.url,
                    "published": c.published,
                    "score": round(c.score, 4),
                }
                for c in self.citations
            ],
        }


def text_fragment_link(url: str, quote: str) -> str:
    """``url#:~:text=start,end`` so a browser scrolls to (and highlights) the quote."""
    if not url:
        return ""
    core = quote.strip().strip("…").strip()
    if "…" in core:
        core = max(core.split("…"), key=len).strip()

    def enc(s: str) -> str:
        return urlquote(s, safe="").replace("-", "%2D")

    words = core.split()
    if len(words) <= 8:
        fragment = enc(core)
    else:
        fragment = f"{enc(' '.join(words[:4]))},{enc(' '.join(words[-4:]))}"
    return f"{url.split('#', 1)[0]}#:~:text={fragment}"


def needs_context(text: str) -> tuple[bool, bool]:
    """Whether a sentence cannot stand alone without the sentence before it (it opens with a
    pronoun or connective: "He said …", "But …", or closes a quotation opened earlier) or after
    it (it ends introducing what follows, "… as follows:", or opens a quotation it does not
    close)."""
    opened, closed = text.count("“"), text.count("”")
    before = bool(_ANAPHORA.match(text)) or closed > opened
    after = text.rstrip().endswith(":") or opened > closed
    return before, after


def _real_sentence(text: str) -> bool:
    """A full sentence, not a fragment: six words or more, terminal punctuation, and not a
    title-case line."""
    words = text.split()
    capitalised = sum(1 for w in words if w[:1].isupper())
    return (
        len(words) >= 6
        and text.rstrip(" \"'”’)").endswith((".", "!", "?"))
        and capitalised < 0.6 * len(words)
    )


def build_quote(
    unit_id: int,
    text: str,
    kind: str,
    prev: SentenceRow | None,
    nxt: SentenceRow | None,
    terms: list[str],
    *,
    para: int | None = None,
    prev_score: float | None = None,
    next_score: float | None = None,
    extend: str = "",
) -> tuple[str, set[int]]:
    """The quote shown for a cited unit: the unit, plus the one neighbour it needs to stand
    alone (``needs_context``) when both fit in ``MAX_QUOTE_CHARS``; else the unit alone,
    trimmed around the question's words. A heading is never glued onto a sentence (nor a
    sentence onto a heading), nor a boilerplate line onto an article's sentence.

    With ``extend`` (a setting of the fitted ranker, chosen on its training questions) a unit
    that stands alone is quoted with the better-scoring of its neighbours: ``"paragraph"``, one
    of the same paragraph; ``"sentences"``, also across a paragraph boundary when that
    neighbour is a real sentence (``_real_sentence``: web pages often split a thought into
    paragraphs). Either way two adjacent sentences of the article, verbatim."""
    want_prev, want_next = needs_context(text)

    def fits(other: SentenceRow | None) -> bool:
        return (
            other is not None
            and other.kind != "heading"
            and kind != "heading"
            and (other.kind != "boilerplate" or kind == "boilerplate")
            and len(other.text) + 1 + len(text) <= MAX_QUOTE_CHARS
        )

    if want_prev and fits(prev):
        assert prev is not None
        return f"{prev.text} {text}", {unit_id, prev.id}
    if want_next and fits(nxt):
        assert nxt is not None
        return f"{text} {nxt.text}", {unit_id, nxt.id}
    if extend and kind == "sentence":
        options = [
            (score, other, before)
            for score, other, before in ((prev_score, prev, True), (next_score, nxt, False))
            if score is not None
            and fits(other)
            and other is not None
            and other.kind == "sentence"
            and (other.para == para or (extend == "sentences" and _real_sentence(other.text)))
        ]
        if options:
            _, other, before = max(options, key=lambda o: o[0])
            joined = f"{other.text} {text}" if before else f"{text} {other.text}"
            return joined, {unit_id, other.id}
    return _trim(text, terms), {unit_id}


def _trim(text: str, terms: list[str], limit: int = MAX_QUOTE_CHARS) -> str:
    """A window of at most ``limit`` characters, placed where the question's words cluster."""
    if len(text) <= limit:
        return text
    words = list(re.finditer(r"\S+", text))
    hits = [i for i, w in enumerate(words) if set(tokenize(w.group())) & set(terms)]
    best_start, best_score = 0, -1
    for i in range(len(words)):
        end = i
        while end + 1 < len(words) and words[end + 1].end() - words[i].start() <= limit - 2:
            end += 1
        score = sum(1 for h in hits if i <= h <= end)
        if score > best_score:
            best_start, best_score = i, score
        if words[-1].end() - words[i].start() <= limit - 2:
            break
    end = best_start
    while end + 1 < len(words) and words[end + 1].end() - words[best_start].start() <= limit - 2:
        end += 1
    piece = text[words[best_start].start() : words[end].end()]
    return ("…" if best_start > 0 else "") + piece + ("…" if end < len(words) - 1 else "")


class Answerer:
    """Turns a question into an ``Answer`` using one loaded ``Searcher``."""

    def __init__(self, searcher: Searcher, ranker: Ranker | None = None) -> None:
        self.searcher = searcher
        self.ranker = ranker  # None: the searcher's (the shipped one for its model)

    def coverage(self) -> dict:
        """What the store covers (counted from the articles once per write)."""
        return self.searcher.coverage()

    def answer(self, question: str, k: int = 3, offset: int = 0) -> Answer:
        question = (question or "").strip()
        problem = validate_question(question)
        if problem:
            return Answer(question, INVALID, message=problem)
        ranker = self.ranker or self.searcher.ranker
        result = self.searcher.result(question, limit=60, ranker=ranker)
        entries, names = result.entries, result.analysis.unknown_names
        if ranker.abstain is not None:
            covered = bool(entries) and ranker.answerable(result.evidence)
        else:
            covered = result.best_dense >= ABSTAIN_BELOW and not names
        if not covered:
            # Off topic only when it names no one the coverage mentions: "Peskow" alone is far
            # from every sentence, yet gets the nearest articles, not "nothing comes close".
            if result.best_dense < DECLINE_BELOW and not result.analysis.named:
                return Answer(
                    question,
                    DECLINED,
                    # Not "outside what I cover": a vague question on the topic ("tell me
                    # about the war") lands here too, and would be told it is off topic.
                    message="Nothing in the coverage I have comes close to that. I answer "
                    "questions about news coverage of the Russia–Ukraine war and peace talks: "
                    "ask about something it reports (who, what, when, how many).",
                    coverage=self.coverage(),
                )
            return self._abstain(question, entries, names)
        picked = self._select(entries, result.analysis.terms, k + offset + 1, ranker.extend_quotes)
        citations = picked[offset : offset + k]
        if not citations:
            return self._abstain(question, entries, [])
        return Answer(question, ANSWERED, citations=citations, has_more=len(picked) > offset + k)

    def _abstain(self, question: str, entries: list[Candidate], missing: list[str]) -> Answer:
        nearest: list[ArticleRef] = []
        seen: set[int] = set()
        # By the main ranker's score: after the first, entries follow the second ranker.
        for e in sorted(entries, key=lambda e: -e.score):
            aid = e.article_id
            if aid in seen:
                continue
            seen.add(aid)
            a = self.searcher.article(aid)
            if a is None:  # deleted since the search
                continue
            nearest.append(ArticleRef(a.title, a.outlet, a.url, a.published))
            if len(nearest) == 3:
                break
        if missing:
            names = ", ".join(f"“{w}”" for w in dict.fromkeys(missing))
            message = f"The coverage I have never mentions {names}, so I cannot answer that."
        else:
            message = "I could not find anything in the coverage I have that answers this."
        return Answer(
            question,
            ABSTAINED,
            message=message,
            nearest=nearest,
            coverage=self.coverage(),
        )

    def _select(
        self, entries: list[Candidate], terms: list[str], limit: int, extend: str = ""
    ) -> list[Citation]:
        """Best distinct passages: no sentence twice, no near-identical copy of one chosen."""
        out: list[Citation] = []
        used: set[int] = set()
        chosen: list[np.ndarray] = []  # unit vectors of the passages chosen
        for e in entries:
            if len(out) >= limit:
                break
            if e.id in used:
                continue
            # The same sentence reported again (wire copy in another outlet) is skipped.
            unit = e.vector / (float(np.sqrt(e.vector @ e.vector)) + 1e-9)
            if any(float(unit @ c) >= NEAR_DUPLICATE_COSINE for c in chosen):
                continue
            a = self.searcher.article(e.article_id)
            if a is None:  # deleted since the search
                continue
            quote, ids = self._quote(e, terms, extend)
            if ids & used:
                continue
            used |= ids
            chosen.append(unit)
            out.append(
                Citation(
                    quote=quote,
                    title=a.title,
                    outlet=a.outlet,
                    url=a.url,
                    published=a.published,
                    score=e.score,
                    link=text_fragment_link(a.url, quote),
                    sentence_id=e.id,
                    article_id=a.id,
                )
            )
        return out

    def _quote(self, e: Candidate, terms: list[str], extend: str) -> tuple[str, set[int]]:
        return build_quote(
            e.id,
            e.content,
            e.kind,
            e.prev,
            e.next,
            terms,
            para=e.para,
            prev_score=e.prev_score,
            next_score=e.next_score,
            extend=extend,
        )

    def context(self, sentence_id: int, before: int = 2, after: int = 2) -> list[str]:
        """Sentences around a citation, for "more context"."""
        row = self.searcher.store.sentences([sentence_id]).get(sentence_id)
        if row is None:
            return []
        return [
            s.text
            for s in self.searcher.store.neighbours(row.article_id, row.position, before, after)
        ]


# The example a refusal offers: one the bundled sample corpus (the first run's store) answers,
# as the full coverage does; "Who mediates the talks?" was declined on the sample.
EXAMPLE_QUESTION = "What did Rubio and Lavrov discuss?"


def validate_question(question: str) -> str:
    """A one-line reason the question cannot be searched, or ''."""
    if not question:
        return f"Please ask a question, for example: {EXAMPLE_QUESTION}"
    if len(question) > MAX_QUESTION_CHARS:
        return (
            f"That question is {len(question):,} characters long; please keep it under "
            f"{MAX_QUESTION_CHARS:,}."
        )
    if not re.search(r"\w", question):
        return f"Please ask a question in words, for example: {EXAMPLE_QUESTION}"
    letters = [c for c in unicodedata.normalize("NFKC", question) if c.isalpha()]
    latin = sum(1 for c in letters if unicodedata.name(c, "").startswith("LATIN"))
    if latin * 2 < len(letters):
        # The coverage and the model are English: words of another script match nothing, and
        # an abstention would list them as names the coverage never mentions.
        return (
            "I read English-language coverage and understand questions in English, for "
            f"example: {EXAMPLE_QUESTION}"
        )
    return ""


def render_text(answer: Answer) -> str:
    """Plain-text rendering for the console chat and ``talksbot ask``."""
    if answer.status == INVALID or answer.status == DECLINED:
        return answer.message
    if answer.status == ABSTAINED:
        cov = answer.coverage
        lines = [answer.message, describe_coverage(cov)]
        if answer.nearest:
            lines.append("Nearest articles:")
            for a in answer.nearest:
                lines.append(
                    f"  - {a.title} ({source_line(a.outlet, a.published)}) {a.url}".rstrip()
                )
        return "\n".join(lines)
    lines = []
    for n, c in enumerate(answer.citations, 1):
        lines.append(f"[{n}] “{c.quote}”")
        lines.append(f"    — {c.title}, {source_line(c.outlet, c.published)}")
        if c.link:
            lines.append(f"    {c.link}")
    return "\n".join(lines)


def source_line(outlet: str, published: str) -> str:
    return ", ".join(p for p in (outlet or "unknown outlet", published or "undated") if p)


def describe_coverage(cov: dict) -> str:
    if not cov.get("articles"):
        return "The store is empty."
    span = ""
    first, last = cov.get("first_published"), cov.get("last_published")
    if first:
        span = (
            f", published {first}"
            if last in (None, "", first)
            else f", published {first} to {last}"
        )
    articles = plural(cov["articles"], "article")
    outlets = cov.get("outlets") or 0
    source = f" from {plural(outlets, 'outlet')}" if outlets else " (outlets not recorded)"
    return f"My coverage: {articles}{source}{span}."
