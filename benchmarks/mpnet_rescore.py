"""all-mpnet-base-v2 as a second-stage re-scorer, judged in and out of fold.

    python benchmarks/mpnet_rescore.py [--top 30] [--corpus DIR] [--questions FILE.jsonl]

MiniLM (the shipped store) finds each question's candidates; the ``--top`` best by a fixed,
unfitted score (cosine + 0.2 BM25, so no dev fit leaks into which units are re-scored) are
embedded with mpnet, and their mpnet cosine (0 elsewhere, with a flag) becomes two more ranker
features. The ranker and abstainer are then fitted and judged exactly as for ``talksbot eval``:
in-sample and 5-fold out-of-fold, folds grouped by article. Beside it: the same CV without the
mpnet features, the mpnet encode rate, and what re-scoring costs per question.

A whole-corpus mpnet store (mpnet as *the* embedding) takes tens of minutes to build on this
machine (see ``benchmarks/run.py --models minilm,mpnet``); this script needs only the
candidates' vectors.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from cached_store import CACHE_ROOT, CachingEmbedder, cached_store  # noqa: E402

from index.embed import DEFAULT_BACKEND, load_embedder  # noqa: E402
from retrieval.cv import cross_validate  # noqa: E402
from retrieval.evaluate import load_questions  # noqa: E402
from retrieval.features import FEATURES, Pool  # noqa: E402
from retrieval.rank import default_ranker  # noqa: E402
from retrieval.search import Searcher  # noqa: E402


def rescore(questions, data_dir: Path, minilm, top: int = 30, base: bool = True) -> dict:  # noqa: ANN001
    """CV reports without (``base``) and with the mpnet re-scoring features, and mpnet's
    costs."""

    def searcher() -> Searcher:
        s = Searcher.open(data_dir, minilm.backend, embedder=minilm, ranker=default_ranker(""))
        s.pool_cache = {}
        return s

    if base:
        plain = searcher()
        base_report = cross_validate(plain, questions)
        plain.store.close()

    rescored = searcher()
    dense, lexical = FEATURES.index("dense"), FEATURES.index("lexical")
    chosen: dict[str, np.ndarray] = {}
    for q in questions:
        pool = rescored.pool(q.question)
        idx = np.flatnonzero(pool.candidates)
        fixed = pool.features[idx, dense] + 0.2 * pool.features[idx, lexical]
        chosen[q.question] = idx[np.argsort(-fixed)[:top]]
    texts = sorted({rescored.pool(q).texts[i] for q, ix in chosen.items() for i in ix})
    started = time.perf_counter()
    mpnet = CachingEmbedder(
        load_embedder("mpnet", CACHE_ROOT / "models"), CACHE_ROOT / "batches-mpnet-alone.npz"
    )
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    sample = [t[:300] for t in texts[:100]]
    mpnet.inner.embed(sample)
    rate = len(sample) / (time.perf_counter() - started)
    vectors = dict(zip(texts, mpnet.embed(texts), strict=True))
    q_vectors = mpnet.embed([q.question for q in questions])
    mpnet.save()
    for q, qv in zip(questions, q_vectors, strict=True):
        pool = rescored.pool(q.question)
        score = np.zeros(len(pool.rows), np.float32)
        flag = np.zeros(len(pool.rows), np.float32)
        for i in chosen[q.question]:
            score[i] = float(vectors[pool.texts[i]] @ qv)
            flag[i] = 1.0
        rescored.pool_cache[q.question] = Pool(
            pool.rows,
            pool.candidates,
            np.column_stack([pool.features, score, flag]),
            pool.dense,
            pool.terms,
            pool.near,
        )
    with_mpnet = cross_validate(rescored, questions)
    rescored.store.close()
    return {
        "base": base_report if base else None,
        "rescored": with_mpnet,
        "units": len(texts),
        "load_s": load_s,
        "rate": rate,
        "top": top,
        "ms_per_question": 1000 * (top + 1) / rate,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    parser.add_argument(
        "--questions", type=Path, default=ROOT.parent / "shared" / "eval" / "questions-dev.jsonl"
    )
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    questions = load_questions(args.questions)
    data_dir, minilm = cached_store(DEFAULT_BACKEND, args.corpus)
    r = rescore(questions, data_dir, minilm, args.top)
    print(f"\n{len(questions)} questions, {r['units']} distinct candidate units re-scored")
    for name, report in (
        ("MiniLM ranker", r["base"]),
        (f"MiniLM + mpnet re-scoring top {args.top}", r["rescored"]),
    ):
        print(f"\n== {name}\n" + report.format())
    print(
        f"\nmpnet: load {r['load_s']:.1f} s, encode {r['rate']:.1f} units/s; re-scoring "
        f"{args.top} candidates costs about {r['ms_per_question']:.0f} ms per question"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
