"""Quality and speed of talksbot beside three baselines, in one run; prints one table.

    python benchmarks/run.py [--corpus DIR] [--questions FILE.jsonl]
                              [--models minilm,minilm-int8,mpnet]

(defaults: ../shared/corpus and ../shared/eval/questions-dev.jsonl beside the project).

Quality: hit@1/3/5 and MRR (a hit = an ``answer_contains`` string inside a cited quote), the
mean quote length, and abstention on unanswerable / answerable questions, for

* talksbot with each embedding model: in-sample (ranker and abstainer fitted on all the
  questions) beside out-of-fold (5 folds grouped by article, everything fitted on the other
  folds: the figure that predicts unseen questions; the first split into folds, and the mean
  over ``--splits`` splits), and the shipped ranker as it is;
* BM25 over sentences (bm25s);
* dense MiniLM over sentences (sentence-transformers, FAISS flat);
* the naive recipe: 1000-character chunks with 200 overlap, MiniLM, FAISS flat.

Reachable: the share of answerable questions whose answer lies inside some citable unit.

Speed: a fresh ingest of the corpus (default model), warm answer latency in process, and
``talksbot ask`` from a cold start; for mpnet, its encode throughput and warm latency.
Quality rows reuse stores cached by ``benchmarks/cached_store.py``.
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
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from index.embed import DEFAULT_BACKEND, TorchEmbedder, load_embedder  # noqa: E402
from index.ingest import Ingester  # noqa: E402
from index.loaders import iter_article_files, load_file  # noqa: E402
from index.segment import SENTENCE, segment  # noqa: E402
from index.store import Store  # noqa: E402
from index.text import tokenize  # noqa: E402
from retrieval.answer import Answerer  # noqa: E402
from retrieval.evaluate import evaluate, load_questions  # noqa: E402
from retrieval.rank import load_ranker  # noqa: E402
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


def talksbot_rows(
    label: str, data_dir: Path, backend: str, questions, embedder, splits: int = 1
) -> tuple[list[dict], float]:  # noqa: ANN001,E501
    """Shipped ranker, in-sample and out-of-fold rows for one model (out of fold: the first
    split into folds, and the mean over ``splits`` splits), and reachability."""
    from retrieval.cv import cross_validate

    # The shipped ranker, even if the bench store holds a ranker.json of its own.
    embedder = embedder or load_embedder(backend, data_dir / "models")
    shipped = load_ranker(embedder.name)
    searcher = Searcher.open(data_dir, backend, embedder=embedder, ranker=shipped)
    searcher.pool_cache = {}
    rows = []
    if searcher.ranker.meta.get("questions"):
        answerer = Answerer(searcher)

        def ask(q: str) -> tuple[bool, list[str]]:
            a = answerer.answer(q, k=K)
            return a.answered, [c.quote for c in a.citations]

        rows.append(quality_row(f"talksbot {label}, shipped", questions, ask))
    report = cross_validate(searcher, questions, splits=splits)
    named = [("in-sample", report.in_sample), ("out-of-fold", report.out_of_fold)]
    if splits > 1:
        named.append((f"OOF mean, {splits} splits", report.out_of_fold_mean))
    for name, metrics in named:
        metrics = dict(metrics)
        metrics["name"] = f"talksbot {label}, {name}"
        metrics["quote_chars"] = float("nan")
        rows.append(metrics)
    searcher.store.close()
    return rows, report.reachable


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

    # Plain sentence-transformers encode of the indexed sentences.
    started = time.perf_counter()
    st.embed(sentences)
    out["st_sentences_per_s"] = len(sentences) / (time.perf_counter() - started)

    # talksbot ingest end to end (parse, segment, dedup, embed, store, index), model loaded.
    data_dir = work / "speed"
    embedder = load_embedder(DEFAULT_BACKEND, work / "models")
    store = Store(data_dir)
    started = time.perf_counter()
    report = Ingester(store, embedder).ingest_paths([corpus], progress=False)
    seconds = time.perf_counter() - started
    out["ingest_seconds"] = seconds
    out["indexed"] = store.stats().get("indexed_sentences", 0)
    out["ingest_units_per_s"] = len(units) / seconds
    out["articles"] = report.added
    store.close()
    out.update(latency(data_dir, DEFAULT_BACKEND, embedder, questions, "query"))

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


def latency(data_dir: Path, backend: str, embedder, questions, prefix: str) -> dict:  # noqa: ANN001
    """Warm answer latency in process, p50 and p95 over the questions (after a warm-up)."""
    embedder = embedder or load_embedder(backend, data_dir / "models")
    searcher = Searcher.open(
        data_dir, backend, embedder=embedder, ranker=load_ranker(embedder.name)
    )
    answerer = Answerer(searcher)
    for q in questions[:5]:
        answerer.answer(q.question)
    latencies = []
    for _ in range(3):
        for q in questions:
            started = time.perf_counter()
            answerer.answer(q.question)
            latencies.append((time.perf_counter() - started) * 1000)
    answerer.searcher.store.close()
    return {
        f"{prefix}_p50_ms": float(np.percentile(latencies, 50)),
        f"{prefix}_p95_ms": float(np.percentile(latencies, 95)),
    }


def main() -> int:
    from cached_store import cached_store

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    parser.add_argument(
        "--questions", type=Path, default=ROOT.parent / "shared" / "eval" / "questions-dev.jsonl"
    )
    parser.add_argument(
        "--models",
        default="minilm",
        help="talksbot models scored end to end (minilm, the default fp32 backend; minilm-int8, "
        "its quantized backend; mpnet, whose store of the corpus takes tens of minutes to build "
        "here)",
    )
    parser.add_argument(
        "--rescore",
        type=int,
        default=20,
        help="also score mpnet re-scoring MiniLM's top N candidates (0: skip)",
    )
    parser.add_argument(
        "--splits",
        type=lambda text: max(1, int(text)),
        default=4,
        help="out-of-fold figures also as the mean over this many splits into folds (one split "
        "is noisy: a question or two either way)",
    )
    args = parser.parse_args()
    if not args.corpus.exists() or not args.questions.exists():
        print(f"benchmarks: need --corpus and --questions ({args.corpus}, {args.questions})")
        return 2
    questions = load_questions(args.questions)
    st = TorchEmbedder()
    rows: list[dict] = []
    reach: dict[str, float] = {}
    extra: dict = {}
    backends = {
        "minilm": ("MiniLM", DEFAULT_BACKEND),
        "minilm-int8": ("MiniLM int8", "onnx-int8"),
        "mpnet": ("mpnet", "mpnet"),
    }
    models = args.models.split(",")
    for key in models:
        label, backend = backends[key]
        data_dir, embedder = cached_store(backend, args.corpus)
        model_rows, reach[label] = talksbot_rows(
            label, data_dir, backend, questions, embedder, args.splits
        )
        rows += model_rows
    if args.rescore:
        from mpnet_rescore import rescore

        data_dir, minilm = cached_store(DEFAULT_BACKEND, args.corpus)
        r = rescore(questions, data_dir, minilm, args.rescore, base=False)
        for name, metrics in (
            ("in-sample", r["rescored"].in_sample),
            ("out-of-fold", r["rescored"].out_of_fold),
        ):
            rows.append(
                {
                    **metrics,
                    "name": f"+ mpnet re-scores top {r['top']}, {name}",
                    "quote_chars": float("nan"),
                }
            )
        extra.update(mpnet_rate=r["rate"], mpnet_load_s=r["load_s"], mpnet_ms=r["ms_per_question"])
    rows += baselines(args.corpus, questions, st)
    with tempfile.TemporaryDirectory(prefix="talksbot-bench-") as tmp:
        speed_figures = speed(args.corpus, questions, Path(tmp), st)

    print(f"\nQuality on {args.questions.name} ({len(questions)} questions), corpus {args.corpus}")
    header = (
        f"{'system':<42} {'hit@1':>6} {'hit@3':>6} {'hit@5':>6} {'MRR':>6} "
        f"{'quote':>6} {'abst.unans':>10} {'abst.ans':>9}"
    )
    print(header)
    print("-" * len(header))
    for m in rows:
        quote = "" if m["quote_chars"] != m["quote_chars"] else f"{m['quote_chars']:.0f}"
        print(
            f"{m['name']:<42} {m['hit@1']:>6.3f} {m['hit@3']:>6.3f} {m['hit@5']:>6.3f} "
            f"{m['mrr']:>6.3f} {quote:>6} {m['abstained_unanswerable']:>10.1%} "
            f"{m['wrongly_abstained']:>9.1%}"
        )
    for label, share in reach.items():
        print(f"reachable ({label} store): {share:.1%} of answerable questions")
    s = speed_figures
    print("\nSpeed (2 shared cores)")
    print(
        f"units segmented {s['units']}, indexed {s['indexed']}, distinct sentences {s['sentences']}"
    )
    print(
        f"talksbot ingest (MiniLM)       {s['ingest_seconds']:.1f} s for {s['articles']} "
        f"articles ({s['ingest_units_per_s']:.0f} units/s)"
    )
    print(f"plain ST MiniLM encode         {s['st_sentences_per_s']:8.1f} sentences/s")
    print(
        f"warm answer (MiniLM)           p50 {s['query_p50_ms']:.1f} ms   "
        f"p95 {s['query_p95_ms']:.1f} ms"
    )
    print(f"cold `talksbot ask`            {s['cold_ask_s']:.2f} s (median of 3)")
    if "mpnet_rate" in extra:
        rate = extra["mpnet_rate"]
        print(
            f"mpnet                          load {extra['mpnet_load_s']:.1f} s, encode "
            f"{rate:.1f} units/s: ingest of the corpus about {s['indexed'] * 1.2 / rate / 60:.0f} "
            f"min; re-scoring costs about {extra['mpnet_ms']:.0f} ms per question"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
