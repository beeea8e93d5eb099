"""Per-unit features stored at ingest: equal to computing them from the text, the fast pattern
checks equal to the patterns, old stores filled on open, and a parallel bulk ingest equal to a
serial one."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from index import ingest as ingest_module
from index import unit_features as uf
from index.embed import HashEmbedder
from index.store import Store
from index.text import tokenize, tokenize_uncached
from retrieval.features import FEATURES, holding
from retrieval.search import Searcher
from tests.harness.data import CORPUS, ingest

# Texts where a shortcut could go wrong: case, word edges, digits, Unicode letters that
# ``re.I`` matches to ASCII (dotted I, dotless i, long s, Kelvin sign), non-ASCII digits.
TRICKY = [
    "",
    "No numbers here at all.",
    "Talks resume on MONDAY in Geneva.",
    "They met on mondays, not Monday-ish days",
    "İn March the envoys met",
    "ſeptember 5 was chosen",
    "\u212aelvin said nothing",
    "The ceasefire began at 5pm and ended at 7 PM",
    "5 pmx is no time",
    "in 1999x or x1999 or 19999 but in 2023.",
    "around 2024",
    "Sept. 5 and Jan 3 and 3 Jan and 12 Dec.",
    "a mid-June deadline, early talks, late night, midway, lately",
    "someone with money had a phone",
    "ONE, Twenty-two, halfway, half of them",
    "Due to the strikes, DUE TO them, due  to nothing",
    "retaliatory strikes; retaliation; Retaliate",
    "Aimed At peace, aimed at, so that, in order to, to  allow",
    "said Putin and Trump, met Zelensky; Witkoff: Kushner's plan U.S.-backed",
    "a, Bc d: Ef g; H ij K",
    "٣ أيام من المحادثات ۵",
    "Die Gespräche in Genf dauern bis Mittwoch, sagte Ямала.",
    "Yesterday's talks; TODAY; tomorrow's; last week; this  week; Next Week",
    "after the talks, afterwards, thereafter",
    "reasonable reasons, reason",
    "amid, Amidst",
]


def corpus_texts() -> list[str]:
    texts = list(TRICKY)
    for path in sorted(CORPUS.iterdir()):
        texts += path.read_text(errors="replace").splitlines()
    return texts


def test_fast_pattern_checks_equal_the_patterns() -> None:
    for text in corpus_texts():
        assert uf.has_number(text) == bool(uf.NUMBER.search(text)), text
        assert uf.has_date(text) == bool(uf.DATE.search(text)), text
        assert uf.has_cause(text) == bool(uf.CAUSE.search(text)), text
        slow = tuple(frozenset(tokenize(m.group())) for m in uf.INNER_NAME.finditer(text))
        assert uf.inner_names(text) == slow, text


def test_every_character_re_folds_to_an_ascii_letter_is_known() -> None:
    """The lower-cased shortcuts hold only if no other character matches an ASCII letter."""
    letter = re.compile("[a-z]", re.I)
    folding = [
        chr(c) for c in range(0x80, sys.maxunicode + 1) if letter.fullmatch(chr(c)) is not None
    ]
    assert folding and all(uf._FOLDS_TO_ASCII.fullmatch(c) for c in folding)


def test_cached_tokenize_equals_uncached() -> None:
    for text in corpus_texts():
        assert tokenize(text) == tokenize_uncached(text) == tokenize(text)


def test_features_are_stored_at_ingest(data_dir: Path) -> None:
    ingest(data_dir, CORPUS)
    with Store(data_dir) as store:
        rows = store.db.execute(
            "SELECT s.text, s.unit_terms, s.unit_flags, s.unit_names, t.terms FROM sentences s "
            "JOIN sentence_terms t ON t.rowid = s.id WHERE s.embedding IS NOT NULL"
        ).fetchall()
        unstored = store.db.execute(
            "SELECT COUNT(*) FROM sentences WHERE embedding IS NULL AND unit_flags IS NOT NULL"
        ).fetchone()[0]
    assert len(rows) == 15 and unstored == 0
    assert any(flags & 0b1111 for _, _, flags, _, _ in rows)  # some answer-type flag is set
    assert any(names for *_, names, _ in rows)
    for text, unit_terms, flags, names, terms in rows:
        assert unit_terms == terms  # the tokens, as the lexical index has them
        stored, computed = uf.decode(unit_terms, flags, names), uf.unit_info(text)
        assert stored == computed
        for name in ("terms", "distinct", "pairs", "names", "short", "number", "date", "cause"):
            assert getattr(stored, name) == getattr(computed, name)
        # What ranking asks of every candidate, answered from the stored string and flags.
        assert stored.distinct == len(set(tokenize(text)))
        words = sorted({*tokenize(text), *tokenize("talks Russia the a peace x")})
        held = holding([stored.joined], words)[0]
        assert held.tolist() == [word in set(tokenize(text)) for word in words]
        assert stored.number == bool(uf.NUMBER.search(text))
        assert stored.date == bool(uf.DATE.search(text))
        assert stored.cause == bool(uf.CAUSE.search(text))
        assert stored.names == tuple(
            frozenset(tokenize(m.group())) for m in uf.INNER_NAME.finditer(text)
        )
        assert stored.pairs == frozenset(zip(tokenize(text), tokenize(text)[1:], strict=False))


def test_pool_features_from_stored_values_equal_computed(data_dir: Path) -> None:
    ingest(data_dir, CORPUS)
    searcher = Searcher.open(data_dir, "hash", HashEmbedder())
    questions = [
        "When did the Geneva round end?",
        "How many prisoners were exchanged?",
        "Why did the energy truce collapse?",
        "Who led the Ukrainian delegation?",
        "How long would the demilitarised zone be?",
    ]
    assert searcher.index.stored_units
    stored = [searcher.pool(q) for q in questions]
    assert all(len(p.near.units) == len(p.rows) for p in stored)
    searcher.index.stored_units = False
    computed = [searcher.pool(q) for q in questions]
    assert all(not p.near.units for p in computed)
    for a, b in zip(stored, computed, strict=True):
        assert np.array_equal(a.rows, b.rows) and np.array_equal(a.features, b.features)
    # The set-wise features as first written (per unit, with Python sets).
    for question, pool in zip(questions, stored, strict=True):
        infos = [uf.unit_info(pool.near.rows[int(r)].text) for r in pool.rows]
        words = tokenize(question)
        asked, pairs = set(pool.terms), set(zip(words, words[1:], strict=False))
        novelty = np.log1p([len(x.terms - asked) for x in infos]).astype(np.float32)
        shared = [len(pairs & x.pairs) / max(len(pairs), 1) for x in infos]
        assert np.array_equal(pool.features[:, FEATURES.index("novelty")], novelty)
        assert np.array_equal(pool.features[:, FEATURES.index("bigrams")], np.float32(shared))
    assert stored[-1].features[:, FEATURES.index("bigrams")].any()
    searcher.store.close()


def test_a_store_without_current_features_is_filled_on_open(data_dir: Path) -> None:
    ingest(data_dir, CORPUS)
    with Store(data_dir) as store:
        expected = store.db.execute(
            "SELECT id, unit_terms, unit_flags, unit_names FROM sentences ORDER BY id"
        ).fetchall()
        with store.db:
            store.db.execute(
                "UPDATE sentences SET unit_terms=NULL, unit_flags=NULL, unit_names=NULL"
            )
            store.db.execute("UPDATE meta SET value='0' WHERE key='unit_features_version'")
    with Store(data_dir) as store:
        again = store.db.execute(
            "SELECT id, unit_terms, unit_flags, unit_names FROM sentences ORDER BY id"
        ).fetchall()
        version = store.db.execute(
            "SELECT value FROM meta WHERE key='unit_features_version'"
        ).fetchone()[0]
    assert [tuple(r) for r in again] == [tuple(r) for r in expected]
    assert version == uf.UNIT_FEATURES_VERSION


def test_a_parallel_bulk_ingest_stores_what_a_serial_one_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def stored(data_dir: Path) -> list[tuple]:
        with Store(data_dir) as store:
            return [
                tuple(r)
                for r in store.db.execute(
                    "SELECT s.id, a.title, s.position, s.kind, s.text, s.embedding, s.unit_terms, "
                    "s.unit_flags, s.unit_names FROM sentences s "
                    "JOIN articles a ON a.id = s.article_id ORDER BY s.id"
                )
            ]

    folder = tmp_path / "corpus"
    folder.mkdir()
    for path in sorted(CORPUS.iterdir()):
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "broken.md").write_bytes(b"\xff\xfe not an article")
    serial = ingest(tmp_path / "serial", folder)
    monkeypatch.setattr(ingest_module, "PARALLEL_MIN_FILES", 1)
    monkeypatch.setattr(ingest_module, "PREPARE_BATCH", 2)
    monkeypatch.setattr(ingest_module.os, "cpu_count", lambda: 2)
    parallel = ingest(tmp_path / "parallel", folder)
    assert parallel.summary().split(" in ")[0] == serial.summary().split(" in ")[0]
    assert parallel.errors == serial.errors and serial.errors
    assert stored(tmp_path / "parallel") == stored(tmp_path / "serial")


def test_holding_matches_set_membership_across_neighbouring_units() -> None:
    """A pool's "which unit holds which question term" is one search per term over all
    units' tokens joined: a term ending one unit and starting the next (the same term or two
    different ones, with or without a unit without tokens between), a term that is a prefix
    or suffix of another token, and units without tokens are each their own."""
    texts = [
        "Peace talks in Geneva",
        "talks resumed; peace",
        "peace again",
        "",
        "again peacekeepers talked",
        "Geneva geneva GENEVA",
        "Geneva",
        "x",
    ]
    infos = [uf.unit_info(text) for text in texts]
    words = sorted({*tokenize(" ".join(texts)), "peac", "eace", "talk", "x", "nowhere"})
    held = holding([x.joined for x in infos], words)
    assert held.shape == (len(texts), len(words))
    for row, text in enumerate(texts):
        expected = [word in set(tokenize(text)) for word in words]
        assert held[row].tolist() == expected, text
    assert held.any() and not held.all()
    assert holding([], words).shape == (0, len(words))
    assert holding([x.joined for x in infos], []).shape == (len(texts), 0)
