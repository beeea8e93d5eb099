"""Does the corpus mention a name the question uses, allowing other spellings?

Questions spell names as people type them: "zelenskiy" for Zelensky, "witkof" for Witkoff,
"kiis" for KIIS. A word counts as known when its stem is in the corpus's vocabulary exactly,
when its transliteration skeleton matches a vocabulary word's, or when it is within a small
edit distance of one (rapidfuzz: a near ratio, or one typo counting a swap of two letters as
one, "lavorv" for Lavrov).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA

FUZZY_MIN_CHARS = 5  # shorter words match only exactly or by skeleton
FUZZY_SCORE = 85.0  # rapidfuzz ratio (0-100) for a near spelling
# Bounds on the work of one fuzzy look-up, not fitted weights: how many of the nearest are
# weighed, and the longest word compared (no name is longer; a 4,000-letter "word" took 0.4 s
# a scan).
FUZZY_CANDIDATES = 50
FUZZY_MAX_CHARS = 40
# Skeletons this short also match at one typo (a second pass over the vocabulary, ~25 ms at
# 400,000 words, only for a word the corpus does not spell).
OSA_MAX_CHARS = 6
# A skeleton more stems share than this spells no one name (ordinals "4th" ... "1008th", numbers
# with units, ids; a fetched page can bring any number): a word with it is known, as ever, but
# searched as typed. A bound on the work one question makes, not a fitted weight: the largest
# name's bucket in the dev corpus holds 7 stems ("ukrain", "ukraine_", "20ukrain", ...).
MAX_SPELLINGS = 16

# Transliteration variants folded to one skeleton: ij/iy/yi/y/ii -> i, ks/x, kh/h, w/v, ph/f,
# zh/j, ts/tz/c, doubled letters once, a final -of as -ov, a silent final e or h dropped.
_SKELETON_RULES = (
    (re.compile(r"[^a-z]"), ""),
    (re.compile(r"(iy|yi|ij|ii|y|j)"), "i"),
    (re.compile(r"kh"), "h"),
    (re.compile(r"ks|cks"), "x"),
    (re.compile(r"ph"), "f"),
    (re.compile(r"w"), "v"),
    (re.compile(r"zh"), "i"),
    (re.compile(r"tz|ts|cz"), "c"),
    (re.compile(r"ck|q"), "k"),
    (re.compile(r"(.)\1+"), r"\1"),
    (re.compile(r"(?<=o)f$"), "v"),  # Russian -ов as -ov, -off, -of: Lavrov, Lavrof
    (re.compile(r"(?<=..)[eh]$"), ""),
)


def skeleton(word: str) -> str:
    """A spelling-insensitive key: "Zelenskyy", "zelenskiy" and "Zelensky" share one."""
    from anyascii import anyascii

    key = anyascii(word).casefold()
    for pattern, repl in _SKELETON_RULES:
        key = pattern.sub(repl, key)
    return key


class NameMatcher:
    """Knows the corpus's words, as stems and by skeleton."""

    def __init__(
        self,
        stems: Iterable[str],
        df: Callable[[str], int] | None = None,
        common: Callable[[str], bool] | None = None,
    ) -> None:
        self.stems = set(stems)
        self.df = df  # how many units use a stem: picks among equally near spellings
        self.common = common  # is a stem an everyday English word

        # skeleton -> the corpus's stems with that skeleton, space-joined (one string, not a
        # list, per key: hundreds of thousands of keys at a million sentences)
        self._skeletons: dict[str, str] | None = None
        self._choices: list[str] = []
        self._stem_choices: list[str] = []  # the stems themselves, for typos the rules distort

    @property
    def skeletons(self) -> dict[str, str]:
        """Built on first use: most questions name nothing new, and startup stays quick."""
        if self._skeletons is None:
            self._skeletons = {}
            self._index(self.stems)
            self._choices = sorted(w for w in self._skeletons if len(w) >= FUZZY_MIN_CHARS - 1)
            self._stem_choices = sorted(w for w in self.stems if len(w) >= FUZZY_MIN_CHARS - 1)
        return self._skeletons

    def _index(self, stems: Iterable[str]) -> list[str]:
        """File ``stems`` under their skeletons; returns the skeletons new to the index. Each
        key's string is joined once per call: appending stem by stem copied it each time,
        quadratic in a crowded key (160,000 stems under one: 1.3 -> 7.9 s)."""
        assert self._skeletons is not None
        skeletons = self._skeletons
        new = []
        grown: dict[str, list[str]] = {}  # keys given more stems in this call
        for w in stems:  # each stem comes once (``stems`` and ``add`` keep them unique)
            key = skeleton(w)
            if not key:  # digits, other scripts: nothing to compare by
                continue
            if key in grown:
                grown[key].append(w)
                continue
            held = skeletons.get(key)
            if held is None:
                skeletons[key] = w
                new.append(key)
            else:
                grown[key] = [held, w]
        for key, words in grown.items():
            skeletons[key] = " ".join(words)
        return new

    def add(self, stems: Iterable[str]) -> None:
        """Words of newly added text (a few hundred an article), without rebuilding."""
        new = [w for w in stems if w not in self.stems and not w.isdigit()]
        self.stems.update(new)
        if self._skeletons is not None:
            self._choices.extend(k for k in self._index(new) if len(k) >= FUZZY_MIN_CHARS - 1)
            self._stem_choices.extend(w for w in new if len(w) >= FUZZY_MIN_CHARS - 1)

    def known(self, word: str, stem: str, everyday: bool = False) -> bool:
        return self.spellings(word, stem, everyday) is not None

    def spellings(self, word: str, stem: str, everyday: bool = False) -> list[str] | None:
        """The corpus's own spellings (stems) of ``word`` (typed; ``stem`` its stem): [] when
        the corpus uses ``stem`` itself (or the word has no Latin letters to compare, or its
        skeleton is one too many stems share), the stems sharing its skeleton or else those
        of a near skeleton (below), and None when the corpus never mentions it, however
        spelled. ``everyday``: English itself uses the typed word often. It is then no typo,
        only perhaps another transliteration (a near skeleton), and a spelling that is only
        everyday words too is no spelling of it: "Taylor" is not "sailor", "Bush" not "bus",
        "Rihanna" not "Orianna", but "Chernobyl" is "Chornobyl"."""
        if stem in self.stems:
            return []
        key = skeleton(word)
        if not key:
            return []
        for k in (key, skeleton(stem)):
            if k in self.skeletons and not (everyday and self._everyday(k)):
                return self._spelt(k)
        if len(key) < FUZZY_MIN_CHARS or len(key) > FUZZY_MAX_CHARS:
            return None
        found = self._near(key, stem, typos=not everyday)
        if everyday:
            found = [k for k in found if not self._everyday(k)]
        return self._spelt(found[0]) if found else None

    def _near(self, key: str, stem: str, typos: bool = True) -> list[str]:
        """Near skeletons, the nearest first: fewest edits (one typo, a swap counted as one)
        to the skeleton or to one of its stems as typed, and among equally near ones the
        spelling the corpus uses in the most units, as a spelling corrector takes the
        commonest word within reach ("Rubeo": Rubio, not "rubber"). Near: a skeleton within
        ``FUZZY_SCORE`` of the word's; with ``typos`` also the skeleton of a stem within it of
        the stem as typed (the rules can make a typo look like more: "Zelenksy" -> "zelenxi",
        "Kshner" -> "xhner"), and for a short word a skeleton at one typo."""
        from anyascii import anyascii

        typed = anyascii(stem).casefold()
        found = _closest(key, self._choices, fuzz.ratio, FUZZY_SCORE)
        if typos:
            for s in _closest(typed, self._stem_choices, fuzz.ratio, FUZZY_SCORE):
                k = skeleton(s)
                if k in self.skeletons and k not in found:
                    found.append(k)
        if not found and typos and len(key) <= OSA_MAX_CHARS:
            # One typo: a letter swapped with the next, replaced, added or lost. The ratio cut
            # lets a swap (two edits to it) through from seven letters on; below, this pass.
            found = _closest(key, self._choices, OSA.distance, 1)

        def edits(k: str) -> int:
            return min(OSA.distance(key, k), *(OSA.distance(typed, s) for s in self._stems_of(k)))

        df = self.df or (lambda _: 0)
        found.sort(key=lambda k: (edits(k), -max(df(s) for s in self._stems_of(k)), k))
        return found

    def _everyday(self, key: str) -> bool:
        """Every stem under ``key`` is an everyday English word."""
        common = self.common
        return common is not None and all(common(s) for s in self._stems_of(key))

    def _stems_of(self, key: str) -> list[str]:
        """Up to ``MAX_SPELLINGS`` of the stems under ``key`` (a crowded key is not split whole)."""
        return self.skeletons[key].split(" ", MAX_SPELLINGS)[:MAX_SPELLINGS]

    def _spelt(self, key: str) -> list[str]:
        """The stems under ``key``, sorted (their stored order follows string hashing, which
        differs between processes), or [] (searched as typed) when more than
        ``MAX_SPELLINGS`` share it; a crowded key's string is not split whole."""
        found = self.skeletons[key].split(" ", MAX_SPELLINGS)
        return sorted(found) if len(found) <= MAX_SPELLINGS else []


def _closest(query: str, choices: list[str], scorer: Callable, cutoff: float) -> list[str]:
    """Up to ``FUZZY_CANDIDATES`` of ``choices`` within ``cutoff`` of ``query``, best first."""
    return [
        c
        for c, _, _ in process.extract(
            query, choices, scorer=scorer, score_cutoff=cutoff, limit=FUZZY_CANDIDATES
        )
    ]
