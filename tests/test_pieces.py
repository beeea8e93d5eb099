"""Soft matching of word pieces (``retrieval.pieces``) with the bundled model's real piece table:
what it matches, what it ignores, how rarity weighs, and the store sample it counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from index.embed import bundled_model_dir
from index.live_index import rebuild
from index.store import Store
from retrieval.features import FEATURES
from retrieval.pieces import PieceMatcher
from tests.harness.data import CORPUS, answering, ingest

BACKGROUND = [
    "Officials in Ukraine met on Tuesday.",
    "Ukraine said the meeting went well.",
    "A spokesman for Ukraine declined to comment.",
    "The weather in Ukraine was mild.",
]


def matcher(sample: list[str] = BACKGROUND) -> PieceMatcher:
    return PieceMatcher(bundled_model_dir(), lambda n: sample[:n])


@pytest.fixture(scope="module")
def plain() -> PieceMatcher:
    return matcher()


def test_a_unit_holding_every_asked_piece_scores_one_and_a_paraphrase_beats_an_unrelated_one(
    plain: PieceMatcher,
) -> None:
    question = "How many civilians were killed in the strike?"
    units = [
        "Many civilians were killed in the strike on Kharkiv.",
        "Dozens of people died when the missile hit.",
        "The museum opened a new exhibition of paintings.",
    ]
    scores = plain.recall(question, units)
    assert scores[0] == pytest.approx(1.0, abs=1e-5)
    assert scores[1] > scores[2]
    assert 0 < scores[2] < scores[1] < scores[0]


def test_stopwords_punctuation_and_empty_units_count_for_nothing(plain: PieceMatcher) -> None:
    assert plain.recall("What is it, and who?", ["Civilians were killed."]).tolist() == [0]
    scores = plain.recall("Were civilians killed?", ["", "?!, the of"])
    assert scores.tolist() == [0, 0]


def test_a_piece_every_unit_uses_weighs_less_than_a_rare_one() -> None:
    m = matcher()
    question = "Ukraine ceasefire"
    only_common, only_rare = m.recall(question, ["Ukraine", "ceasefire"])
    assert only_rare > only_common
    # Counted on another corpus, the weights follow it: there "ceasefire" is everywhere.
    other = matcher([f"The ceasefire held on day {i}." for i in range(5)])
    only_common, only_rare = other.recall(question, ["Ukraine", "ceasefire"])
    assert only_common > only_rare


def test_pieces_are_the_tokenizers_and_each_words_are_kept_within_a_bound(
    plain: PieceMatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    import retrieval.pieces as pieces

    text = "Zelenskyy's négociateurs met Witkoff in Genève; 14,383 deaths (UNHCR) — «talks»."
    encoded = plain.tokenizer.encode(text, add_special_tokens=False).ids
    assert plain.pieces(text) == [i for i in encoded if not plain.ignored[i]]
    assert list(plain._words["witkoff"]) == plain.pieces("Witkoff")  # kept by word
    monkeypatch.setattr(pieces, "WORD_CACHE", 3)
    for word in ("alpha", "beta", "gamma", "delta", "epsilon"):
        plain.pieces(word)
        assert len(plain._words) <= 3


def test_the_store_sample_spreads_over_ids_and_skips_unsearchable_rows(tmp_path: Path) -> None:
    ingest(tmp_path, CORPUS)
    store = Store(tmp_path)
    ids = [r[0] for r in store.db.execute("SELECT id FROM sentences ORDER BY id")]
    # Two rows made unsearchable (as boilerplate mentions are): never sampled.
    hidden = {ids[1], ids[-2]}
    with store.db:
        store.db.executemany(
            "UPDATE sentences SET embedding=NULL WHERE id=?", [(i,) for i in hidden]
        )
    text_id = {t: i for i, t in store.db.execute("SELECT id, text FROM sentences")}
    searchable = {text_id[t] for _, t, _ in store.searchable_units()}
    assert not hidden & searchable
    assert {text_id[t] for t in store.unit_sample(10_000)} == searchable
    few = sorted(text_id[t] for t in store.unit_sample(3))
    assert 0 < len(few) <= 3 and not hidden & set(few)
    assert few[0] == ids[0] and few[-1] == ids[-1]  # from both ends of the ids, not the first 3
    store.close()


def test_repeats_are_weighed_as_before_and_long_words_count_for_nothing(
    plain: PieceMatcher,
) -> None:
    question = "ceasefire ceasefire talks"
    texts = ["talks talks talks on a truce", "Ceasefire", "x" * 41, ""]
    # Reference: every question piece with its rarity, each against every piece of the text.
    asked = plain.pieces(question)
    w = plain.idf[asked]
    expected = []
    for text in texts:
        own = plain.pieces(text)
        if not own:
            expected.append(0.0)
            continue
        best = (plain.table[asked] @ plain.table[own].T).max(axis=1)
        expected.append(float(w @ best / w.sum()))
    assert plain.recall(question, texts) == pytest.approx(expected, abs=1e-5)
    assert plain.pieces("x" * 41) == [] and "x" * 41 not in plain._words
    assert plain.pieces("x" * 40) != []


def test_a_hostile_question_and_article_cost_their_distinct_pieces_only(
    plain: PieceMatcher,
) -> None:
    import random
    import string
    import tracemalloc

    rng = random.Random(7)
    made_up = [
        "".join(rng.choices(string.ascii_lowercase, k=rng.randint(30, 40))) for _ in range(2000)
    ]
    question = " ".join(made_up[:30])
    texts = [" ".join(rng.sample(made_up, 60)) for _ in range(150)]
    tracemalloc.start()
    plain.recall(question, texts)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # One row of the texts' pieces at a time: a few MB, where a matrix of every question piece
    # by every text piece (here ~300 x ~90,000 floats) took over 100 MB.
    assert peak < 30e6


def test_pools_carry_piece_recall_counted_on_the_store(tmp_path: Path) -> None:
    ingest(tmp_path, CORPUS)
    with answering(tmp_path) as answerer:
        searcher = answerer.searcher
        pool = searcher.pool("Where were the Geneva talks held?")
        column = pool.features[:, FEATURES.index("piece_recall")]
        texts = pool.texts
        best = texts[int(np.argmax(column))].lower()
        assert "geneva" in best and "talks" in best
        assert column.min() >= 0
        idf = searcher.pieces.idf
        vocab = searcher.pieces.tokenizer.get_vocab()
        # Counted on the store: a word the fixture corpus uses weighs less than one it never does.
        assert idf[vocab["geneva"]] < idf[vocab["banana"]]


def test_rarity_counted_on_an_empty_store_is_counted_again_once_articles_come(
    tmp_path: Path,
) -> None:
    Store(tmp_path).close()
    with answering(tmp_path) as answerer:
        searcher = answerer.searcher
        empty = searcher.pieces.idf.copy()
        assert len(set(empty.tolist())) == 1  # nothing counted: every piece alike
        ingest(tmp_path, CORPUS)
        searcher.refresh()
        vocab = searcher.pieces.tokenizer.get_vocab()
        assert searcher.pieces.idf[vocab["geneva"]] < searcher.pieces.idf[vocab["banana"]]


def test_rarity_is_counted_again_after_the_index_is_rewritten(tmp_path: Path) -> None:
    ingest(tmp_path, CORPUS / "geneva-talks.md")
    with answering(tmp_path) as answerer:
        searcher = answerer.searcher
        vocab = searcher.pieces.tokenizer.get_vocab()
        before = searcher.pieces.idf[vocab["prisoners"]]
        ingest(tmp_path, CORPUS / "prisoner-exchange.txt")
        searcher.refresh()
        assert searcher.pieces.idf[vocab["prisoners"]] == before  # the tail: not yet
        store = Store(tmp_path)
        rebuild(store)  # what ``talksbot reindex`` and a large tail do
        store.close()
        searcher.refresh()
        assert searcher.pieces.idf[vocab["prisoners"]] < before
