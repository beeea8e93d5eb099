"""Quality and speed of talksbot beside three baselines, in one run; prints one table.

    python benchmarks/run.py [--corpus DIR] [--questions FILE.jsonl]

(defaults: ../shared/corpus and ../shared/eval/questions-dev.jsonl beside the project).

Quality: hit@1/3/5 and MRR (a hit = an ``answer_contains`` string inside a cited quote), the
mean quote length, and abstention on unanswerable / answerable questions, for

* talksbot (the shipped pipeline, int8 ONNX), and talksbot on plain sentence-transformers
  (fp32 torch), to show what the fast backend costs;
* BM25 over sentences (bm25s);
* dense MiniLM over sentences (sentence-transformers, FAISS flat);
* the naive recipe: 1000-character chunks with 200 overlap, MiniLM, FAISS flat.

Speed: ingest throughput against plain sentence-transformers ``encode`` of the same sentences,
warm query latency in process, and ``talksbot ask`` from a cold start.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from index.embed import TorchEmbedder, load_embedder  # noqa: E402
from index.ingest import Ingester  # noqa: E402
from index.loaders import iter_article_files, load_file  # noqa: E402
from index.segment import SENTENCE, segment  # noqa: E402
from index.store import Store  # noqa: E402
from index.text import tokenize  # noqa: E402
from retrieval.answer import Answerer  # noqa: E402
from retrieval.evaluate import evaluate, load_questions  # noqa: E402
from retrieval.search import Searcher  # noqa: E402

K = 5


def quality_row(name: str, questions, answer) -> dict:
    lengths: list[int] = []

    def wrapped(q: str) -> tuple[bool, list[str]]:
        answered, quotes = answer(q)
        lengths.extend(len(x) for x in quotes[:3])
        return answered, quotes

    m = evaluate(questions, wrapped)["metrics"]
    m["name"] = name
    m["quote_chars"] = statistics.mean(lengths) if lengths else 0
    return m


def talksbot_quality(name: str, data_dir: Path, backend: str, questions, embedder=None) -> dict:
    answerer = Answerer(Searcher.open(data_dir, backend, embedder=embedder))

    def ask(q: str) -> tuple[bool, list[str]]:
        a = answerer.answer(q, k=K)
        return a.answered, [c.quote for c in a.citations]

    return quality_row(name, questions, ask)


def corpus_units(corpus: Path) -> tuple[list[str], list[str], list[str]]:
    """(all segmented units, citable sentences, raw article bodies) of the corpus."""
    units, sentences, bodies = [], [], []
    for path in iter_article_files([corpus]):
        raw = load_file(path)
        bodies.append(raw.text)
        for u in segment(raw.text):
            units.append(u.text)
            if u.kind == SENTENCE:
                sentences.append(u.text)
    return units, list(dict.fromkeys(sentences)), bodies


def baselines(corpus: Path, questions, st: TorchEmbedder) -> list[dict]:
    import bm25s
    import faiss

    _, sentences, bodies = corpus_units(corpus)
    rows = []

    bm25 = bm25s.BM25(k1=1.2, b=0.75)
    bm25.index([tokenize(s) or ["_"] for s in sentences], show_progress=False)

    def ask_bm25(q: str) -> tuple[bool, list[str]]:
        terms = tokenize(q)
        scores = bm25.get_scores(terms) if terms else np.zeros(len(sentences))
        return True, [sentences[i] for i in np.argsort(-scores)[:K]]

    rows.append(quality_row("BM25 over sentences", questions, ask_bm25))

    def dense(texts: list[str]):
        index = faiss.IndexFlatIP(st.dim)
        index.add(st.embed(texts))

        def ask(q: str) -> tuple[bool, list[str]]:
            _, ids = index.search(st.embed([q]), K)
            return True, [texts[i] for i in ids[0] if i >= 0]

        return ask

    rows.append(quality_row("dense MiniLM over sentences", questions, dense(sentences)))
    chunks = [
        body[start : start + 1000]
        for body in bodies
        for start in range(0, max(1, len(body) - 200), 800)
    ]
    rows.append(quality_row("naive 1000/200 chunks, MiniLM", questions, dense(chunks)))
    return rows


def speed(corpus: Path, questions, work: Path, st: TorchEmbedder) -> dict:
    units, sentences, _ = corpus_units(corpus)
    out: dict = {"units": len(units), "sentences": len(sentences)}

    # Plain sentence-transformers encode of the same units (and of the indexed sentences).
    started = time.perf_counter()
    st.embed(units)
    out["st_units_per_s"] = len(units) / (time.perf_counter() - started)
    started = time.perf_counter()
    st.embed(sentences)
    out["st_sentences_per_s"] = len(sentences) / (time.perf_counter() - started)

    # talksbot ingest end to end (parse, segment, dedup, embed, store, index), model loaded.
    data_dir = work / "speed"
    embedder = load_embedder("onnx-int8", work / "models")
    store = Store(data_dir)
    started = time.perf_counter()
    Ingester(store, embedder).ingest_paths([corpus], progress=False)
    seconds = time.perf_counter() - started
    out["ingest_seconds"] = seconds
    out["ingest_units_per_s"] = len(units) / seconds
    out["ingest_sentences_per_s"] = len(sentences) / seconds
    store.close()

    # Warm queries in process.
    answerer = Answerer(Searcher.open(data_dir, "onnx-int8", embedder=embedder))
    for q in questions[:5]:
        answerer.answer(q.question)
    latencies = []
    for _ in range(5):
        for q in questions:
            started = time.perf_counter()
            answerer.answer(q.question)
            latencies.append((time.perf_counter() - started) * 1000)
    out["query_p50_ms"] = float(np.percentile(latencies, 50))
    out["query_p95_ms"] = float(np.percentile(latencies, 95))

    # Cold start: a fresh process answering one question.
    env = {**os.environ, "TALKSBOT_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT)}
    cold = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "talksbot.cli", "ask", questions[0].question],
            env=env,
            check=True,
            capture_output=True,
        )
        cold.append(time.perf_counter() - started)
    out["cold_ask_s"] = statistics.median(cold)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    parser.add_argument(
        "--questions", type=Path, default=ROOT.parent / "shared" / "eval" / "questions-dev.jsonl"
    )
    args = parser.parse_args()
    if not args.corpus.exists() or not args.questions.exists():
        print(f"benchmarks: need --corpus and --questions ({args.corpus}, {args.questions})")
        return 2
    questions = load_questions(args.questions)
    st = TorchEmbedder()
    with tempfile.TemporaryDirectory(prefix="talksbot-bench-") as tmp:
        work = Path(tmp)
        speed_figures = speed(args.corpus, questions, work, st)
        rows = [
            talksbot_quality(
                "talksbot (int8 ONNX, shipped)", work / "speed", "onnx-int8", questions
            )
        ]
        torch_dir = work / "torch"
        store = Store(torch_dir)
        Ingester(store, st).ingest_paths([args.corpus], progress=False)
        store.close()
        rows.append(
            talksbot_quality(
                "talksbot on plain ST (fp32)", torch_dir, "torch", questions, embedder=st
            )
        )
        rows += baselines(args.corpus, questions, st)

    print(f"\nQuality on {args.questions.name} ({len(questions)} questions), corpus {args.corpus}")
    header = (
        f"{'system':<32} {'hit@1':>6} {'hit@3':>6} {'hit@5':>6} {'MRR':>6} "
        f"{'quote':>6} {'abst.unans':>10} {'abst.ans':>9}"
    )
    print(header)
    print("-" * len(header))
    for m in rows:
        print(
            f"{m['name']:<32} {m['hit@1']:>6.3f} {m['hit@3']:>6.3f} {m['hit@5']:>6.3f} "
            f"{m['mrr']:>6.3f} {m['quote_chars']:>6.0f} {m['abstained_unanswerable']:>10.1%} "
            f"{m['wrongly_abstained']:>9.1%}"
        )
    s = speed_figures
    print("\nSpeed (2 cores)")
    print(f"units segmented {s['units']}, distinct citable sentences {s['sentences']}")
    print(
        f"plain ST encode          {s['st_units_per_s']:8.1f} units/s   "
        f"{s['st_sentences_per_s']:8.1f} sentences/s"
    )
    print(
        f"talksbot ingest          {s['ingest_units_per_s']:8.1f} units/s   "
        f"{s['ingest_sentences_per_s']:8.1f} sentences/s   ({s['ingest_seconds']:.1f} s)"
    )
    print(
        f"ingest / ST ratio        {s['ingest_units_per_s'] / s['st_units_per_s']:8.2f}x units  "
        f"{s['ingest_sentences_per_s'] / s['st_sentences_per_s']:8.2f}x sentences"
    )
    print(f"hit@3 int8 vs fp32       {rows[0]['hit@3'] - rows[1]['hit@3']:+.3f}")
    print(
        f"warm query               p50 {s['query_p50_ms']:.1f} ms   p95 {s['query_p95_ms']:.1f} ms"
    )
    print(f"cold `talksbot ask`      {s['cold_ask_s']:.2f} s (median of 3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
