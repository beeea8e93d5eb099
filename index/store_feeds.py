"""The feeds the bot polls and the entries already taken from each."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from index.schema import write

RETRY_BASE_SECONDS = 300.0  # a failed entry is tried again after 5, 20 and 80 minutes …
MAX_TRIES = 4  # … and given up after this many failures
# An entry its feed no longer lists is forgotten this long after it was first seen: the table
# stays the size of what the feeds list lately, not of everything they ever listed. Should a
# feed list it again, the article is found by its URL and not fetched again.
FORGET_AFTER_SECONDS = 30 * 86_400


@dataclass
class Feed:
    id: int
    url: str
    title: str
    checked_at: float | None
    last_error: str


class FeedTable:
    """The ``feeds`` and ``feed_entries`` tables."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def add(self, url: str, title: str) -> Feed:
        with write(self.db):
            feed_id = self.db.execute(
                "INSERT INTO feeds(url, title, added_at) VALUES (?, ?, ?)",
                (url, title, time.time()),
            ).lastrowid
        return Feed(feed_id, url, title, None, "")

    def all(self) -> list[Feed]:
        rows = self.db.execute(
            "SELECT id, url, title, checked_at, last_error FROM feeds ORDER BY id"
        ).fetchall()
        return [Feed(*r) for r in rows]

    def remove(self, feed_id: int | None = None, url: str | None = None) -> bool:
        with write(self.db):
            if feed_id is not None:
                cur = self.db.execute("DELETE FROM feeds WHERE id=?", (feed_id,))
            else:
                cur = self.db.execute("DELETE FROM feeds WHERE url=?", (url,))
        return cur.rowcount > 0

    def not_due(self, feed_id: int, now: float | None = None) -> set[str]:
        """Entries a poll skips: taken, given up, or failed and waiting for their next try."""
        now = time.time() if now is None else now
        return {
            r[0]
            for r in self.db.execute(
                "SELECT entry_key FROM feed_entries WHERE feed_id=? "
                "AND (state != 'retry' OR next_try_at > ?)",
                (feed_id, now),
            )
        }

    def mark_seen(self, feed_id: int, entry_key: str) -> None:
        with write(self.db):
            self.db.execute(
                "INSERT INTO feed_entries(feed_id, entry_key, seen_at, state) "
                "VALUES (?, ?, ?, 'done') ON CONFLICT(feed_id, entry_key) "
                "DO UPDATE SET state='done', last_error=''",
                (feed_id, entry_key, time.time()),
            )

    def failed(self, feed_id: int, entry_key: str, error: str) -> bool:
        """Record a failed try; True when the entry is now given up (after ``MAX_TRIES``),
        else it is tried again after an exponential backoff."""
        now = time.time()
        with write(self.db):
            row = self.db.execute(
                "SELECT attempts FROM feed_entries WHERE feed_id=? AND entry_key=?",
                (feed_id, entry_key),
            ).fetchone()
            attempts = (row[0] if row else 0) + 1
            state = "gave_up" if attempts >= MAX_TRIES else "retry"
            next_try = now + RETRY_BASE_SECONDS * 4 ** (attempts - 1)
            self.db.execute(
                "INSERT INTO feed_entries(feed_id, entry_key, seen_at, attempts, next_try_at, "
                "state, last_error) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(feed_id, entry_key) DO UPDATE SET attempts=excluded.attempts, "
                "next_try_at=excluded.next_try_at, state=excluded.state, "
                "last_error=excluded.last_error",
                (feed_id, entry_key, now, attempts, next_try, state, error[:500]),
            )
        return state == "gave_up"

    def forget_unlisted(self, feed_id: int, listed: set[str], now: float | None = None) -> int:
        """Forget this feed's entries first seen over ``FORGET_AFTER_SECONDS`` ago that its
        latest listing (``listed``, keys) no longer holds; how many."""
        cutoff = (time.time() if now is None else now) - FORGET_AFTER_SECONDS
        old = [
            (feed_id, key)
            for (key,) in self.db.execute(
                "SELECT entry_key FROM feed_entries WHERE feed_id=? AND seen_at < ?",
                (feed_id, cutoff),
            )
            if key not in listed
        ]
        if old:
            with write(self.db):
                self.db.executemany("DELETE FROM feed_entries WHERE feed_id=? AND entry_key=?", old)
        return len(old)

    def polled(self, feed_id: int, title: str, error: str) -> None:
        with write(self.db):
            self.db.execute(
                "UPDATE feeds SET title=?, checked_at=?, last_error=? WHERE id=?",
                (title, time.time(), error, feed_id),
            )
