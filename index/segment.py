"""Split an article body into paragraphs and sentences, and mark web boilerplate.

Sentence boundaries come from syntok (abbreviations such as "U.S." and "Mr." do not split).
Boilerplate (menus, share buttons, cookie and subscription text, link lists, photo credits,
teasers of other stories) is marked, and the mark is one of the ranker's features: the same
heuristics also catch an article's own captions, table rows, figure lines and one-line
paragraphs, so nothing is ever dropped for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import syntok.segmenter as syntok

from index.text import BIDI, CONTROL, INVISIBLE, MIN_PROSE_WORDS

HEADING = "heading"
SENTENCE = "sentence"
BOILERPLATE = "boilerplate"

MAX_HEADING_WORDS = 16
ISLAND_MAX_WORDS = 25
# A "sentence" longer than this (a page with no punctuation, a giant table row) is split at
# spaces: stored, embedded and printed by `ask --json` in pieces, never as megabytes at once.
# The longest real unit in the sample and dev corpora is under 1,900 characters.
MAX_UNIT_CHARS = 2_000
LONG_LINE_WORDS = 20  # a line this long is prose even when cut off mid-sentence

# Link text may hold one level of brackets: ISW's footnote links are ``[[ii]](url)``.
# Possessive repeats (``*+``): "[x]([x](…" or "[[[…" from a hostile page took seconds per line
# while the regex backtracked; with them, each "[" is given up at once.
_MD_LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\[\]]*+\])*+)\]\((?:[^()\s]|\([^()\s]*+\))*+\)")
# An endnote mark: a number, a roman numeral or one letter in brackets ("[12]", "[xiv]", "[a]").
# A bracketed word ("[Kremlin]", "[Applause]", a menu's "[Home]") is text and stays.
_ROMAN = r"(?=[ivxlcdm])m{0,4}(?:cm|cd|d?c{0,3})(?:xc|xl|l?x{0,3})(?:ix|iv|v?i{0,3})"
_NOTE = rf"\[(?:\d{{1,4}}|[a-z]|{_ROMAN})\]"
_FOOTNOTE_MARK = re.compile(_NOTE, re.I)  # the text of a footnote link: "[ii]", "[12]"
_FOOTNOTE_LINE = re.compile(rf"(?:{_NOTE} ?)++", re.I)  # possessive: "[i]" reads two ways
# An endnote mark right after a sentence's end: "[5]" (ISW), or bare digits glued to the full
# stop ("… political control.1 Western …", "(INS).32 While", "in 2025.24 However"). syntok
# does not split there, so three sentences became one unit over the quote limit; the mark is
# dropped (it points to notes that are not shown). Bare digits count only after a word, a
# bracket or a year and before a capital or the line's end: "4.0 International", "94.1 FM"
# and "10.81 MB" are numbers.
_ENDNOTE = re.compile(
    r"(?<=[.!?”\"’)])(?:\[\d{1,4}\])++(?=\s|$)"
    r"|(?:(?<=[^\W\d_][.!?])|(?<=[)\]][.!?])|(?<=[.!?][”\"’)]))\d{1,3}(?=\s+[A-Z“\"‘]|\s*$)"
    r"|(?<=\b(?:19|20)\d\d\.)\d{1,3}(?=\s+[A-Z“\"‘])"
)
_AUTOLINK = re.compile(r"<(https?://[^<>\s]++)>")  # stops at "<": no rescans
_URL = re.compile(r"https?://\S+")
_EMPHASIS = re.compile(r"(\*\*|__|(?<![\w*])\*(?=\S)|(?<=\S)\*(?![\w*]))")
# Underscore emphasis ("_Russian Supporting Effort_(…", "ultimatums._President …_"): an
# underscore opening or closing a run of text, outside web addresses ("/_private_/", "?_t=").
_UNDERSCORE = re.compile(r"(?<![\w_])_+(?=\S)|(?<=\S)_+(?![\w_])")
_ADDRESS = re.compile(r"((?:https?://|www\.)\S+)")
# A Markdown quote mark: ">" then a space (">50% of Ukrainians" is text, not a quote).
_BLOCKQUOTE = re.compile(r"^\s{0,3}>[>\s]*\s")
# Zero-width spaces, joiners and byte-order marks some CMSs leave inside words: invisible in a
# quote, they still break search and the quote's link to its place on the page.
_BULLET = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)])\s+")
_HEADING_MARK = re.compile(r"^\s{0,3}#{1,6}\s+")
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*$")
_BOILERPLATE_PHRASES = re.compile(
    r"cookie|subscri(be|ption)|sign (up|in)|log ?in\b|newsletter|all rights reserved|copyright|©"
    r"|privacy (policy|statement)|terms (of|and conditions)|share (this|on)|follow us|advertis"
    r"|skip to|read more|related (articles|stories|posts)|click here|accept all|javascript"
    r"|your browser|download (the|our) app|permission to edit|recommended for you|most read"
    r"|\baccessed (on )?\w+ \d|comments?\b.{0,200}\bpolicy|\bdonate\b|enable (js|javascript)"
    r"|(?<!-)sponsored"  # "Sponsored", but not "US-sponsored talks"
    r"|instant alerts|be the first to know",
    re.I,
)
# An advert's label as a line of its own: inside a hard-wrapped sentence ("… in recent weeks," /
# "Advertisement" / "but the campaign took two years …") it is dropped, not joined into it.
_AD_LABEL = re.compile(
    r"(advertisement|advert|ad|sponsored|story continues below( this)? advertisement"
    r"|scroll to continue( with content)?)",
    re.I,
)
# A line ending in one of these words was cut mid-sentence (hard-wrapped).
_CONTINUES = re.compile(
    r"\b(the|a|an|of|in|on|at|to|for|with|by|from|and|or|but|that|which|who|its|their|his|her"
    r"|as|than|into|over|under|between|after|before|during|least|nearly|almost)$",
    re.I,
)
_BYLINE = re.compile(r"^(by|photo|image|credit|source|video)\b[: ]", re.I)


@dataclass
class Unit:
    """One citable (or boilerplate) unit of an article, in reading order."""

    text: str
    para: int
    seq: int  # position inside the paragraph
    kind: str  # HEADING, SENTENCE or BOILERPLATE


def _link_text(m: re.Match[str]) -> str:
    """What a link reads as: nothing for a footnote mark; its text, with an image inside it (a
    linked thumbnail, "[![alt](img)](url)") read as the image's alt text."""
    text = m.group(1)
    return "" if _FOOTNOTE_MARK.fullmatch(text) else _MD_LINK.sub(lambda i: i.group(1), text)


def clean_line(line: str) -> str:
    """Markdown syntax off, link text kept: the result reads as the page does."""
    line = CONTROL.sub(" ", BIDI.sub("", INVISIBLE.sub("", line)))  # a page's, or "&#27;"
    line = _BLOCKQUOTE.sub("", line)
    line = _HEADING_MARK.sub("", line)
    line = _BULLET.sub("", line)
    line = _MD_LINK.sub(_link_text, line)
    line = _AUTOLINK.sub("", line)
    line = _EMPHASIS.sub("", line)
    line = "".join(
        part if n % 2 else _UNDERSCORE.sub("", part) for n, part in enumerate(_ADDRESS.split(line))
    )
    line = _ENDNOTE.sub("", line)
    line = re.sub(r"\s+", " ", line).strip()
    # A line of footnote marks only ("[v]", "[xii] [xiii]") says nothing: it is skipped.
    return "" if _FOOTNOTE_LINE.fullmatch(line) else line


def _link_heavy(raw: str) -> bool:
    """Lines that are mostly links (menus, "related" lists, reference lists, share bars).
    Footnote links ("[[ii]](url)", ISW's reports cite every sentence so) are not counted:
    they make prose no less prose."""
    raw = _MD_LINK.sub(lambda m: " " if _FOOTNOTE_MARK.fullmatch(m.group(1)) else m.group(0), raw)
    links = _MD_LINK.findall(raw) + _AUTOLINK.findall(raw) + _URL.findall(raw)
    if not links:
        return False
    outside = _URL.sub("", _AUTOLINK.sub("", _MD_LINK.sub("", raw)))
    return len(outside.split()) < 6 or len(_URL.findall(raw)) >= 2


def _paragraphs(body: str) -> list[tuple[str, str]]:
    """(raw, cleaned) paragraphs. A line is a paragraph, except hard-wrapped prose, which is
    joined back: the line does not end a sentence, and it ends in a comma or a word like "the",
    or the next line starts in lower case."""
    # A paragraph is kept as its lines, with its word count and the end of its cleaned text
    # (all the joining rules look at): thousands of hard-wrapped lines are read once, not the
    # whole paragraph again for every line joined to it (seconds for 80 KB of hostile lines).
    paras: list[tuple[list[str], list[str]]] = []
    words = 0  # in the last paragraph's cleaned text
    tail = ""  # the last paragraph's cleaned text from its last line on
    for raw in body.splitlines():
        if not raw.strip():
            paras.append(([], []))
            words, tail = 0, ""
            continue
        cleaned = clean_line(raw)
        if not cleaned:  # footnote marks or a bare link only: as if the line were not there
            continue
        if tail and not _SENTENCE_END.search(tail) and _AD_LABEL.fullmatch(cleaned):
            continue  # an advert's label inside a sentence
        cut = bool(_CONTINUES.search(tail))  # a line cannot end on "the", "of", "at least"
        if (
            not _SENTENCE_END.search(tail)
            and not _HEADING_MARK.match(raw)
            and not _BULLET.match(raw)
            and (
                words >= MIN_PROSE_WORDS
                and (cleaned[:1].islower() or tail.endswith(",") or cut)
                # A page's figure blocks break a sentence before its number ("… at least" /
                # "14,383 civilian deaths and 37,541 injuries have been documented."): joined
                # when the next line ends the sentence.
                or cut
                and cleaned[:1].isdigit()
                and bool(_SENTENCE_END.search(cleaned))
            )
        ):
            paras[-1][0].append(raw.strip())
            paras[-1][1].append(cleaned)
            tail = " " + cleaned
        else:
            paras.append(([raw], [cleaned]))
            words, tail = 0, cleaned
        words += len(cleaned.split())
    joined = ((" ".join(r), " ".join(c)) for r, c in paras)
    return [(r, c) for r, c in joined if c]


def classify_paragraphs(body: str) -> list[tuple[str, str]]:
    """Label each paragraph ``SENTENCE`` (prose to split), ``HEADING`` or ``BOILERPLATE``."""
    paras = _paragraphs(body)
    labels: list[str] = []
    seen: set[str] = set()
    for raw, text in paras:
        words = len(text.split())
        key = text.casefold()
        if (
            key in seen
            or _link_heavy(raw)
            or not re.search(r"[A-Za-z]{2}", text)
            or text.endswith(("…", "..."))
            or (words < 30 and _BOILERPLATE_PHRASES.search(text))
        ):
            labels.append(BOILERPLATE)
        elif words >= MIN_PROSE_WORDS and _SENTENCE_END.search(text) or words >= LONG_LINE_WORDS:
            labels.append(SENTENCE)
        else:
            labels.append("short")
        seen.add(key)
    # Runs of three or more short lines are menus, share bars or caption lists; a short line or
    # two between prose paragraphs is a heading (or a one-line paragraph) and stays a unit.
    i = 0
    while i < len(labels):
        if labels[i] == SENTENCE:
            i += 1
            continue
        j = i
        while j < len(labels) and labels[j] != SENTENCE:
            j += 1
        for k in range(i, j):
            if labels[k] != "short":
                continue
            text = paras[k][1]
            words = len(text.split())
            heading_like = (
                j - i <= 2
                and 2 <= words <= MAX_HEADING_WORDS
                and not text.isupper()
                and not _BYLINE.match(text)
            )
            labels[k] = HEADING if heading_like else BOILERPLATE
        i = j

    # A short "prose" line islanded in boilerplate (up to two paragraphs each side, the
    # document's edge counting as boilerplate) is widget or form text (weather, sign-up).
    def islanded(k: int) -> bool:
        around = [n for n in (k - 2, k - 1, k + 1, k + 2) if 0 <= n < len(labels)]
        return len(around) >= 2 and all(labels[n] == BOILERPLATE for n in around)

    isolated = [
        k
        for k, label in enumerate(labels)
        if label == SENTENCE and len(paras[k][1].split()) < ISLAND_MAX_WORDS and islanded(k)
    ]
    for k in isolated:
        labels[k] = BOILERPLATE
    return [(paras[k][1], labels[k]) for k in range(len(paras))]


# syntok splits after a month abbreviation followed by a day ("on Jan. 23–24") and after a
# lower-case continuation; such pieces are joined back (a sentence is never split across units).
_ENDS_IN_ABBREVIATION = re.compile(
    r"\b(?:jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec|no|nos|gen|lt|col|maj|capt|sgt|sen"
    r"|rep|gov|st|mt|ft|approx|est|vs|fig|prof|dr|mr|mrs|ms|jr|sr|inc|corp|co|ltd|dept|art)\.$",
    re.I,
)
_MONTH_ABBREVIATION = re.compile(r"\b(?:jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec)\.$", re.I)
_TITLE_ABBREVIATION = re.compile(
    r"\b(?:gen|lt|col|maj|capt|sgt|sen|rep|gov|prof|dr|mr|mrs|ms|st|mt|no|nos|fig|art)\.$", re.I
)


def _joins_next(piece: str, following: str) -> bool:
    """True when syntok's boundary after ``piece`` falls inside a sentence."""
    if not following:
        return False
    # The patterns match at most 7 characters at the end: searching the last 12 gives the
    # same answers (``\b`` still sees the character before) without scanning the sentence.
    tail = piece[-12:]
    first = following[:1]
    if first.isdigit() and _MONTH_ABBREVIATION.search(tail):
        return True
    if (first.isupper() or first.isdigit()) and _TITLE_ABBREVIATION.search(tail):
        return True
    return first.islower() and bool(_ENDS_IN_ABBREVIATION.search(tail))


def split_sentences(text: str) -> list[str]:
    """Sentences as exact slices of ``text`` (offsets from syntok), so quotes match the source."""
    spans: list[tuple[int, int]] = []
    for paragraph in syntok.analyze(text):
        for sentence in paragraph:
            tokens = list(sentence)
            if not tokens:
                continue
            start = tokens[0].offset
            end = tokens[-1].offset + len(tokens[-1].value)
            if text[start:end].strip():
                spans.append((start, end))
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and _joins_next(text[merged[-1][0] : merged[-1][1]].rstrip(), text[start:end]):
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return [text[start:end].strip() for start, end in merged]


def citable(text: str) -> bool:
    """Worth indexing: some word of two letters outside links (not a bare URL, time or mark)."""
    return bool(re.search(r"[^\W\d_]{2}", _URL.sub("", text)))


def _bounded(sentence: str, limit: int = MAX_UNIT_CHARS) -> list[str]:
    """``sentence`` in pieces of at most ``limit`` characters, cut at the last space before the
    limit (anywhere, for a run without spaces)."""
    pieces = []
    while len(sentence) > limit:
        cut = sentence.rfind(" ", 0, limit + 1)
        cut = cut if cut > 0 else limit
        pieces.append(sentence[:cut].strip())
        sentence = sentence[cut:].strip()
    return [*pieces, sentence] if sentence else pieces


def segment(body: str) -> list[Unit]:
    """All units of an article body in reading order. Every paragraph is split into sentences,
    boilerplate too: its label is a ranking signal, never a reason to make text uncitable."""
    units: list[Unit] = []
    for para, (text, label) in enumerate(classify_paragraphs(body)):
        if label == HEADING:
            units.append(Unit(text, para, 0, label))
            continue
        pieces = [p for s in split_sentences(text) or [text] for p in _bounded(s)]
        for seq, sentence in enumerate(pieces):
            kind = label if re.search(r"[A-Za-z]{2}", sentence) else BOILERPLATE
            units.append(Unit(sentence, para, seq, kind))
    return units
