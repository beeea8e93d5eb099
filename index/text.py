"""Words as search sees them, shared by the write side (indexing, dedup) and the read side
(queries): one tokenizer and one folding, so a question meets the corpus on equal terms."""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

STOPWORDS = frozenset(
    """
    a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for
    from further had has have having he her here hers herself him himself his how i if in
    into is it its itself just me more most my myself no nor not now of off on once only or
    other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up
    very was we were what when where which while who whom why will with would you your yours
    yourself yourselves s t don didn doesn isn wasn weren won wouldn shouldn couldn say said
    says also still ago according get got
    """.split()
)
# A line of prose has at least this many words (the segmenter's rule; answers cite a heading
# alone only when it is this long).
MIN_PROSE_WORDS = 7
# Control characters (C0 but tab and newline, DEL, C1): never text in an article, and an
# escape sequence printed to a terminal (``talksbot ask`` shows quotes, titles and outlets)
# would drive the operator's terminal.
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Bidirectional formatting characters (embeddings, overrides, isolates, marks): dropped, not
# spaced ("Kyiv\u200e's" stays one word), as "\u202esretueR" displays as "Reuters".
BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# Zero-width spaces and joiners, word joiner, byte-order mark, soft hyphen: dropped too.
INVISIBLE = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad]")
# Blank in every font though Unicode calls some of them letters (Hangul fillers) or marks: also
# the combining grapheme joiner, variation selectors and tag characters. Dropped from what must
# show something (a subscription topic); article text keeps them (emoji sequences use them).
BLANK = re.compile("[\u115f\u1160\u3164\uffa0\u034f\ufe00-\ufe0f\U000e0000-\U000e007f]")


def one_line(text: str, limit: int) -> str:
    """``text`` as a title or name is shown: control characters dropped, whitespace runs made
    one space, and at most ``limit`` characters (cut at a word, with an ellipsis)."""
    text = " ".join(CONTROL.sub(" ", BIDI.sub("", text)).split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut) + "…"


_TOKEN = re.compile(r"\w+(?:[.'’]\w+)*", re.UNICODE)


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


_MONTHS = {
    "jan": "january",
    "feb": "february",
    "mar": "march",
    "apr": "april",
    "jun": "june",
    "jul": "july",
    "aug": "august",
    "sep": "september",
    "sept": "september",
    "oct": "october",
    "nov": "november",
    "dec": "december",
}
# British -ise/-isation spellings to -ize, so "demilitarised" meets "demilitarized".
_BRITISH = re.compile(r"(?<=[a-z]{4})is(e|es|ed|ing|ation|ations)$")


def fold_token(token: str) -> str:
    """One spelling per word: case, possessive, dots ("U.S."), month abbreviations, -ise."""
    token = token.casefold().replace("’", "'")
    token = re.sub(r"'s$", "", token)
    token = token.replace(".", "").replace("'", "")
    token = _MONTHS.get(token, token)
    return _BRITISH.sub(lambda m: "iz" + m.group(1), token)


def _term(word: str) -> str | None:
    """One raw word as search sees it, or None when it is not a search term (a stopword)."""
    folded = fold_token(word)
    if not folded or folded in STOPWORDS or (len(folded) == 1 and not folded.isdigit()):
        return None
    return _stemmer().stemWord(folded)


class _TermCache(dict):
    """raw word -> ``_term(word)``: every word is folded and stemmed once per process (the
    same few hundred thousand words recur across a million sentences); bounded."""

    limit = 300_000

    def __missing__(self, word: str) -> str | None:
        if len(self) >= self.limit:
            self.clear()
        term = self[word] = _term(word)
        return term


_TERMS = _TermCache()


def tokenize(text: str) -> list[str]:
    """Lower-cased, stop-worded, Snowball-stemmed tokens ("U.S." -> "us", "talks" -> "talk")."""
    return [t for t in map(_TERMS.__getitem__, _TOKEN.findall(text)) if t is not None]


def tokenize_uncached(text: str) -> list[str]:
    """``tokenize`` word by word without the cache (what the cache must always agree with)."""
    words = [fold_token(t) for t in _TOKEN.findall(text)]
    words = [w for w in words if w and w not in STOPWORDS and (len(w) > 1 or w.isdigit())]
    return _stemmer().stemWords(words)


def plural(n: int, noun: str) -> str:
    """``n`` and the noun, in the plural unless ``n`` is 1 ("1 article", "0 articles")."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def text_hash(text: str) -> str:
    """Identity of a sentence across copies: case, punctuation and spacing folded."""
    folded = re.sub(r"[\W_]+", " ", text.casefold()).strip()
    return hashlib.blake2b(folded.encode(), digest_size=10).hexdigest()


def ascii_int(text: str, digits: int = 9) -> int | None:
    """``text`` as a whole number written in ASCII digits ("12"), else None: ``str.isdigit``
    also accepts "²" and "٣", which ``int()`` then refuses or reads as something else."""
    return int(text) if re.fullmatch(rf"[0-9]{{1,{digits}}}", text or "") else None
