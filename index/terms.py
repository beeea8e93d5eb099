"""What the live index reads from the database: stored tokens and a change log.

Three FTS5 tables hold the project's own folded, stemmed tokens (``tokenize``), space-joined, so
nothing is ever tokenized twice and the corpus vocabulary is answered by SQLite:

* ``sentence_terms``: one row per searchable sentence (rowid = sentence id);
* ``mention_terms``: headings and boilerplate (bylines), which are not searchable but are words
  the corpus uses;
* ``article_terms``: an article's title, outlet and URL words (rowid = article id).

``index_log`` records every searchable sentence added or deleted, in commit order (SQL
triggers, so no write path can forget it; the tables come with migration 5 in
``index/schema.py``). A reader replays the log past its snapshot's
position to catch up; a reused sentence id is a deletion followed by an addition.

Rows are written by ``add_article_terms`` inside the ingest transaction (tokenizing needs
Python); deletions are SQL triggers, so deleting an article by any route cleans up.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable

from index.schema import write
from index.text import tokenize
from index.unit_features import UNIT_FEATURES_VERSION, encode

TERMS_VERSION = "1"  # meta 'terms_version': the tables are filled for every stored row
UNITS_KEY = "unit_features_version"  # meta: the code that computed sentences.unit_* columns


def metadata_text(title: str, outlet: str, url: str) -> str:
    """Title, outlet and URL words: what names a source ("the Bloomberg report")."""
    return f"{title} {outlet} {re.sub(r'[/_.?=&-]+', ' ', url)}"


def fill_once(db: sqlite3.Connection) -> None:
    """Fill the token tables (created by migration 5) and the per-unit features (migration 6)
    once for a store made before they existed, or whose features other code computed (one
    write transaction; a store of a million sentences takes a minute or two, once)."""
    if _version(db) == TERMS_VERSION and _version(db, UNITS_KEY) == UNIT_FEATURES_VERSION:
        return
    with write(db):
        # Another process may have filled them meanwhile.
        if _version(db) != TERMS_VERSION:
            refill(db)
        elif _version(db, UNITS_KEY) != UNIT_FEATURES_VERSION:
            refill_units(db)


def _version(db: sqlite3.Connection, key: str = "terms_version") -> str | None:
    row = db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
    return row[0] if row else None


def _set_version(db: sqlite3.Connection, key: str, value: str) -> None:
    db.execute(
        "INSERT INTO meta(key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
        (key, value),
    )


def refill(db: sqlite3.Connection) -> None:
    """Tokenize every stored row again, and compute every searchable unit's features (inside
    the caller's write transaction)."""
    for table in ("sentence_terms", "mention_terms", "article_terms"):
        db.execute(f"DELETE FROM {table}")
    _insert_sentences(
        db, db.execute("SELECT id, text, embedding IS NOT NULL FROM sentences"), units=True
    )
    _insert_articles(db)
    _set_version(db, "terms_version", TERMS_VERSION)
    _set_version(db, UNITS_KEY, UNIT_FEATURES_VERSION)


def refill_units(db: sqlite3.Connection, batch: int = 20_000) -> None:
    """Compute every searchable unit's features again (inside the caller's transaction)."""
    top = db.execute("SELECT COALESCE(MAX(id), 0) FROM sentences").fetchone()[0]
    for low in range(0, top + 1, batch):
        rows = db.execute(
            "SELECT id, text FROM sentences WHERE id BETWEEN ? AND ? AND embedding IS NOT NULL",
            (low, low + batch - 1),
        ).fetchall()
        _update_units(db, [(*encode(text), sid) for sid, text in rows])
    _set_version(db, UNITS_KEY, UNIT_FEATURES_VERSION)


def _update_units(db: sqlite3.Connection, rows: list[tuple[str, int, str, int]]) -> None:
    db.executemany("UPDATE sentences SET unit_terms=?, unit_flags=?, unit_names=? WHERE id=?", rows)


def refill_in_batches(db: sqlite3.Connection, batch: int = 20_000) -> None:
    """``refill`` as short write transactions over id ranges (``talksbot reindex``): ingests
    in other processes wait a moment at most, and each range is consistent on its own."""
    top = db.execute("SELECT COALESCE(MAX(id), 0) FROM sentences").fetchone()[0]
    for low in range(0, top + 1, batch):
        high = low + batch - 1
        with write(db):
            for table in ("sentence_terms", "mention_terms"):
                db.execute(f"DELETE FROM {table} WHERE rowid BETWEEN ? AND ?", (low, high))
            _insert_sentences(
                db,
                db.execute(
                    "SELECT id, text, embedding IS NOT NULL FROM sentences "
                    "WHERE id BETWEEN ? AND ?",
                    (low, high),
                ).fetchall(),
                units=True,
            )
    with write(db):
        db.execute("DELETE FROM article_terms")
        _insert_articles(db)
        _set_version(db, UNITS_KEY, UNIT_FEATURES_VERSION)


def _insert_articles(db: sqlite3.Connection) -> None:
    db.executemany(
        "INSERT INTO article_terms(rowid, terms) VALUES (?, ?)",
        (
            (aid, " ".join(tokenize(metadata_text(title, outlet, url))))
            for aid, title, outlet, url in db.execute(
                "SELECT id, title, outlet, url FROM articles"
            ).fetchall()
        ),
    )


def _insert_sentences(
    db: sqlite3.Connection, rows: Iterable[tuple[int, str, int]], units: bool = False
) -> None:
    """Tokens of these (id, text, searchable) rows; with ``units``, searchable rows' features
    too (the ingest path writes those with the row itself)."""
    searchable: list[tuple[int, str]] = []
    mentions: list[tuple[int, str]] = []
    features: list[tuple[str, int, str, int]] = []
    for sentence_id, text, indexed in rows:
        tokens = tokenize(text)
        (searchable if indexed else mentions).append((sentence_id, " ".join(tokens)))
        if units and indexed:
            features.append((*encode(text, tokens), sentence_id))
        if len(searchable) + len(mentions) >= 5000:
            _flush(db, searchable, mentions, features)
    _flush(db, searchable, mentions, features)


def _flush(db: sqlite3.Connection, searchable: list, mentions: list, features: list) -> None:
    db.executemany("INSERT INTO sentence_terms(rowid, terms) VALUES (?, ?)", searchable)
    db.executemany("INSERT INTO mention_terms(rowid, terms) VALUES (?, ?)", mentions)
    _update_units(db, features)
    searchable.clear()
    mentions.clear()
    features.clear()


def add_article_terms(
    db: sqlite3.Connection, article_id: int, tokens: dict[int, str] | None = None
) -> None:
    """Store the tokens of one article just written (call inside its write transaction; an
    updated article's old rows were removed with its old sentences). ``tokens``: each unit's
    tokens, space-joined, by position, when already known (so nothing is tokenized twice)."""
    db.execute("DELETE FROM article_terms WHERE rowid=?", (article_id,))
    row = db.execute("SELECT title, outlet, url FROM articles WHERE id=?", (article_id,)).fetchone()
    if row is None:
        return
    db.execute(
        "INSERT INTO article_terms(rowid, terms) VALUES (?, ?)",
        (article_id, " ".join(tokenize(metadata_text(*row)))),
    )
    rows = db.execute(
        "SELECT id, text, embedding IS NOT NULL, position FROM sentences WHERE article_id=? "
        "ORDER BY position",
        (article_id,),
    ).fetchall()
    if tokens is None:
        _insert_sentences(db, (row[:3] for row in rows))
        return
    searchable = [(sid, tokens[pos]) for sid, _, indexed, pos in rows if indexed]
    mentions = [(sid, tokens[pos]) for sid, _, indexed, pos in rows if not indexed]
    _flush(db, searchable, mentions, [])


def fts_phrase(term: str) -> str:
    """One token as an FTS5 string (quotes doubled), never an operator."""
    return '"' + term.replace('"', '""') + '"'


def mentioned(db: sqlite3.Connection, term: str) -> bool:
    """Whether any stored text (sentences, bylines, titles, URLs) uses this token."""
    phrase = fts_phrase(term)
    return any(
        db.execute(f"SELECT 1 FROM {table} WHERE {table} MATCH ? LIMIT 1", (phrase,)).fetchone()
        for table in ("sentence_terms", "article_terms", "mention_terms")
    )


def article_terms(db: sqlite3.Connection, article_ids: Iterable[int]) -> dict[int, str]:
    """Title/outlet/URL tokens of these articles, space-joined (as stored)."""
    ids = list(dict.fromkeys(article_ids))
    out: dict[int, str] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for aid, terms in db.execute(
            f"SELECT rowid, terms FROM article_terms WHERE rowid IN ({marks})", chunk
        ):
            out[aid] = terms
    return out


def vocabulary(db: sqlite3.Connection) -> set[str]:
    """Every token the corpus uses anywhere, bare numbers left out (fts5vocab over the three
    tables; temp tables of this connection, so nothing is written to the store). Numbers are
    what a large corpus has most of and what name matching never looks at."""
    words: set[str] = set()
    for table in ("sentence_terms", "mention_terms", "article_terms"):
        db.execute(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{table}_vocab "
            f"USING fts5vocab(main, {table}, 'row')"
        )
        words.update(
            term
            for (term,) in db.execute(
                f"SELECT term FROM temp.{table}_vocab WHERE term GLOB '*[^0-9]*'"
            )
        )
    return words


def log_position(db: sqlite3.Connection) -> int:
    """The change log's last entry: the index generation a reader polls."""
    row = db.execute("SELECT seq FROM sqlite_sequence WHERE name='index_log'").fetchone()
    return int(row[0]) if row else 0
