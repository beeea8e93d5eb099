"""Soft matching of word pieces: how much of the question a unit says, in other words too.

``coverage`` counts the question's stemmed words a unit holds, all or nothing: "negotiators"
and "talks", "killed" and "deaths" share nothing there. Here every question word piece (the
bundled MiniLM's WordPiece vocabulary) is matched to its most similar piece in the unit by the
model's own input embeddings (a static table, no encoding), and the matches are averaged,
weighted by each piece's rarity in the corpus (BERTScore's IDF-weighted recall, over static
piece vectors). Out of fold over four fold seeds on the dev questions it moved hit@1 / hit@3 /
hit@5 / MRR from .524 / .730 / .772 / .626 to .535 / .732 / .789 / .640; weighting by the
question words' IDF instead of the pieces' scored .526 / .630, by general English frequency
.526 / .630, and sharpened similarities (cubed, or cut below .5) lost the gain.

Nothing is stored: pieces are counted from a sample of the store's units on first need, and a
unit's pieces are read from its text when it is first a candidate (kept, bounded, by id).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

# Units whose pieces are counted for the rarity weights: an even spread of the store's ids.
# Rarity needs only an estimate (below this, every unit is counted); a bound on the work at a
# million units, not a fitted value.
SAMPLE_UNITS = 20_000
PIECE_CACHE = 20_000  # units whose piece ids a process keeps
EMBEDDINGS = "embeddings.word_embeddings.weight"
# A question's frame: articles, auxiliaries, wh-words, pronouns, the commonest prepositions.
# They match a piece of nearly every sentence and say nothing of the topic. Narrower than the
# search's stopwords (``index.text.STOPWORDS``), which also drop words that carry a question's
# meaning ("not", "after", "against", "more", "said"): out of fold over four fold seeds this
# list scored .537 / .734 / .789, MRR .641; the search's stopwords .520 / .738 / .781, .630;
# none (punctuation only) .522 / .736 / .780, .630.
FUNCTION_WORDS = frozenset(
    "the a an of to in on and or is are was were be been do does did what who whom which where "
    "when why how that this these those it its for with by as at from about has have had will "
    "would can could should s".split()
)


class PieceMatcher:
    """The bundled model's tokenizer and static piece vectors, and the corpus's piece rarity."""

    def __init__(self, model_dir: Path, sample: Callable[[int], Sequence[str]]) -> None:
        """``sample(n)``: the texts of up to ``n`` of the store's units, evenly spread."""
        from safetensors import safe_open
        from threadpoolctl import ThreadpoolController
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        with safe_open(str(model_dir / "model.safetensors"), "np") as f:
            table = f.get_tensor(EMBEDDINGS).astype(np.float32)
        table /= np.maximum(np.linalg.norm(table, axis=1, keepdims=True), 1e-9)
        self.table = table
        # Pieces that say nothing about a topic: special tokens, punctuation, stopwords.
        vocab = self.tokenizer.get_vocab()
        self.ignored = np.zeros(len(table), bool)
        for piece, i in vocab.items():
            special = piece.startswith("[") and piece.endswith("]")
            blank = not any(c.isalnum() for c in piece.removeprefix("##"))
            self.ignored[i] = special or blank or piece in FUNCTION_WORDS
        self._sample = sample
        self._idf: np.ndarray | None = None
        self._units: dict[tuple[int, str], np.ndarray] = {}
        self._lock = threading.Lock()
        self._blas = ThreadpoolController()

    def pieces(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Each text's topical piece ids."""
        encoded = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        out = []
        for e in encoded:
            ids = np.asarray(e.ids, np.int64)
            out.append(ids[~self.ignored[ids]])
        return out

    @property
    def idf(self) -> np.ndarray:
        """Each piece's IDF among the sampled units (estimated once per matcher)."""
        with self._lock:
            if self._idf is None:
                texts = list(self._sample(SAMPLE_UNITS))
                df = np.zeros(len(self.table), np.float64)
                for ids in self.pieces(texts):
                    df[np.unique(ids)] += 1
                n = len(texts)
                self._idf = np.maximum(np.log((n + 1) / (df + 0.5)), 0.0).astype(np.float32)
            return self._idf

    def recount(self) -> None:
        """Count the rarity again on next need (the store has changed much since)."""
        with self._lock:
            self._idf = None

    def unit_pieces(self, ids: Sequence[int], texts: Sequence[str]) -> list[np.ndarray]:
        """Pieces of these units, read from their texts on first need and kept by id and text
        (an id freed by a deleted article can come back with another text)."""
        keys = list(zip(ids, texts, strict=True))
        missing = [i for i, key in enumerate(keys) if key not in self._units]
        if missing:
            if len(self._units) + len(missing) > PIECE_CACHE:
                self._units.clear()
            for i, found in zip(missing, self.pieces([texts[i] for i in missing]), strict=True):
                self._units[keys[i]] = found
        return [self._units[key] for key in keys]

    def recall(self, question: str, ids: Sequence[int], texts: Sequence[str]) -> np.ndarray:
        """Per unit: the rarity-weighted mean, over the question's pieces, of each one's best
        cosine with a piece of the unit (0 for a unit or question without topical pieces)."""
        out = np.zeros(len(ids), np.float32)
        asked = self.pieces([question])[0]
        idf = self.idf
        weights = idf[asked]
        total = float(weights.sum())
        if not len(ids) or total <= 0:
            return out
        units = self.unit_pieces(ids, texts)
        lengths = np.array([len(u) for u in units], np.int64)
        present = np.flatnonzero(lengths)
        if not len(present):
            return out
        flat = np.concatenate([units[i] for i in present])
        starts = np.concatenate([[0], np.cumsum(lengths[present])[:-1]])
        # Each distinct piece once (a pool's units share most of theirs), on one BLAS thread:
        # OpenBLAS spreads even a matrix-vector product this size (thousands of pieces) over
        # two threads, whose spinning then slowed the rest of the answer (warm p50 on the dev
        # questions 24.6 ms against 18.3 on one thread; see also ``features.support``).
        distinct, inverse = np.unique(flat, return_inverse=True)
        with self._blas.limit(limits=1, user_api="blas"):
            similar = (self.table[asked] @ self.table[distinct].T)[:, inverse]
        best = np.maximum.reduceat(similar, starts, axis=1)  # per question piece, per unit
        out[present] = (weights @ best) / total
        return out
