"""Does the corpus mention a name the question uses, allowing other spellings?

Questions spell names as people type them: "zelenskiy" for Zelensky, "witkof" for Witkoff,
"kiis" for KIIS. A word counts as known when its stem is in the corpus's vocabulary exactly,
when its transliteration skeleton matches a vocabulary word's, or when it is within a small
edit distance of one (rapidfuzz).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from rapidfuzz import fuzz, process

FUZZY_MIN_CHARS = 5  # shorter words match only exactly or by skeleton
FUZZY_SCORE = 85.0  # rapidfuzz ratio (0-100) for a near spelling

# Transliteration variants folded to one skeleton: ij/iy/yi/y/ii -> i, ks/x, kh/h, w/v, ph/f,
# zh/j, ts/tz/c, doubled letters once, a silent final e or h dropped.
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
    """Knows the corpus's words, as stems and as skeletons."""

    def __init__(self, stems: Iterable[str]) -> None:
        self.stems = set(stems)
        self._skeletons: set[str] | None = None
        self._choices: list[str] = []

    @property
    def skeletons(self) -> set[str]:
        """Built on first use: most questions name nothing new, and startup stays quick."""
        if self._skeletons is None:
            self._skeletons = {skeleton(w) for w in self.stems}
            self._choices = sorted(w for w in self._skeletons if len(w) >= FUZZY_MIN_CHARS - 1)
        return self._skeletons

    def add(self, stems: Iterable[str]) -> None:
        """Words of newly added text (a few hundred an article), without rebuilding."""
        new = [w for w in stems if w not in self.stems and not w.isdigit()]
        self.stems.update(new)
        if self._skeletons is not None:
            for key in {skeleton(w) for w in new} - self._skeletons:
                self._skeletons.add(key)
                if len(key) >= FUZZY_MIN_CHARS - 1:
                    self._choices.append(key)

    def known(self, word: str, stem: str) -> bool:
        if stem in self.stems:
            return True
        key = skeleton(word)
        if not key or key in self.skeletons or skeleton(stem) in self.skeletons:
            return True
        if len(key) < FUZZY_MIN_CHARS:
            return False
        return (
            process.extractOne(key, self._choices, scorer=fuzz.ratio, score_cutoff=FUZZY_SCORE)
            is not None
        )
