"""The data dir: a SQLite store of articles and sentences (with their embeddings) plus the
search index files derived from it.

Layout of ``TALKSBOT_DATA_DIR``::

    talksbot.db          articles, sentences (+ embeddings), URLs, feedback; WAL mode
    params.json          which model and settings built the embeddings; a mismatch is refused
    models/              the ONNX export of the bundled model (made once)
    index/CURRENT        names the live index folder, swapped atomically
    index/gen-N/         dense.faiss, ids.npy, bm25/ and manifest.json for store generation N

SQLite transactions make every article all-or-nothing; the index folder is derived data,
rebuilt from the stored embeddings (no model needed) whenever its generation is behind the
database's. Killing a writer at any moment therefore leaves a store that loads and answers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index.store_leases import SCHEMA as LEASES_SCHEMA
from index.store_leases import Leases

SCHEMA_VERSION = 1
DB_NAME = "talksbot.db"
PARAMS_NAME = "params.json"

SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS articles (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL DEFAULT '',
    canonical_url TEXT NOT NULL DEFAULT '',
    title TEXT NOT NULL,
    outlet TEXT NOT NULL DEFAULT '',
    published TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT '',
    content_hash TEXT NOT NULL UNIQUE,
    added_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS article_urls (
    url TEXT PRIMARY KEY,            -- canonical URL or source path
    article_id INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    outlet TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL DEFAULT 'primary'   -- 'primary', 'alias' or 'also_reported'
);
CREATE TABLE IF NOT EXISTS sentences (
    id INTEGER PRIMARY KEY,
    article_id INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    para INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    position INTEGER NOT NULL,
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    hash TEXT NOT NULL,
    embedding BLOB
);
CREATE INDEX IF NOT EXISTS sentences_article ON sentences(article_id, position);
CREATE INDEX IF NOT EXISTS sentences_hash ON sentences(hash);
-- Answers shown in chats, so that their buttons outlive restarts.
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY,
    created_at REAL NOT NULL,
    chat_id INTEGER,
    question TEXT NOT NULL,
    shown TEXT NOT NULL DEFAULT '[]'  -- JSON list of sentence ids currently shown
);
CREATE TABLE IF NOT EXISTS feeds (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL DEFAULT '',
    added_at REAL NOT NULL,
    checked_at REAL,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS feed_entries (   -- entries taken: a poll fetches only new ones
    feed_id INTEGER NOT NULL REFERENCES feeds(id) ON DELETE CASCADE,
    entry_key TEXT NOT NULL,
    seen_at REAL NOT NULL,
    PRIMARY KEY (feed_id, entry_key)
);
CREATE TABLE IF NOT EXISTS subscriptions (
    id INTEGER PRIMARY KEY,
    chat_id INTEGER NOT NULL,
    topic TEXT NOT NULL DEFAULT '',     -- '' = all new coverage
    vector BLOB,                        -- topic embedding (NULL for all)
    created_at REAL NOT NULL,
    active INTEGER NOT NULL DEFAULT 1,
    thread_id INTEGER,                  -- the forum topic it was made in (pushed there)
    UNIQUE (chat_id, topic)
);
CREATE TABLE IF NOT EXISTS deliveries (  -- the persistent push queue; one row per chat and story
    id INTEGER PRIMARY KEY,
    chat_id INTEGER NOT NULL,
    article_id INTEGER NOT NULL,
    subscription_id INTEGER,
    body TEXT NOT NULL,                 -- JSON: what to say (rendered by the bot)
    -- pending, digest (waits), claimed, sending, digest-sending, sent, failed, cancelled
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    sent_at REAL,
    error TEXT NOT NULL DEFAULT '',
    lease_holder TEXT NOT NULL DEFAULT '',   -- the process that claimed it
    lease_until REAL NOT NULL DEFAULT 0,     -- its claim lapses then
    UNIQUE (chat_id, article_id)
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries(status, next_at);
CREATE TABLE IF NOT EXISTS chat_settings (
    chat_id INTEGER PRIMARY KEY,
    digest_minutes INTEGER NOT NULL DEFAULT 0,   -- 0: one push per story; else one digest
    last_digest_at REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY,
    created_at REAL NOT NULL,
    chat_id INTEGER,
    user_id INTEGER,
    question TEXT NOT NULL,
    citations TEXT NOT NULL,   -- JSON list of sentence ids shown
    vote INTEGER NOT NULL      -- +1 or -1
);
"""
    + LEASES_SCHEMA
)


class StoreError(Exception):
    """A data dir that cannot be used as it is; the message says why and what to do."""


@dataclass
class ArticleRow:
    id: int
    url: str
    title: str
    outlet: str
    published: str
    source: str


@dataclass
class SentenceRow:
    id: int
    article_id: int
    para: int
    seq: int
    position: int
    kind: str
    text: str


def text_hash(text: str) -> str:
    """Identity of a sentence across copies: case, punctuation and spacing folded."""
    folded = re.sub(r"[\W_]+", " ", text.casefold()).strip()
    return hashlib.blake2b(folded.encode(), digest_size=10).hexdigest()


def _atomic_write(path: Path, data: str) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(f.name, path)


class Store:
    """The SQLite side of the data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.data_dir / DB_NAME, timeout=30, check_same_thread=False)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
            self.leases = Leases(self.db)
        except (OSError, sqlite3.DatabaseError) as exc:
            raise StoreError(f"cannot open the store in {self.data_dir}: {exc}") from None

    def close(self) -> None:
        self.db.close()

    # -- params -----------------------------------------------------------------------------
    @property
    def params_path(self) -> Path:
        return self.data_dir / PARAMS_NAME

    def read_params(self) -> dict | None:
        if not self.params_path.exists():
            return None
        try:
            return json.loads(self.params_path.read_text())
        except (OSError, ValueError) as exc:
            raise StoreError(f"{self.params_path} is unreadable ({exc})") from None

    def check_params(self, expected: dict, write: bool) -> None:
        """Refuse a data dir built by another model or settings; record ours on first write."""
        expected = {"schema": SCHEMA_VERSION, **expected}
        found = self.read_params()
        if found is None:
            if self.article_count() and not write:
                raise StoreError(f"{self.params_path} is missing; re-ingest into a new data dir")
            if write:
                _atomic_write(self.params_path, json.dumps(expected, indent=2, sort_keys=True))
            return
        diffs = [
            f"{key}: index has {found.get(key)!r}, configured {value!r}"
            for key, value in expected.items()
            if found.get(key) != value
        ]
        if diffs:
            raise StoreError(
                f"the index in {self.data_dir} was built with different settings ("
                + "; ".join(diffs)
                + "). Use the settings it was built with, or ingest into a new TALKSBOT_DATA_DIR."
            )

    # -- generation -------------------------------------------------------------------------
    def generation(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        return int(row[0]) if row else 0

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One all-or-nothing write that also bumps the generation (so indexes know to rebuild)."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            yield self.db
            self.db.execute(
                "INSERT INTO meta(key, value) VALUES('generation', '1') ON CONFLICT(key) "
                "DO UPDATE SET value = CAST(value AS INTEGER) + 1"
            )

    # -- reads ------------------------------------------------------------------------------
    def article_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM articles").fetchone()[0]

    def article(self, article_id: int) -> ArticleRow | None:
        row = self.db.execute(
            "SELECT id, url, title, outlet, published, source FROM articles WHERE id=?",
            (article_id,),
        ).fetchone()
        return ArticleRow(**dict(row)) if row else None

    def articles(self) -> list[ArticleRow]:
        rows = self.db.execute(
            "SELECT id, url, title, outlet, published, source FROM articles ORDER BY id"
        ).fetchall()
        return [ArticleRow(**dict(r)) for r in rows]

    def find_article_by_key(self, key: str) -> int | None:
        row = self.db.execute("SELECT article_id FROM article_urls WHERE url=?", (key,)).fetchone()
        return row[0] if row else None

    def find_by_content(self, content_hash: str) -> int | None:
        row = self.db.execute(
            "SELECT id FROM articles WHERE content_hash=?", (content_hash,)
        ).fetchone()
        return row[0] if row else None

    def best_overlap(self, hashes: list[str]) -> tuple[int | None, float]:
        """The stored article sharing most of these sentence hashes, and the share shared."""
        unique = list(dict.fromkeys(hashes))
        if not unique:
            return None, 0.0
        counts: dict[int, int] = {}
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for article_id, n in self.db.execute(
                f"SELECT article_id, COUNT(DISTINCT hash) FROM sentences WHERE hash IN ({marks}) "
                "AND kind != 'boilerplate' GROUP BY article_id",
                chunk,
            ):
                counts[article_id] = counts.get(article_id, 0) + n
        if not counts:
            return None, 0.0
        best = max(counts, key=counts.__getitem__)
        return best, counts[best] / len(unique)

    def sentences(self, ids: list[int]) -> dict[int, SentenceRow]:
        out: dict[int, SentenceRow] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for r in self.db.execute(
                f"SELECT id, article_id, para, seq, position, kind, text FROM sentences "
                f"WHERE id IN ({marks})",
                chunk,
            ):
                out[r["id"]] = SentenceRow(**dict(r))
        return out

    def neighbours(
        self, article_id: int, position: int, before: int, after: int
    ) -> list[SentenceRow]:
        """Non-boilerplate units around ``position`` in the article, in reading order."""
        rows = self.db.execute(
            "SELECT * FROM (SELECT id, article_id, para, seq, position, kind, text FROM sentences "
            "WHERE article_id=? AND position<? AND kind!='boilerplate' ORDER BY position DESC "
            "LIMIT ?) UNION ALL SELECT * FROM (SELECT id, article_id, para, seq, position, kind, "
            "text FROM sentences WHERE article_id=? AND position>=? AND kind!='boilerplate' "
            "ORDER BY position LIMIT ?) ORDER BY 5",
            (article_id, position, before, article_id, position, after + 1),
        ).fetchall()
        return [SentenceRow(**dict(r)) for r in rows]

    def indexable(self) -> Iterator[tuple[int, int, str, bytes]]:
        """(sentence id, article id, text, embedding) of everything searchable."""
        yield from self.db.execute(
            "SELECT id, article_id, text, embedding FROM sentences "
            "WHERE embedding IS NOT NULL ORDER BY id"
        )

    def metadata_texts(self) -> Iterator[tuple[int, str]]:
        """(article id, title + outlet + URL words): what names a source."""
        for article_id, title, outlet, url in self.db.execute(
            "SELECT id, title, outlet, url FROM articles"
        ):
            yield article_id, f"{title} {outlet} {re.sub(r'[/_.?=&-]+', ' ', url)}"

    def vocabulary_texts(self) -> Iterator[str]:
        """Every text the corpus holds, boilerplate (bylines) and metadata included: what the
        corpus mentions at all, as opposed to what may be cited."""
        for _, text in self.metadata_texts():
            yield text
        for (text,) in self.db.execute("SELECT text FROM sentences"):
            yield text

    def stats(self) -> dict:
        row = self.db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT NULLIF(outlet, '')), MIN(NULLIF(published, '')), "
            "MAX(NULLIF(published, '')) FROM articles"
        ).fetchone()
        sentences = self.db.execute(
            "SELECT COUNT(*), SUM(embedding IS NOT NULL) FROM sentences"
        ).fetchone()
        outlets = [
            r[0]
            for r in self.db.execute(
                "SELECT outlet, COUNT(*) c FROM articles WHERE outlet != '' GROUP BY outlet "
                "ORDER BY c DESC, outlet"
            )
        ]
        return {
            "articles": row[0],
            "outlets": row[1],
            "outlet_names": outlets,
            "first_published": row[2] or "",
            "last_published": row[3] or "",
            "sentences": sentences[0],
            "indexed_sentences": sentences[1] or 0,
            "generation": self.generation(),
        }

    def latest(self, n: int) -> list[ArticleRow]:
        rows = self.db.execute(
            "SELECT id, url, title, outlet, published, source FROM articles "
            "ORDER BY published DESC, id DESC LIMIT ?",
            (n,),
        ).fetchall()
        return [ArticleRow(**dict(r)) for r in rows]

    def save_answer(self, chat_id: int | None, question: str, shown: list[int]) -> int:
        with self.db:
            return self.db.execute(
                "INSERT INTO answers(created_at, chat_id, question, shown) VALUES (?, ?, ?, ?)",
                (time.time(), chat_id, question, json.dumps(shown)),
            ).lastrowid

    def update_answer(self, answer_id: int, shown: list[int]) -> None:
        with self.db:
            self.db.execute("UPDATE answers SET shown=? WHERE id=?", (json.dumps(shown), answer_id))

    def load_answer(self, answer_id: int) -> tuple[str, list[int]] | None:
        row = self.db.execute(
            "SELECT question, shown FROM answers WHERE id=?", (answer_id,)
        ).fetchone()
        return (row[0], json.loads(row[1])) if row else None

    def add_feedback(
        self, chat_id: int | None, user_id: int | None, question: str, ids: list[int], vote: int
    ) -> None:
        with self.db:
            self.db.execute(
                "INSERT INTO feedback(created_at, chat_id, user_id, question, citations, vote) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (time.time(), chat_id, user_id, question, json.dumps(ids), vote),
            )

    def prune(self, before: float) -> dict[str, int]:
        """Retention: answers, feedback and finished queue rows older than ``before`` go."""
        with self.db:
            return {
                "answers": self.db.execute(
                    "DELETE FROM answers WHERE created_at < ?", (before,)
                ).rowcount,
                "feedback": self.db.execute(
                    "DELETE FROM feedback WHERE created_at < ?", (before,)
                ).rowcount,
                "deliveries": self.db.execute(
                    "DELETE FROM deliveries WHERE status IN ('sent', 'failed', 'cancelled') "
                    "AND COALESCE(sent_at, created_at) < ?",
                    (before,),
                ).rowcount,
            }


def rmtree_quiet(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def embedding_blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()
