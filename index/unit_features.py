"""What ranking needs of a unit's text alone, whatever the question: the one place where
per-unit (question-independent) features are computed.

Ingest computes them once per searchable unit and stores them beside the unit
(``sentences.unit_terms`` / ``unit_flags`` / ``unit_names``),
so a query reads them with the candidates' rows instead of running the answer-type patterns
over ~800 candidate and neighbour texts. ``retrieval/features.py`` turns them into the
ranker's features. A store whose stored values were made by other code (``meta``
``unit_features_version`` differs from ``UNIT_FEATURES_VERSION``) has them recomputed on open
(``index.terms.fill_once``); until then readers compute them at query time. Adding or changing
a per-unit feature: change ``unit_info``/``encode``/``decode`` and bump the version.

The answer-type patterns are run through exact shortcuts (``has_number``, ``has_date``,
``has_cause``): a pattern is an alternation, so it matches a text iff one of its alternatives
does; alternatives that start with a digit or literal are cheap for ``re`` to search, and the
ones that start with ``\\b`` and a word are tried only when the lower-cased text holds that word
at all. The shortcuts are checked against the patterns themselves in the tests.
"""

from __future__ import annotations

import re

from index.text import tokenize

UNIT_FEATURES_VERSION = "2"  # 2: flags hold the distinct-token count

_NUMBER_WORDS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty"
    "|fifty|hundred|thousand|million|billion|trillion|dozen|half"
)
_MONTHS3 = "jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec"
_WEEKDAYS = "monday|tuesday|wednesday|thursday|friday|saturday|sunday"
_RELATIVE = "yesterday|today|tomorrow|last week|this week|next week|early|late|mid"
_MONTHS = "january|february|march|april|june|july|august|september|october|november|december"
_CAUSES = (
    "because|due to|as a result|in order to|so that|to allow|to enable|aimed at|in response"
    "|following|leverage|retaliat\\w*|linked|reason|amid|citing|after"
)
# The date pattern's alternatives, in order; DATE is exactly their alternation.
_DATE_PARTS = (
    r"\b(19|20)\d\d\b",
    rf"\b({_MONTHS3})[a-z]*\.? \d",
    rf"\d{{1,2}} ({_MONTHS3})",
    rf"\b({_WEEKDAYS})\b",
    r"\d ?(am|pm)\b",
    rf"\b({_RELATIVE})\b",
    rf"\b({_MONTHS})\b",
)

NUMBER = re.compile(rf"\d|\b({_NUMBER_WORDS})\b", re.I)
DATE = re.compile("|".join(_DATE_PARTS), re.I)
CAUSE = re.compile(rf"\b({_CAUSES})\b", re.I)
INNER_NAME = re.compile(r"(?<=[\w,;:] )[A-Z][\w'’.-]+")

# Characters other than ASCII letters that ``re.I`` matches to an ASCII letter: texts holding
# one skip the lower-cased shortcuts (checked against ``re`` over all of Unicode in the tests).
_FOLDS_TO_ASCII = re.compile("[\u0130\u0131\u017f\u212a]")
_DIGIT = re.compile(r"\d")
_NUMBER_WORD = re.compile(rf"\b({_NUMBER_WORDS})\b", re.I)
_NUMBER_KEYS = tuple(_NUMBER_WORDS.split("|"))
_YEAR = re.compile(r"(?:19|20)(?<=\b\d\d)\d\d\b")  # = _DATE_PARTS[0], searched by its digits
_DAY_MONTH = re.compile(rf"\d ({_MONTHS3})", re.I)  # some match iff _DATE_PARTS[2] matches
_CLOCK = re.compile(_DATE_PARTS[4], re.I)
_MONTH_WORD = re.compile(f"{_DATE_PARTS[1]}|{_DATE_PARTS[6]}", re.I)
_WEEKDAY = re.compile(_DATE_PARTS[3], re.I)
_RELATIVE_WORD = re.compile(_DATE_PARTS[5], re.I)
_MONTH_KEYS = tuple(_MONTHS3.split("|"))
_RELATIVE_KEYS = ("yesterday", "today", "tomorrow", "week", "early", "late", "mid")
_CAUSE_KEYS = tuple(k.replace("\\w*", "") for k in _CAUSES.split("|"))
_INNER_NAME_FAST = re.compile(r"[A-Z](?<=[\w,;:] [A-Z])[\w'’.-]+")  # = INNER_NAME


def _has_any(low: str, keys: tuple[str, ...]) -> bool:
    return any(k in low for k in keys)


def has_number(text: str) -> bool:
    """``bool(NUMBER.search(text))``, faster."""
    if _DIGIT.search(text):
        return True
    if _FOLDS_TO_ASCII.search(text) or _has_any(text.lower(), _NUMBER_KEYS):
        return bool(_NUMBER_WORD.search(text))
    return False


def has_date(text: str) -> bool:
    """``bool(DATE.search(text))``, faster."""
    if _YEAR.search(text) or _DAY_MONTH.search(text) or _CLOCK.search(text):
        return True
    if _FOLDS_TO_ASCII.search(text):
        return bool(DATE.search(text))
    low = text.lower()
    return bool(
        (_has_any(low, _MONTH_KEYS) and _MONTH_WORD.search(text))
        or ("day" in low and _WEEKDAY.search(text))
        or (_has_any(low, _RELATIVE_KEYS) and _RELATIVE_WORD.search(text))
    )


def has_cause(text: str) -> bool:
    """``bool(CAUSE.search(text))``, faster."""
    if _FOLDS_TO_ASCII.search(text) or _has_any(text.lower(), _CAUSE_KEYS):
        return bool(CAUSE.search(text))
    return False


def inner_names(text: str) -> tuple[frozenset[str], ...]:
    """Stems of each capitalised word inside the text (not at its start): names it uses."""
    return tuple(frozenset(tokenize(m.group())) for m in _INNER_NAME_FAST.finditer(text))


class UnitInfo:
    """A unit's question-independent features. Built per candidate per query from stored
    values: only the space-joined tokens are kept, and the token list and sets are made only
    when a feature asks for them (most candidates need neither: which question terms a unit
    holds is found in ``joined``, see ``retrieval.features.holding``, and ``distinct`` is
    stored in the flags)."""

    __slots__ = ("joined", "flags", "names_text", "_pairs", "_names")

    def __init__(self, joined: str, flags: int, names_text: str) -> None:
        self.joined = joined  # ``tokenize(text)``, space-joined
        self.flags = flags  # see ``encode``
        self.names_text = names_text
        self._pairs: frozenset[tuple[str, str]] | None = None
        self._names: tuple[frozenset[str], ...] | None = None

    @property
    def tokens(self) -> list[str]:
        return self.joined.split()

    @property
    def terms(self) -> frozenset[str]:
        """Its distinct tokens."""
        return frozenset(self.joined.split())

    @property
    def distinct(self) -> int:
        """How many distinct tokens it has (``len(terms)``, stored)."""
        return self.flags >> _DISTINCT_SHIFT

    @property
    def pairs(self) -> frozenset[tuple[str, str]]:
        """Adjacent token pairs."""
        if self._pairs is None:
            tokens = self.tokens
            self._pairs = frozenset(zip(tokens, tokens[1:], strict=False))
        return self._pairs

    @property
    def names(self) -> tuple[frozenset[str], ...]:
        """Stems of each capitalised word inside the text (``inner_names``)."""
        if self._names is None:
            self._names = tuple(frozenset(n.split()) for n in self.names_text.split("|")[1:])
        return self._names

    @property
    def short(self) -> bool:
        """Fewer than 8 words."""
        return bool(self.flags & _SHORT)

    @property
    def number(self) -> bool:
        """Holds a number (``NUMBER``)."""
        return bool(self.flags & _NUMBER_BIT)

    @property
    def date(self) -> bool:
        """Holds a date (``DATE``)."""
        return bool(self.flags & _DATE_BIT)

    @property
    def cause(self) -> bool:
        """Holds a causal marker (``CAUSE``)."""
        return bool(self.flags & _CAUSE_BIT)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, UnitInfo):
            return NotImplemented
        return (self.joined, self.flags, self.names_text) == (
            other.joined,
            other.flags,
            other.names_text,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"UnitInfo({self.joined!r}, {self.flags}, {self.names_text!r})"


def unit_info(text: str, tokens: list[str] | None = None) -> UnitInfo:
    """Compute a unit's features from its text (``tokens``: its ``tokenize``, if known)."""
    return decode(*encode(text, tokens))


_SHORT, _NUMBER_BIT, _DATE_BIT, _CAUSE_BIT = 1, 2, 4, 8
_DISTINCT_SHIFT = 4  # the flags' higher bits: how many distinct tokens


def encode(text: str, tokens: list[str] | None = None) -> tuple[str, int, str]:
    """What is stored for a unit: (tokens space-joined, flags, names); names as ``|stem stem``
    per name, in order ('' when none). ``tokens``: ``tokenize(text)`` if already known."""
    tokens = tokenize(text) if tokens is None else tokens
    flags = (
        len(set(tokens)) << _DISTINCT_SHIFT
        | (_SHORT if len(text.split()) < 8 else 0)
        | (_NUMBER_BIT if has_number(text) else 0)
        | (_DATE_BIT if has_date(text) else 0)
        | (_CAUSE_BIT if has_cause(text) else 0)
    )
    names = "".join("|" + " ".join(sorted(name)) for name in inner_names(text))
    return " ".join(tokens), flags, names


def decode(terms: str, flags: int, names: str) -> UnitInfo:
    """A unit's features from its stored tokens (space-joined), flags and names."""
    return UnitInfo(terms, flags, names)
