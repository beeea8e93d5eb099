"""The feeds the bot polls and the entries already taken from each."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass


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
        with self.db:
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
        with self.db:
            if feed_id is not None:
                cur = self.db.execute("DELETE FROM feeds WHERE id=?", (feed_id,))
            else:
                cur = self.db.execute("DELETE FROM feeds WHERE url=?", (url,))
        return cur.rowcount > 0

    def seen_entries(self, feed_id: int) -> set[str]:
        return {
            r[0]
            for r in self.db.execute(
                "SELECT entry_key FROM feed_entries WHERE feed_id=?", (feed_id,)
            )
        }

    def mark_seen(self, feed_id: int, entry_key: str) -> None:
        with self.db:
            self.db.execute(
                "INSERT OR IGNORE INTO feed_entries(feed_id, entry_key, seen_at) VALUES (?, ?, ?)",
                (feed_id, entry_key, time.time()),
            )

    def polled(self, feed_id: int, title: str, error: str) -> None:
        with self.db:
            self.db.execute(
                "UPDATE feeds SET title=?, checked_at=?, last_error=? WHERE id=?",
                (title, time.time(), error, feed_id),
            )
