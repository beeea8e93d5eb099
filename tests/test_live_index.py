"""The live index: articles added, changed and deleted without a rebuild, picked up by another
process, equal to a full reindex, and a store made before it existed still opens."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from index import live_index
from index.embed import HashEmbedder
from index.ingest import Ingester
from index.live_index import LiveIndex, current_snapshot_name, rebuild
from index.store import NewArticleRow, NewSentenceRow, Store
from index.text import text_hash, tokenize
from tests.harness.data import CORPUS, FIXTURES, cli_env, ingest, run_cli

EMBED = HashEmbedder()


def write_article(folder: Path, name: str, title: str, sentences: list[str]) -> Path:
    path = folder / f"{name}.md"
    path.write_text(
        f'---\ntitle: "{title}"\nurl: https://news.example/{name}\npublished: 2026-03-01\n'
        f"outlet: News Example\n---\n\n" + " ".join(sentences) + "\n"
    )
    return path


QUOKKA = [
    "Negotiators in Reykjavik discussed a quokka sanctuary as a confidence-building gesture.",
    "The quokka proposal surprised delegates from both sides of the front line.",
    "Officials said the sanctuary would be funded by a neutral trust in Iceland.",
]


def many_articles(folder: Path, n: int) -> Path:
    """A folder of ``n`` small distinct articles (enough files for a parallel bulk ingest)."""
    folder.mkdir()
    words = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima".split()
    for i in range(n):
        a, b, c = words[i % 12], words[(i // 12) % 12], words[(i // 144) % 12]
        write_article(
            folder,
            f"a{i:04d}",
            f"Report {i}",
            [
                f"Delegates {a} and {b} met {c} envoys on day {i} of the talks.",
                f"The {b} proposal number {i} was discussed by {a} officials at length.",
            ],
        )
    return folder


def quokka_folder(tmp_path: Path) -> Path:
    """A folder holding one new article, the quokka story (``QUOKKA``)."""
    folder = tmp_path / "new"
    folder.mkdir()
    write_article(folder, "quokka", "Quokka sanctuary floated", QUOKKA)
    return folder


def ids_of(store: Store, article_title: str) -> list[int]:
    return [
        r[0]
        for r in store.db.execute(
            "SELECT s.id FROM sentences s JOIN articles a ON a.id = s.article_id "
            "WHERE a.title = ? AND s.embedding IS NOT NULL ORDER BY s.id",
            (article_title,),
        )
    ]


def best_first(ids: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-scores, kind="stable")
    return ids[order], scores[order]


def vector(text: str) -> np.ndarray:
    return EMBED.embed([text])[0]


@pytest.fixture
def corpus_store(data_dir: Path) -> Iterator[Store]:
    """The fixture corpus, ingested (so with a snapshot)."""
    ingest(data_dir, CORPUS)
    s = Store(data_dir)
    yield s
    s.close()


def test_add_update_delete_without_rebuild(
    corpus_store: Store, data_dir: Path, tmp_path: Path
) -> None:
    store = corpus_store
    live = LiveIndex.open(store)
    snapshot, size = live.snapshot.name, live.size
    assert size == 15 and not live.mentioned("quokka")  # 12 sentences, 3 headings/lines

    # Add: the reader's next refresh finds the article, the snapshot is not rewritten.
    folder = quokka_folder(tmp_path)
    path = folder / "quokka.md"
    ingest(data_dir, folder)
    assert current_snapshot_name(store.db) == snapshot
    assert live.refresh() and not live.refresh()
    assert live.snapshot.name == snapshot and live.size == size + 3
    added = ids_of(store, "Quokka sanctuary floated")
    assert len(added) == 3
    ids, scores = live.dense_search(vector(QUOKKA[1]), 5)
    assert int(ids[0]) in added and scores[0] == pytest.approx(max(scores))
    lex = live.lexical(tokenize("quokka sanctuary"))
    top_ids, _ = lex.top(3)
    assert set(top_ids.tolist()) == set(added)
    assert live.df("quokka") == 2 and live.mentioned("quokka")

    # Update: the old sentences leave, the new ones arrive.
    path.write_text(path.read_text().replace("quokka sanctuary", "wombat refuge"))
    ingest(data_dir, folder)
    assert live.refresh()
    updated = ids_of(store, "Quokka sanctuary floated")
    assert live.size == size + 3
    found = set(live.dense_search(vector(QUOKKA[0]), 50)[0].tolist())
    assert not found & (set(added) - set(updated)) and found >= set(updated)
    assert live.df("wombat") == 1

    # Delete an article stored in the snapshot: masked at once, everywhere.
    geneva = ids_of(store, "Geneva round ends without a deal on the Donbas")
    with store.transaction() as db:
        db.execute("DELETE FROM articles WHERE title LIKE 'Geneva%'")
    assert live.refresh()
    assert live.size == size + 3 - len(geneva)
    found = set(live.dense_search(vector("Geneva Donbas Umerov delegation"), 50)[0].tolist())
    assert not found & set(geneva)
    top_ids, _ = live.lexical(tokenize("Umerov demilitarised zone")).top(10)
    assert not set(top_ids.tolist()) & set(geneva)
    assert not live.mentioned("umerov")  # its only article is gone


def test_a_second_process_picks_up_changes(
    corpus_store: Store, data_dir: Path, tmp_path: Path
) -> None:
    store = corpus_store
    live = LiveIndex.open(store)
    folder = quokka_folder(tmp_path)
    done = run_cli(data_dir, "ingest", str(folder))
    assert done.returncode == 0, done.stderr
    assert live.refresh()
    assert set(live.lexical(["quokka"]).top(5)[0].tolist()) == set(
        ids_of(store, "Quokka sanctuary floated")[:2]
    )


def test_reindex_gives_the_same_index(corpus_store: Store, data_dir: Path, tmp_path: Path) -> None:
    store = corpus_store
    folder = tmp_path / "new"
    folder.mkdir()
    for i in range(3):
        write_article(folder, f"extra{i}", f"Extra report {i}", [f"{s} ({i})" for s in QUOKKA])
    ingest(data_dir, folder)
    with store.transaction() as db:
        db.execute("DELETE FROM articles WHERE title = 'Extra report 1'")
    incremental = LiveIndex.open(store)
    assert incremental.tail_index  # built incrementally: a snapshot plus a tail
    rebuild(store)
    full = LiveIndex.open(store)
    assert not full.tail_index and not full.deleted
    assert incremental.size == full.size
    for text in [*QUOKKA, "Geneva round Donbas", "prisoners exchanged in Abu Dhabi"]:
        a_ids, a_scores = incremental.dense_search(vector(text), 8)
        b_ids, b_scores = full.dense_search(vector(text), 8)
        np.testing.assert_allclose(a_scores, b_scores, rtol=1e-5)
        cut = a_scores[-1] + 1e-6  # the same ids above the last score (ties may swap)
        assert set(a_ids[a_scores > cut].tolist()) == set(b_ids[b_scores > cut].tolist())
        terms = tokenize(text)
        a_top, a_best = best_first(*incremental.lexical(terms).top(3))
        b_top, b_best = best_first(*full.lexical(terms).top(3))
        # The same best sentence (or one tied with it). Scores differ a little: until a
        # rewrite, snapshot rows keep the snapshot's IDF (here 12 sentences against 21).
        assert a_top[0] in b_top[b_best >= b_best[0] * 0.999]
        for term in terms:
            assert incremental.df(term) == full.df(term)


def test_tail_grown_large_rewrites_the_snapshot(
    corpus_store: Store, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = corpus_store
    before = current_snapshot_name(store.db)
    monkeypatch.setattr(live_index, "REWRITE_MIN_TAIL", 2)
    folder = quokka_folder(tmp_path)
    Ingester(store, EMBED).ingest_paths([folder], progress=False)
    after = current_snapshot_name(store.db)
    assert after != before
    assert store.db.execute("SELECT COUNT(*) FROM index_log").fetchone()[0] == 0
    assert [p.name for p in (data_dir / "index").iterdir() if p.is_dir()] == [after]
    assert LiveIndex.open(store).size == 18


def test_an_ivf_snapshot_is_searched_through_mapped_lists(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past IVF_MIN_VECTORS the dense index is IVF: it loads with its lists mapped as plain
    arrays (faiss's on-disk lists, what IO_FLAG_MMAP gives, cost 1.3 ms more per query at a
    million vectors) and, probing every list, finds what an exact search finds."""
    import faiss

    monkeypatch.setattr(live_index, "IVF_MIN_VECTORS", 100)
    monkeypatch.setattr(live_index, "IVF_NPROBE", 64)  # every list: exact, comparable
    ingest(data_dir, many_articles(tmp_path / "many", 150))
    store = Store(data_dir)
    try:
        live = LiveIndex.open(store)
        assert live.snapshot.manifest["dense"] == "ivf" and live.size == 300
        lists = faiss.extract_index_ivf(live.snapshot.dense).invlists
        assert type(faiss.downcast_InvertedLists(lists)).__name__ == "ArrayInvertedLists"
        rows = store.db.execute(
            "SELECT id, text, embedding FROM sentences WHERE embedding IS NOT NULL ORDER BY id"
        ).fetchall()
        stored = np.vstack([np.frombuffer(blob, np.float32) for _, _, blob in rows])
        all_ids = np.array([sid for sid, _, _ in rows])
        for _, text, _ in rows[::7]:
            q = vector(text)
            ids, scores = live.dense_search(q, 5)
            exact = stored @ q
            # the five best scores exactly (templated sentences tie, so not the ids' order)
            np.testing.assert_allclose(scores, np.sort(exact)[::-1][:5], rtol=1e-5)
            np.testing.assert_allclose(exact[np.searchsorted(all_ids, ids)], scores, rtol=1e-5)
    finally:
        store.close()


def test_a_store_from_before_the_live_index_opens(tmp_path: Path) -> None:
    """tests/fixtures/store-v1 was written by the code before this index existed."""
    data_dir = tmp_path / "old"
    shutil.copytree(FIXTURES / "store-v1", data_dir)
    store = Store(data_dir)
    try:
        live = LiveIndex.open(store)
        assert live.size == 12 and live.mentioned("umerov")
        ids, _ = live.lexical(tokenize("prisoners of war swap")).top(1)
        text = store.sentences([int(ids[0])])[int(ids[0])].text
        assert "157 prisoners of war" in text
        # The old store keeps working as a live one: rows written now are picked up.
        article = NewArticleRow(
            "https://news.example/q",
            "https://news.example/q",
            "Quokka",
            "News Example",
            "2026-03-01",
            "test",
            "quokka-hash",
        )
        units = [
            NewSentenceRow(0, i, i, "sentence", text, text_hash(text), vector(text))
            for i, text in enumerate(QUOKKA)
        ]
        store.write_article(article, ["https://news.example/q"], units)
        assert live.refresh() and live.size == 15 and live.mentioned("quokka")
    finally:
        store.close()


def test_answers_after_reindex_match_the_incremental_index(
    corpus_store: Store, data_dir: Path, tmp_path: Path
) -> None:
    from retrieval.answer import Answerer
    from retrieval.search import Searcher

    folder = quokka_folder(tmp_path)
    ingest(data_dir, folder)
    questions = [
        "Who proposed a quokka sanctuary?",
        "Who mediated the prisoner exchange?",
        "What did the Geneva round decide about the Donbas?",
        "Why was there a local truce at the nuclear plant?",
    ]
    incremental = Answerer(Searcher.open(data_dir, "hash", embedder=EMBED))
    assert incremental.searcher.index.tail_index
    before = [[c.quote for c in incremental.answer(q).citations] for q in questions]
    assert before[0] and "quokka" in before[0][0]
    done = run_cli(data_dir, "reindex")
    assert done.returncode == 0 and "reindexed 18 sentences" in done.stdout, done.stderr
    assert incremental.searcher.refresh()  # the running process moves to the new snapshot
    assert not incremental.searcher.index.tail_index
    after = [[c.quote for c in incremental.answer(q).citations] for q in questions]
    assert after == before


def test_neighbourhood_reads_the_sentences_around_candidates(
    corpus_store: Store, tmp_path: Path
) -> None:
    store = corpus_store
    folder = quokka_folder(tmp_path)
    Ingester(store, EMBED).ingest_paths([folder], progress=False)
    first, middle, last = ids_of(store, "Quokka sanctuary floated")
    near = LiveIndex.open(store).neighbourhood([middle, last], before=2, after=1)
    assert near.before[middle] == [first] and near.after[middle] == [last]
    assert near.before[last] == [middle, first] and near.after[last] == []
    assert set(near.rows) == set(near.order) == {first, middle, last}
    stored = store.db.execute("SELECT embedding FROM sentences WHERE id=?", (first,)).fetchone()
    np.testing.assert_array_equal(
        near.matrix[near.order.index(first)], np.frombuffer(stored[0], np.float32)
    )
    assert near.rows[first].text == QUOKKA[0]


def test_a_snapshot_tokenizes_sentences_whose_tokens_are_missing(corpus_store: Store) -> None:
    store = corpus_store
    (umerov,) = [
        r[0] for r in store.db.execute("SELECT id FROM sentences WHERE text LIKE '%Umerov%'")
    ]
    with store.db:
        store.db.execute("DELETE FROM sentence_terms WHERE rowid=?", (umerov,))
    rebuild(store)
    assert LiveIndex.open(store).lexical(["umerov"]).top(1)[0].tolist() == [umerov]


def test_a_running_bot_answers_from_articles_another_process_stored(
    corpus_store: Store, data_dir: Path, tmp_path: Path
) -> None:
    from tests.harness.chat import ask, wait_until
    from tests.harness.in_process import app_bot

    folder = quokka_folder(tmp_path)
    with app_bot(data_dir, talksbot_index_poll=0.5) as (api, bot):
        searcher = bot.answerer.searcher
        snapshot = searcher.index.snapshot.name
        done = run_cli(data_dir, "ingest", str(folder))
        assert done.returncode == 0, done.stderr
        # Picked up by the bot's poll, well within 5 s, and without a new snapshot.
        wait_until(lambda: searcher.size == 18, timeout=5, what="the bot's index to catch up")
        assert searcher.index.snapshot.name == snapshot
        reply = ask(api, api.message(QUOKKA[0]), chat_id=42)
        assert "quokka" in reply.params["text"]


def test_snapshot_bm25_scores_are_those_of_bm25s(corpus_store: Store, data_dir: Path) -> None:
    import bm25s

    live = LiveIndex.open(corpus_store)
    folder = data_dir / "index" / live.snapshot.name / "bm25"
    reference = bm25s.BM25.load(str(folder), mmap=True)
    for terms in (["geneva", "talk"], ["prison", "exchang", "prison"], ["umerov"]):
        known = [t for t in terms if t in reference.vocab_dict]
        np.testing.assert_array_equal(
            live.snapshot.bm25.scores(terms), np.asarray(reference.get_scores(known), np.float32)
        )
        assert live.snapshot.bm25.df(terms[0]) > 0


def test_new_sentences_and_snapshot_sentences_are_ranked_by_one_idf(
    corpus_store: Store, data_dir: Path, tmp_path: Path
) -> None:
    """A sentence stored after the snapshot scores as the same sentence inside it: the
    snapshot's precomputed weights follow the live IDF until the next rewrite."""
    store = corpus_store
    live = LiveIndex.open(store)
    original = (
        "Mr. Umerov, who leads the Ukrainian delegation, said the atmosphere was constructive "
        "but difficult."
    )
    [old_id] = [
        r[0] for r in store.db.execute("SELECT id FROM sentences WHERE text = ?", (original,))
    ]
    snap_df, snap_n = live.df("umerov"), live.size
    before = float(live.lexical(["umerov"]).scores_for([old_id])[0])
    folder = tmp_path / "new"
    folder.mkdir()
    write_article(
        folder,
        "umerov",
        "Umerov returns to Kyiv",
        [
            original,
            "Umerov briefed parliament on the talks in a closed session on Thursday evening.",
            "Lawmakers asked Umerov whether a ceasefire line had been drawn on any map at all.",
        ],
    )
    ingest(data_dir, folder)
    assert live.refresh() and current_snapshot_name(store.db) == live.snapshot.name
    new_id = ids_of(store, "Umerov returns to Kyiv")[0]  # the copy of the original
    scores = live.lexical(["umerov"]).scores_for([old_id, new_id])
    assert live.df("umerov") == snap_df + 3
    assert scores[0] == pytest.approx(scores[1], rel=1e-5)  # one IDF, one length norm
    idf = live_index.bm25_idf
    ratio = idf(snap_df + 3, snap_n + 3) / idf(snap_df, snap_n)
    assert ratio < 0.8 and scores[0] == pytest.approx(before * ratio, rel=1e-5)


@pytest.mark.parametrize("matches", [300, 5_000, 250_000])
def test_top_of_a_million_scores_is_the_exact_top(matches: int) -> None:
    """Past IVF_MIN_VECTORS the top k is picked from rows above a sampled floor: it must hold
    the same scores as an exact selection, however many rows match."""
    from index.live_index import IVF_MIN_VECTORS, LexicalScores

    rng = np.random.default_rng(matches)
    n = IVF_MIN_VECTORS * 5
    scores = np.zeros(n, np.float32)
    rows = rng.choice(n, matches, replace=False)
    scores[rows] = rng.gamma(2.0, 2.0, matches).astype(np.float32)
    ids = np.arange(n, dtype=np.int64) * 3 + 7
    got_ids, got = LexicalScores(ids, scores, {}).top(400)
    expected = np.sort(scores[scores > 0])[::-1][:400]
    assert np.array_equal(np.sort(got)[::-1], expected)
    assert np.array_equal(scores[(got_ids - 7) // 3], got)


def test_a_name_new_articles_bring_is_matched_fuzzily_without_rereading_the_vocabulary(
    corpus_store: Store, data_dir: Path, tmp_path: Path
) -> None:
    """A misspelt name from an article stored after the answerer started is known at once
    (reading the whole vocabulary again cost ~1.4 s at a million sentences), and a rewritten
    index is read whole again."""
    from retrieval.search import Searcher

    searcher = Searcher(corpus_store, EMBED, LiveIndex.open(corpus_store))
    assert not searcher.names.known("Quokkaa", "quokkaa")
    matcher = searcher.names
    run = run_cli(data_dir, "ingest", str(quokka_folder(tmp_path)))
    assert run.returncode == 0, run.stderr
    assert searcher.refresh()
    assert searcher.names is matcher  # extended, not rebuilt
    assert searcher.names.known("Quokkaa", "quokkaa")
    assert searcher.names.known("Reykjavick", "reykjavick")
    assert not searcher.names.known("Zanzibar", "zanzibar")
    rebuild(corpus_store)
    searcher.refresh()
    assert searcher.names is not matcher
    assert searcher.names.known("Quokkaa", "quokkaa")


@pytest.mark.parametrize("part", ["_dense_index", "_bm25s"])
def test_a_failed_rewrite_leaves_the_live_snapshot_and_no_half_written_folder(
    corpus_store: Store, monkeypatch: pytest.MonkeyPatch, part: str
) -> None:
    """The dense index is built on a thread beside bm25s: whichever of the two fails, the
    error reaches the caller, the live snapshot still answers, and nothing is left half
    written beside it."""
    live = current_snapshot_name(corpus_store.db)

    def broken(*args: object) -> None:
        raise MemoryError(f"{part} ran out of memory")

    monkeypatch.setattr(live_index, part, broken)
    with pytest.raises(MemoryError, match=part):
        rebuild(corpus_store)
    assert current_snapshot_name(corpus_store.db) == live
    folders = live_index.index_root(corpus_store).iterdir()
    assert sorted(p.name for p in folders if p.is_dir()) == [live]
    monkeypatch.undo()
    assert LiveIndex.open(corpus_store).lexical(["quokka"]).max == 0.0
    assert LiveIndex.open(corpus_store).size > 0


def test_a_long_running_ask_answers_from_articles_stored_after_it_started(
    corpus_store: Store, data_dir: Path, tmp_path: Path
) -> None:
    """``talksbot ask --json`` reading questions from a pipe searches what another process
    stored meanwhile (it used to keep its first view, and once the new names counted as
    known, cite unrelated passages)."""
    import json
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "talksbot.cli", "ask", "--json", "-k", "3"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=cli_env(data_dir, "hash"),
        cwd=data_dir.parent,
    )
    assert proc.stdin and proc.stdout
    try:

        def ask(question: str) -> dict:
            proc.stdin.write(question + "\n")
            proc.stdin.flush()
            return json.loads(proc.stdout.readline())

        question = "What did negotiators in Reykjavik say about the quokka sanctuary?"
        assert "quokka" not in json.dumps(ask(question)["citations"]).lower()
        done = run_cli(data_dir, "ingest", str(quokka_folder(tmp_path)))
        assert done.returncode == 0, done.stderr
        answer = ask(question)
        assert answer["answered"], answer
        assert "quokka" in json.dumps(answer["citations"][0]).lower()
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


@pytest.mark.parametrize(
    "damage",
    ["empty ids", "short ids", "empty bm25 data", "shuffled ids", "foreign dense"],
)
def test_a_damaged_snapshot_is_rebuilt_not_trusted(
    corpus_store: Store, data_dir: Path, damage: str
) -> None:
    """Snapshot files that are empty, cut short, reordered or from another snapshot are
    noticed when loaded (not on some later query, not as wrong citations): the index is
    rebuilt and answers as before."""
    question = "Where were the peace talks held?"
    before = run_cli(data_dir, "ask", "--json", question)
    folder = live_index.index_root(corpus_store) / current_snapshot_name(corpus_store.db)
    ids = np.load(folder / "ids.npy")
    if damage == "empty ids":
        (folder / "ids.npy").write_bytes(b"")
    elif damage == "short ids":
        np.save(folder / "ids.npy", ids[:5])
    elif damage == "empty bm25 data":
        (folder / "bm25" / "data.csc.index.npy").write_bytes(b"")
    elif damage == "shuffled ids":
        np.save(folder / "ids.npy", ids[::-1].copy())
    else:
        import faiss

        faiss.write_index(faiss.IndexIDMap2(faiss.IndexFlatIP(64)), str(folder / "dense.faiss"))
    after = run_cli(data_dir, "ask", "--json", question)
    assert after.returncode == 0, after.stderr
    assert "Traceback" not in after.stderr
    assert after.stdout == before.stdout
    assert current_snapshot_name(corpus_store.db) != folder.name


def test_a_killed_writers_build_folder_goes_with_the_next_rewrite(
    corpus_store: Store, data_dir: Path
) -> None:
    root = live_index.index_root(corpus_store)
    leftover = root / ".build-killed"
    (leftover / "bm25").mkdir(parents=True)
    (leftover / "ids.npy").write_bytes(b"half")
    done = run_cli(data_dir, "reindex")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == [
        current_snapshot_name(corpus_store.db)
    ]


def test_two_ingests_of_one_folder_at_once_both_finish(data_dir: Path, tmp_path: Path) -> None:
    """Each run stores what the other has not; an article the other stored between a look and
    a write is counted as already there, never a crash."""
    import subprocess
    import sys

    folder = many_articles(tmp_path / "many", 300)
    run_cli(data_dir, "stats")  # the store exists (with the sample article) before both start
    before = Store(data_dir)
    stored = before.article_count()
    before.close()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "talksbot.cli", "ingest", str(folder)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(data_dir, "hash"),
            cwd=data_dir.parent,
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=300) for p in procs]
    for proc, (_out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
        assert "Traceback" not in err
    store = Store(data_dir)
    try:
        assert store.article_count() == stored + 300
    finally:
        store.close()


def test_an_article_stored_by_another_process_between_look_and_write_is_not_a_crash(
    corpus_store: Store, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from index.ingest import IngestReport
    from index.loaders import load_file

    path = quokka_folder(tmp_path) / "quokka.md"
    other = Store(data_dir)  # "another process": stores the article first
    Ingester(other, EMBED).ingest_paths([path], progress=False)
    other.close()
    # Our first looks happened before the other write.
    for name, missing, stale in (
        ("find_by_content", None, 1),
        ("find_article_by_key", None, 2),  # by file, then by URL
        ("best_overlap", (None, 0.0), 1),
    ):
        calls, real = {"n": 0}, getattr(corpus_store, name)

        def look(*args: object, _real=real, _calls=calls, _miss=missing, _n=stale) -> object:
            _calls["n"] += 1
            return _miss if _calls["n"] <= _n else _real(*args)

        monkeypatch.setattr(corpus_store, name, look)
    report = IngestReport()
    assert Ingester(corpus_store, EMBED).ingest_article(load_file(path), report) is None
    assert (report.added, report.unchanged + report.duplicates) == (0, 1)


def test_a_killed_bulk_ingest_leaves_no_workers_behind(data_dir: Path, tmp_path: Path) -> None:
    """kill -9 of a bulk ingest: its reading/segmenting workers leave too (they held the
    store's files open forever), and a rerun finishes the job."""
    import os
    import signal
    import subprocess
    import sys
    import time

    folder = many_articles(tmp_path / "many", 3000)
    proc = subprocess.Popen(
        [sys.executable, "-m", "talksbot.cli", "ingest", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=cli_env(data_dir, "hash"),
        cwd=data_dir.parent,
    )

    def children() -> set[int]:
        found = set()
        for task in Path(f"/proc/{proc.pid}/task").glob("*"):
            with contextlib.suppress(OSError):
                found.update(int(c) for c in (task / "children").read_text().split())
        return found

    deadline = time.monotonic() + 60
    while len(workers := children()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(workers) >= 2, "the bulk ingest never started its workers"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{w}").exists() for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [w for w in workers if Path(f"/proc/{w}").exists()]
    done = run_cli(data_dir, "ingest", str(folder), timeout=300)
    assert done.returncode == 0, done.stderr


def test_an_article_updated_under_its_url_from_another_file_replaces_the_old_text(
    corpus_store: Store, data_dir: Path, tmp_path: Path
) -> None:
    first = quokka_folder(tmp_path)
    assert run_cli(data_dir, "ingest", str(first)).returncode == 0
    changed = tmp_path / "changed"
    changed.mkdir()
    write_article(
        changed, "quokka-v2", "Quokka sanctuary floated", [*QUOKKA[:2], "Funding comes from Oslo."]
    )
    # Same URL in the front matter, another file: the page changed.
    text = (
        (changed / "quokka-v2.md")
        .read_text()
        .replace("news.example/quokka-v2", "news.example/quokka")
    )
    (changed / "quokka-v2.md").write_text(text)
    done = run_cli(data_dir, "ingest", str(changed))
    assert "1 updated" in done.stdout, done.stdout
    live = LiveIndex.open(corpus_store)
    assert live.lexical(["oslo"]).top(5)[0].size == 1
    assert live.lexical(["iceland"]).top(5)[0].size == 0


def test_delete_by_url_or_file_without_a_rebuild(
    corpus_store: Store, data_dir: Path, tmp_path: Path
) -> None:
    folder = quokka_folder(tmp_path)
    assert run_cli(data_dir, "ingest", str(folder)).returncode == 0
    live = LiveIndex.open(corpus_store)
    snapshot = live.snapshot.name
    assert live.lexical(["quokka"]).top(5)[0].size == 2
    done = run_cli(data_dir, "delete", "https://news.example/quokka")
    assert (done.returncode, done.stdout.strip()) == (0, "1 article deleted"), done.stderr
    assert live.refresh()
    assert live.lexical(["quokka"]).top(5)[0].size == 0
    assert live.snapshot.name == snapshot
    again = run_cli(data_dir, "delete", str(folder / "quokka.md"), "https://nowhere.example/x")
    assert again.returncode == 1
    assert again.stderr.count("no stored article has the URL or file") == 2
    assert "Traceback" not in again.stderr
    # Ingested again from its file, then deleted by that file.
    assert run_cli(data_dir, "ingest", str(folder)).returncode == 0
    assert run_cli(data_dir, "delete", str(folder / "quokka.md")).returncode == 0
    assert live.refresh() and live.lexical(["quokka"]).top(5)[0].size == 0


def _resident_bytes(path: Path) -> int:
    """Bytes of ``path`` in the OS page cache (util-linux ``fincore``)."""
    out = subprocess.run(
        ["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.split()[0])


@pytest.mark.skipif(shutil.which("fincore") is None, reason="needs util-linux fincore")
def test_prefetch_brings_the_store_and_snapshot_files_into_the_page_cache(
    corpus_store: Store, data_dir: Path
) -> None:
    live = LiveIndex.open(corpus_store)
    corpus_store.db.commit()
    folder = data_dir / "index" / current_snapshot_name(corpus_store.db)
    files = [data_dir / "talksbot.db", *sorted(p for p in folder.rglob("*") if p.is_file())]
    os.sync()
    for path in files:  # out of the cache: what a machine busy with other work does to them
        fd = os.open(path, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
    # Pages this process has mapped stay; the rest (the database above all) are gone.
    evicted = [p for p in files if _resident_bytes(p) == 0]
    if data_dir / "talksbot.db" not in evicted:
        pytest.skip("this file system keeps its pages in the cache (tmpfs)")
    live.prefetch()
    deadline = time.monotonic() + 5
    while any(_resident_bytes(p) < p.stat().st_size for p in evicted):
        assert time.monotonic() < deadline, [(p.name, _resident_bytes(p)) for p in evicted]
        time.sleep(0.05)


def test_token_count_follows_additions_updates_deletions_and_rewrites(
    corpus_store: Store, data_dir: Path, tmp_path: Path
) -> None:
    """The abstainer sizes the corpus by ``token_count``: exact for the snapshot and the tail
    as sentences arrive, change and leave, and again after a rewrite; a sentence deleted from
    the snapshot is taken at the snapshot's mean length."""
    store = corpus_store

    def stored_tokens() -> int:
        rows = store.db.execute(
            "SELECT t.terms FROM sentences s LEFT JOIN sentence_terms t ON t.rowid = s.id "
            "WHERE s.embedding IS NOT NULL"
        )
        return sum(len((terms or "").split() or [live_index.EMPTY_TOKEN]) for (terms,) in rows)

    live = LiveIndex.open(store)
    assert live.token_count == stored_tokens() > 0
    folder = quokka_folder(tmp_path)
    ingest(data_dir, folder)
    assert live.refresh() and live.tail_tokens > 0
    assert live.token_count == stored_tokens()
    path = folder / "quokka.md"
    path.write_text(path.read_text().replace("quokka sanctuary", "wombat refuge by the sea"))
    ingest(data_dir, folder)
    assert live.refresh() and live.token_count == stored_tokens()
    with store.transaction() as db:
        db.execute("DELETE FROM articles WHERE title LIKE 'Quokka%'")
    assert live.refresh() and live.tail_tokens == 0
    assert live.token_count == stored_tokens()
    geneva = len(ids_of(store, "Geneva round ends without a deal on the Donbas"))
    before = live.token_count
    with store.transaction() as db:
        db.execute("DELETE FROM articles WHERE title LIKE 'Geneva%'")
    assert live.refresh()
    assert live.token_count == int(live.snapshot.avgdl * (live.snapshot.size - geneva))
    assert live.token_count < before
    ingest(data_dir, folder)
    assert live.refresh() and live.tail_tokens > 0
    rebuild(store)
    assert live.refresh() and live.tail_tokens == 0
    assert live.token_count == stored_tokens() == LiveIndex.open(store).token_count
