"""The database schema as numbered migrations, applied in order when a store is opened.

``PRAGMA user_version`` records the last one applied. Migration 1 is the schema every store
created before migrations had (``IF NOT EXISTS`` throughout), so such a store passes through it
unchanged and then gains what later migrations add: new tables, indexes and columns reach an
existing database instead of only fresh ones. Append; never edit a migration once released.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time
from collections.abc import Iterator

MIGRATIONS: list[str] = [
    # 1: articles, sentences, answers, feeds, subscriptions and the push queue.
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
    UNIQUE (chat_id, topic)
);
CREATE TABLE IF NOT EXISTS deliveries (  -- the persistent push queue; one row per chat and story
    id INTEGER PRIMARY KEY,
    chat_id INTEGER NOT NULL,
    article_id INTEGER NOT NULL,
    subscription_id INTEGER,
    body TEXT NOT NULL,                 -- JSON: what to say (rendered by the bot)
    status TEXT NOT NULL DEFAULT 'pending',   -- pending, digest (waits), sent, failed
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    sent_at REAL,
    error TEXT NOT NULL DEFAULT '',
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
""",
    # 2: the push queue is read per chat (digests, retiring a chat, digest mode off).
    "CREATE INDEX IF NOT EXISTS deliveries_chat ON deliveries(chat_id, status);",
    # 3: buttons name their answer by an unguessable token (not a walkable id); feed entries
    # that failed are retried with backoff and given up after a few tries.
    """
ALTER TABLE answers ADD COLUMN token TEXT;
CREATE UNIQUE INDEX IF NOT EXISTS answers_token ON answers(token);
ALTER TABLE feed_entries ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE feed_entries ADD COLUMN next_try_at REAL NOT NULL DEFAULT 0;
ALTER TABLE feed_entries ADD COLUMN state TEXT NOT NULL DEFAULT 'done';  -- done, retry, gave_up
ALTER TABLE feed_entries ADD COLUMN last_error TEXT NOT NULL DEFAULT '';
""",
    # 4: pushes exactly once: a row is claimed by one process (lease_holder, lease_until) and
    # goes through 'claimed' and 'sending' (or 'digest-sending') to sent/failed/cancelled; one
    # process per store sends (leases); forum-topic subscriptions (thread_id).
    """
ALTER TABLE deliveries ADD COLUMN lease_holder TEXT NOT NULL DEFAULT '';
ALTER TABLE deliveries ADD COLUMN lease_until REAL NOT NULL DEFAULT 0;
ALTER TABLE subscriptions ADD COLUMN thread_id INTEGER;
CREATE TABLE IF NOT EXISTS leases (  -- one process per job (e.g. 'pushes'); taken over on expiry
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,           -- host:pid:nonce of the holding process
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS answers_created ON answers(created_at);
CREATE INDEX IF NOT EXISTS feedback_created ON feedback(created_at);
""",
    # 5: the live index (index/live_index.py, index/terms.py): a log of searchable sentences
    # added and deleted, kept by triggers, and the stored tokens of sentences, of boilerplate
    # and headings, and of article titles/outlets/URLs. Existing rows are tokenized once on
    # open (``index.terms.fill_once``), which needs Python.
    """
CREATE TABLE IF NOT EXISTS index_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    sentence_id INTEGER NOT NULL,
    added INTEGER NOT NULL            -- 1 added, 0 deleted
);
CREATE VIRTUAL TABLE IF NOT EXISTS sentence_terms
    USING fts5(terms, tokenize="ascii tokenchars '_'", detail=none, columnsize=0);
CREATE VIRTUAL TABLE IF NOT EXISTS mention_terms
    USING fts5(terms, tokenize="ascii tokenchars '_'", detail=none, columnsize=0);
CREATE VIRTUAL TABLE IF NOT EXISTS article_terms
    USING fts5(terms, tokenize="ascii tokenchars '_'", detail=none, columnsize=0);
CREATE TRIGGER IF NOT EXISTS sentence_indexed AFTER INSERT ON sentences
WHEN NEW.embedding IS NOT NULL BEGIN
    INSERT INTO index_log(sentence_id, added) VALUES (NEW.id, 1);
END;
CREATE TRIGGER IF NOT EXISTS sentence_reembedded AFTER UPDATE OF embedding ON sentences BEGIN
    INSERT INTO index_log(sentence_id, added) SELECT OLD.id, 0 WHERE OLD.embedding IS NOT NULL;
    INSERT INTO index_log(sentence_id, added) SELECT NEW.id, 1 WHERE NEW.embedding IS NOT NULL;
END;
CREATE TRIGGER IF NOT EXISTS sentence_deleted AFTER DELETE ON sentences BEGIN
    INSERT INTO index_log(sentence_id, added) SELECT OLD.id, 0 WHERE OLD.embedding IS NOT NULL;
    DELETE FROM sentence_terms WHERE rowid = OLD.id;
    DELETE FROM mention_terms WHERE rowid = OLD.id;
END;
CREATE TRIGGER IF NOT EXISTS article_deleted AFTER DELETE ON articles BEGIN
    DELETE FROM article_terms WHERE rowid = OLD.id;
END;
""",
    # 6: question-independent features of each searchable unit (index/unit_features.py),
    # written with the unit at ingest and read with a query's candidates; rows stored before
    # are filled once on open (``index.terms.fill_once``). NULL: not computed.
    """
ALTER TABLE sentences ADD COLUMN unit_terms TEXT;    -- its tokens, as in sentence_terms
ALTER TABLE sentences ADD COLUMN unit_flags INTEGER;
ALTER TABLE sentences ADD COLUMN unit_names TEXT;
""",
    # 7: what an operator deleted (``talksbot delete``): each deleted article's URLs, source
    # keys, content hash and sentence hashes under one deletion, so that feed polling never
    # stores it again (another feed listing it, a redirect to it, a copy of its text); an
    # explicit ingest matching a deletion stores the article again and lifts all of it.
    """
CREATE TABLE IF NOT EXISTS deleted_keys (
    key TEXT NOT NULL,        -- a URL or source key, 'content:' or 'sentence:' and a hash
    deletion TEXT NOT NULL,   -- one per deleted article
    deleted_at REAL NOT NULL,
    PRIMARY KEY (key, deletion)
);
CREATE INDEX IF NOT EXISTS deleted_keys_deletion ON deleted_keys(deletion);
""",
]


def _statements(script: str) -> list[str]:
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    return statements


_ADD_COLUMN = re.compile(r"ALTER\s+TABLE\s+(\w+)\s+ADD\s+COLUMN\s+(\w+)", re.I)


def _apply(db: sqlite3.Connection, statement: str) -> None:
    """One statement; adding a column the table already has is a no-op (SQLite has no
    ``ADD COLUMN IF NOT EXISTS``), so every migration can be replayed like the ``IF NOT EXISTS``
    ones."""
    match = _ADD_COLUMN.match(statement)
    if match:
        columns = {r[1] for r in db.execute(f"PRAGMA table_info({match[1]})")}
        if match[2] in columns:
            return
    db.execute(statement)


WRITE_WAIT_SECONDS = 30.0  # longest a write waits for the lock before giving up
# A bulk ingest lets go of the write lock this long after each commit: SQLite's own busy
# handler sleeps up to 100 ms between tries, so a waiting writer (the bot logging an answer,
# queueing pushes) saw a free lock only by luck and waited seconds; waiters try every ms.
WRITE_HANDOVER_SECONDS = 0.002


def begin_immediate(db: sqlite3.Connection, wait: float = WRITE_WAIT_SECONDS) -> None:
    """``BEGIN IMMEDIATE``, trying for the write lock every millisecond (not SQLite's
    backing-off sleeps), so a writer gets in within a bulk ingest's next handover."""
    deadline = time.monotonic() + wait
    db.execute("PRAGMA busy_timeout = 0")
    try:
        while True:
            try:
                db.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.001)
    finally:
        db.execute(f"PRAGMA busy_timeout = {int(WRITE_WAIT_SECONDS * 1000)}")


@contextlib.contextmanager
def write(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction (``begin_immediate``), committed on success, else rolled back."""
    with db:
        begin_immediate(db)
        yield db


def migrate(db: sqlite3.Connection) -> int:
    """Apply the migrations this database lacks, all in one transaction taken before the version
    is read (two processes opening one store migrate it once); returns the version now."""
    with write(db):
        version = db.execute("PRAGMA user_version").fetchone()[0]
        for script in MIGRATIONS[version:]:
            for statement in _statements(script):
                _apply(db, statement)
        if version < len(MIGRATIONS):
            db.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
    return max(version, len(MIGRATIONS))
