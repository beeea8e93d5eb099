"""A store of a corpus built once per (segmenter, model) and reused between experiments.

Ingest embeds every unit (~30 s for ../shared/corpus with MiniLM, minutes with mpnet). For
experiments the vectors are cached by text on disk, so a segmenter change re-embeds only the
units it changed, and an unchanged corpus is not re-ingested at all.

    python benchmarks/cached_store.py [--backend onnx] [--corpus DIR]   # prints the dir
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from index.embed import DEFAULT_BACKEND, Embedder, load_embedder  # noqa: E402
from index.ingest import Ingester  # noqa: E402
from index.store import Store  # noqa: E402

CACHE_ROOT = Path(
    os.environ.get("TALKSBOT_BENCH_CACHE", Path(tempfile.gettempdir()) / "talksbot-bench")
)
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus"


class CachingEmbedder:
    """Wraps an embedder; vectors are kept between runs in a .npz file, by batch: the texts
    of one ``embed`` call (the ingester makes one per article). A text's int8 vector depends
    on what it was embedded with (onnxruntime quantizes activations per batch), so a store
    built from this cache holds exactly the vectors a plain ingest would give it."""

    def __init__(self, inner: Embedder, path: Path) -> None:
        self.inner = inner
        self.name, self.backend, self.dim = inner.name, inner.backend, inner.dim
        self.path = path
        self.batches: dict[str, np.ndarray] = {}
        if path.exists():
            with np.load(path) as data:
                ends = np.cumsum(data["sizes"])
                for key, end, size in zip(data["keys"].tolist(), ends, data["sizes"], strict=True):
                    self.batches[key] = data["vectors"][end - size : end]
        self.dirty = False

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        key = hashlib.sha1("\n\x00".join(texts).encode()).hexdigest()
        if key not in self.batches:
            self.batches[key] = np.asarray(self.inner.embed(list(texts)), np.float32)
            self.dirty = True
        return self.batches[key].copy()

    def save(self) -> None:
        if not self.dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = list(self.batches)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            keys=np.array(keys),
            sizes=np.array([len(self.batches[k]) for k in keys], np.int64),
            vectors=np.vstack([self.batches[k] for k in keys]),
        )
        os.replace(tmp, self.path)
        self.dirty = False


def segmenter_fingerprint() -> str:
    """Changes whenever the code that decides units (or their embedding, or this cache)
    changes."""
    h = hashlib.sha1()
    for name in (
        "index/segment.py",
        "index/ingest.py",
        "index/loaders.py",
        "index/store.py",
        "index/text.py",
        "benchmarks/cached_store.py",
    ):
        h.update((ROOT / name).read_bytes())
    return h.hexdigest()[:12]


def cached_store(
    backend: str = DEFAULT_BACKEND, corpus: Path = DEFAULT_CORPUS, embedder: Embedder | None = None
) -> tuple[Path, Embedder]:
    """A data dir holding ``corpus`` ingested with ``backend``; built only when missing."""
    inner = embedder or load_embedder(backend, CACHE_ROOT / "models")
    cache = CachingEmbedder(inner, CACHE_ROOT / f"batches-{backend}.npz")
    tag = hashlib.sha1(str(corpus.resolve()).encode()).hexdigest()[:8]
    data_dir = CACHE_ROOT / f"store-{backend}-{tag}-{segmenter_fingerprint()}"
    if not (data_dir / "READY").exists():
        with tempfile.TemporaryDirectory(
            dir=CACHE_ROOT.mkdir(parents=True, exist_ok=True) or CACHE_ROOT
        ) as tmp:
            store = Store(Path(tmp) / "d")
            Ingester(store, cache).ingest_paths([corpus], progress=False)
            store.close()
            cache.save()
            if data_dir.exists():
                import shutil

                shutil.rmtree(data_dir)
            os.replace(Path(tmp) / "d", data_dir)
        (data_dir / "READY").write_text("ok")
    return data_dir, inner


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=DEFAULT_BACKEND)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    args = parser.parse_args()
    data_dir, _ = cached_store(args.backend, args.corpus)
    print(data_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
