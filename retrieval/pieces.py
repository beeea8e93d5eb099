"""Soft matching of word pieces: how much of the question a unit says, in other words too.

``coverage`` counts the question's stemmed words a unit holds, all or nothing: "negotiators"
and "talks", "killed" and "deaths" share nothing there. Here every question word piece (the
bundled MiniLM's WordPiece vocabulary) is matched to its most similar piece in the unit by the
model's own input embeddings (a static table, no encoding), and the matches are averaged,
weighted by each piece's rarity in the corpus (BERTScore's IDF-weighted recall, over static
piece vectors). Out of fold over four fold seeds on the dev questions it moved hit@1 / hit@3 /
hit@5 / MRR from .524 / .730 / .772 / .626 to .537 / .734 / .791 / .642 (.533 / .740 / .793 /
.641 with ``FUNCTION_WORDS`` itself chosen by inner CV among three lists); weighting by the
question words' IDF instead of the pieces' scored .526 / .630, by general English frequency
.526 / .630, and sharpened similarities (cubed, or cut below .5) lost the gain (README,
Quality).

Nothing is stored: pieces are counted from a sample of the store's units on first need, and a
unit's pieces are read from its text (each distinct word's pieces kept).
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Callable, Sequence
from itertools import chain
from pathlib import Path

import numpy as np

# Units whose pieces are counted for the rarity weights: an even spread of the store's ids.
# Rarity needs only an estimate (below this, every unit is counted); a bound on the work at a
# million units, not a fitted value.
SAMPLE_UNITS = 20_000
WORD_CACHE = 500_000  # distinct words whose pieces a process keeps (a bound on memory)
# Longer words count for nothing: WordPiece's time grows with a word's length (~320 us at 99
# letters, where BERT stops and reads [UNK]), so a hostile article or question of long made-up
# words slowed every rarity count and answer it reached. News words are shorter; a bound on
# the work, not a fitted value.
MAX_WORD = 40
EMBEDDINGS = "embeddings.word_embeddings.weight"
# A question's frame: articles, auxiliaries, wh-words, pronouns, the commonest prepositions.
# They match a piece of nearly every sentence and say nothing of the topic. Narrower than the
# search's stopwords (``index.text.STOPWORDS``), which also drop words that carry a question's
# meaning ("not", "after", "against", "more", "said"): out of fold over four fold seeds this
# list scored .537 / .734 / .791, MRR .642; the search's stopwords .520 / .738 / .781, .630;
# none (punctuation only) .522 / .736 / .780, .630.
FUNCTION_WORDS = frozenset(
    "the a an of to in on and or is are was were be been do does did what who whom which where "
    "when why how that this these those it its for with by as at from about has have had will "
    "would can could should s".split()
)


# BERT's pre-tokenizer splits at spaces and punctuation.
_WORD = re.compile(r"[^\W_]+")
_MARKS = re.compile(r"[\u0300-\u036f]")


def words(text: str) -> list[str]:
    """The text's words as BERT's tokenizer sees them before WordPiece (lower-cased, accents
    stripped, split at spaces and punctuation), punctuation left out."""
    text = text.lower()
    if not text.isascii():
        text = _MARKS.sub("", unicodedata.normalize("NFD", text))
    return _WORD.findall(text)


class PieceMatcher:
    """The bundled model's WordPiece vocabulary and static piece vectors, and the corpus's piece
    rarity."""

    def __init__(self, model_dir: Path, sample: Callable[[int], Sequence[str]]) -> None:
        """``sample(n)``: the texts of up to ``n`` of the store's units, evenly spread."""
        from safetensors import safe_open
        from threadpoolctl import ThreadpoolController
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        with safe_open(str(model_dir / "model.safetensors"), "np") as f:
            table = f.get_tensor(EMBEDDINGS).astype(np.float32)
        table /= np.maximum(np.linalg.norm(table, axis=1, keepdims=True), 1e-9)
        self.table = table
        # Pieces that say nothing about a topic: special tokens, punctuation, function words.
        vocab = self.tokenizer.get_vocab()
        self.ignored = np.zeros(len(table), bool)
        for piece, i in vocab.items():
            special = piece.startswith("[") and piece.endswith("]")
            blank = not any(c.isalnum() for c in piece.removeprefix("##"))
            self.ignored[i] = special or blank or piece in FUNCTION_WORDS
        self._sample = sample
        self._idf: np.ndarray | None = None
        # Each word's topical pieces, WordPiece run once per distinct word: a unit is read in
        # a few dict look-ups, where the tokenizer took ~45 us a unit (~9 ms a question).
        self._words: dict[str, tuple[int, ...]] = {}
        self._lock = threading.Lock()
        self._blas = ThreadpoolController()

    def _word(self, word: str) -> tuple[int, ...]:
        if len(word) > MAX_WORD:
            return ()  # not looked up, not kept (see MAX_WORD)
        found = self._words.get(word)
        if found is None:
            if len(self._words) >= WORD_CACHE:
                self._words.clear()
            ids = [t.id for t in self.tokenizer.model.tokenize(word)]
            # A tuple of ints: the cyclic garbage collector stops tracking it, where hundreds of
            # thousands of kept lists lengthened every full collection of an answering process.
            found = self._words[word] = tuple(i for i in ids if not self.ignored[i])
        return found

    def pieces(self, text: str) -> list[int]:
        """The text's topical piece ids, in order."""
        return self._pieces_of([text])[0]

    def _pieces_of(self, texts: Sequence[str]) -> tuple[list[int], np.ndarray]:
        """All the texts' topical pieces in one list, and how many each text gave. Words are
        looked up with C-level ``map`` and ``chain`` (a Python loop over the ~4,500 words of a
        question's candidates at a million units took ~2.4 ms of its answer)."""
        flat: list[int] = []
        lengths = np.zeros(len(texts), np.int64)
        get = self._words.get
        for i, text in enumerate(texts):
            seen = words(text)
            found = list(map(get, seen))
            if None in found:
                pairs = zip(seen, found, strict=True)
                found = [self._word(w) if f is None else f for w, f in pairs]
            before = len(flat)
            flat.extend(chain.from_iterable(found))
            lengths[i] = len(flat) - before
        return flat, lengths

    def _held(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Each (text, piece) pair the texts hold, once: text indices and piece ids, ordered by
        text, then piece (what both the rarity count and ``recall`` need of them)."""
        flat, lengths = self._pieces_of(texts)
        vocab = len(self.table)
        owner = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
        held = np.unique(owner * vocab + np.array(flat, np.int64))
        return held // vocab, held % vocab

    @property
    def idf(self) -> np.ndarray:
        """Each piece's IDF among the sampled units (counted once, and after ``recount``)."""
        with self._lock:
            if self._idf is None:
                texts = list(self._sample(SAMPLE_UNITS))
                df = np.bincount(self._held(texts)[1], minlength=len(self.table))
                n = len(texts)
                self._idf = np.maximum(np.log((n + 1) / (df + 0.5)), 0.0).astype(np.float32)
            return self._idf

    def recount(self) -> None:
        """Count the rarity again on next need (the store has changed much since)."""
        with self._lock:
            self._idf = None

    def recall(self, question: str, texts: Sequence[str]) -> np.ndarray:
        """Per text: the rarity-weighted mean, over the question's pieces, of each one's best
        cosine with a piece of the text (0 for a text or question without topical pieces).

        Each distinct piece is compared once, the question's (a repeated piece's weights
        summed) and each text's, and the best match is read one question piece at a time: a
        hostile question and article of made-up words had made a matrix of every question
        piece by every text piece, ~550 MB and 2 s an answer."""
        out = np.zeros(len(texts), np.float32)
        asked, repeats = np.unique(np.array(self.pieces(question), np.int64), return_counts=True)
        weights = self.idf[asked] * repeats
        total = float(weights.sum())
        if not len(texts) or total <= 0:
            return out
        owner, piece = self._held(texts)
        if not len(piece):
            return out
        present, starts = np.unique(owner, return_index=True)
        # Each distinct piece once (texts share most of theirs), on one BLAS thread: OpenBLAS
        # spreads even a matrix-vector product this size (thousands of pieces) over two
        # threads, whose spinning then slowed the rest of the answer (warm p50 on the dev
        # questions 24.6 ms against 18.3 on one thread; see also ``features.support``).
        distinct, inverse = np.unique(piece, return_inverse=True)
        with self._blas.limit(limits=1, user_api="blas"):
            similar = self.table[asked] @ self.table[distinct].T
        # Row by row, so memory stays one row of the texts' pieces whatever the question.
        best = np.stack([np.maximum.reduceat(row[inverse], starts) for row in similar])
        out[present] = (weights @ best) / total
        return out
