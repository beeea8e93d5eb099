"""Which sentences of a story matter for a topic ("ceasefire terms", "Budapest summit")."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from index.store import Store

TOPIC_MATCH = 0.4  # cosine a story's best sentence needs with a topic to be pushed for it


@dataclass
class Story:
    """A stored story's indexed sentences, read once and scored against many topics."""

    ids: list[int]
    texts: list[str]
    vectors: np.ndarray  # rows L2-normalised

    @classmethod
    def load(cls, store: Store, article_id: int) -> Story:
        rows = store.embedded_sentences(article_id)
        if not rows:
            return cls([], [], np.zeros((0, 1), np.float32))
        vectors = np.vstack([np.frombuffer(r[2], dtype=np.float32) for r in rows])
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)
        return cls([r[0] for r in rows], [r[1] for r in rows], vectors)

    def passages(self, topic: np.ndarray | None, k: int = 2) -> tuple[float, list[tuple[int, str]]]:
        """(best cosine, up to ``k`` (sentence id, text) in reading order). With no topic: the
        lead, the story's own summary; with one: the sentences closest to it by meaning."""
        if not self.ids:
            return 0.0, []
        if topic is None:
            return 1.0, list(zip(self.ids[:k], self.texts[:k], strict=True))
        scores = self.vectors @ (topic / max(float(np.linalg.norm(topic)), 1e-9))
        best = sorted(np.argsort(-scores)[:k].tolist())
        return float(scores.max()), [(self.ids[i], self.texts[i]) for i in best]
