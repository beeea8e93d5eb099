"""Subscriptions, per-chat push settings and the persistent push queue (``deliveries``)."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

WATERMARK = "fanout_article_id"  # meta key: the last article fanned out


@dataclass
class Subscription:
    id: int
    chat_id: int
    topic: str  # '' = all new coverage
    vector: np.ndarray | None  # the topic's embedding
    created_at: float


@dataclass
class NewArticle:
    id: int
    url: str
    title: str
    outlet: str
    published: str
    added_at: float


@dataclass
class Delivery:
    id: int
    chat_id: int
    article_id: int
    body: dict
    attempts: int


@dataclass
class FanOutBatch:
    """Articles stored since the last fan-out and who may hear of them; ``queue`` adds rows in
    the same transaction, which moves the watermark when it commits."""

    db: sqlite3.Connection
    subscriptions: list[Subscription]
    digest_chats: set[int]
    articles: list[NewArticle]
    queued: int = field(default=0)

    def queue(self, chat_id: int, article_id: int, subscription_id: int, body: dict) -> None:
        """One row per chat and story (a second is ignored); digest chats' rows wait."""
        status = "digest" if chat_id in self.digest_chats else "pending"
        self.queued += self.db.execute(
            "INSERT OR IGNORE INTO deliveries(chat_id, article_id, subscription_id, body, "
            "created_at, status) VALUES (?, ?, ?, ?, ?, ?)",
            (chat_id, article_id, subscription_id, json.dumps(body), time.time(), status),
        ).rowcount


def _delivery(row: sqlite3.Row | tuple) -> Delivery:
    return Delivery(row[0], row[1], row[2], json.loads(row[3]), row[4])


class PushTables:
    """The ``subscriptions``, ``chat_settings`` and ``deliveries`` tables."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    # -- subscriptions ----------------------------------------------------------------------
    def subscribe(self, chat_id: int, topic: str, vector: np.ndarray | None) -> bool:
        """Add (or re-activate) a subscription; False when it was already active."""
        blob = None if vector is None else np.asarray(vector, np.float32).tobytes()
        with self.db:
            row = self.db.execute(
                "SELECT id, active FROM subscriptions WHERE chat_id=? AND topic=?", (chat_id, topic)
            ).fetchone()
            if row and row[1]:
                return False
            if row:
                self.db.execute(
                    "UPDATE subscriptions SET active=1, vector=?, created_at=? WHERE id=?",
                    (blob, time.time(), row[0]),
                )
            else:
                self.db.execute(
                    "INSERT INTO subscriptions(chat_id, topic, vector, created_at) "
                    "VALUES (?, ?, ?, ?)",
                    (chat_id, topic, blob, time.time()),
                )
        return True

    def chat_subscriptions(self, chat_id: int) -> list[tuple[int, str]]:
        """(id, topic) of the chat's active subscriptions."""
        return [
            (r[0], r[1])
            for r in self.db.execute(
                "SELECT id, topic FROM subscriptions WHERE chat_id=? AND active=1 ORDER BY id",
                (chat_id,),
            )
        ]

    def unsubscribe(self, chat_id: int, topic: str | None = None, sub_id: int | None = None) -> int:
        """Retire the chat's subscriptions: one topic, one id, or (neither) all; how many."""
        query, args = "UPDATE subscriptions SET active=0 WHERE chat_id=? AND active=1", [chat_id]
        if sub_id is not None:
            query, args = query + " AND id=?", [*args, sub_id]
        elif topic is not None:
            query, args = query + " AND topic=?", [*args, topic]
        with self.db:
            return self.db.execute(query, args).rowcount

    def subscription_vector(self, sub_id: int) -> np.ndarray | None:
        row = self.db.execute("SELECT vector FROM subscriptions WHERE id=?", (sub_id,)).fetchone()
        return np.frombuffer(row[0], dtype=np.float32) if row and row[0] is not None else None

    # -- fan-out ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def fan_out_batch(self) -> Iterator[FanOutBatch | None]:
        """The fan-out transaction (taken before anything is read, so two processes never fan
        one story out twice). None when there is nothing new, or on the first call, which only
        sets the watermark: no backlog is pushed."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            row = self.db.execute("SELECT value FROM meta WHERE key=?", (WATERMARK,)).fetchone()
            latest = self.db.execute("SELECT COALESCE(MAX(id), 0) FROM articles").fetchone()[0]
            if row is None:
                self.db.execute("INSERT INTO meta(key, value) VALUES (?, ?)", (WATERMARK, latest))
                yield None
                return
            mark = int(row[0])
            if latest <= mark:
                yield None
                return
            subscriptions = [
                Subscription(
                    r[0],
                    r[1],
                    r[2],
                    None if r[3] is None else np.frombuffer(r[3], dtype=np.float32),
                    r[4],
                )
                for r in self.db.execute(
                    "SELECT id, chat_id, topic, vector, created_at FROM subscriptions "
                    "WHERE active=1"
                )
            ]
            digest_chats = {
                r[0]
                for r in self.db.execute(
                    "SELECT chat_id FROM chat_settings WHERE digest_minutes > 0"
                )
            }
            articles = [
                NewArticle(*r)
                for r in self.db.execute(
                    "SELECT id, url, title, outlet, published, added_at FROM articles "
                    "WHERE id > ? ORDER BY id",
                    (mark,),
                )
            ]
            yield FanOutBatch(self.db, subscriptions, digest_chats, articles)
            self.db.execute("UPDATE meta SET value=? WHERE key=?", (latest, WATERMARK))

    # -- the queue --------------------------------------------------------------------------
    def due(self, limit: int = 500, now: float | None = None) -> list[Delivery]:
        now = time.time() if now is None else now
        rows = self.db.execute(
            "SELECT id, chat_id, article_id, body, attempts FROM deliveries "
            "WHERE status='pending' AND next_at <= ? ORDER BY next_at, id LIMIT ?",
            (now, limit),
        ).fetchall()
        return [_delivery(r) for r in rows]

    def mark(
        self,
        delivery_id: int,
        status: str,
        error: str = "",
        next_at: float = 0,
        attempt: bool = False,
    ) -> None:
        with self.db:
            self.db.execute(
                "UPDATE deliveries SET status=?, error=?, next_at=?, attempts=attempts+?, "
                "sent_at=CASE WHEN ?='sent' THEN ? ELSE sent_at END WHERE id=?",
                (status, error, next_at, int(attempt), status, time.time(), delivery_id),
            )

    def retire_chat(self, chat_id: int, reason: str) -> None:
        """A chat that blocked the bot or is gone: its subscriptions end, its queue is dropped."""
        with self.db:
            self.db.execute("UPDATE subscriptions SET active=0 WHERE chat_id=?", (chat_id,))
            self.db.execute(
                "UPDATE deliveries SET status='failed', error=? WHERE chat_id=? "
                "AND status IN ('pending', 'digest')",
                (reason, chat_id),
            )

    def counts(self) -> dict[str, int]:
        """Rows per status: pending, digest, sent, failed."""
        return dict(self.db.execute("SELECT status, COUNT(*) FROM deliveries GROUP BY status"))

    # -- digests ----------------------------------------------------------------------------
    def set_digest(self, chat_id: int, minutes: int) -> None:
        """Digest mode for a chat (``minutes`` > 0) or single pushes again (0): queued stories
        then go out one by one. The first digest comes one interval after digests are on."""
        with self.db:
            self.db.execute(
                "INSERT INTO chat_settings(chat_id, digest_minutes, last_digest_at) "
                "VALUES (?, ?, ?) ON CONFLICT(chat_id) DO UPDATE SET "
                "digest_minutes=excluded.digest_minutes, last_digest_at=excluded.last_digest_at",
                (chat_id, minutes, time.time()),
            )
            if not minutes:
                self.db.execute(
                    "UPDATE deliveries SET status='pending' WHERE chat_id=? AND status='digest'",
                    (chat_id,),
                )

    def digest_minutes(self, chat_id: int) -> int:
        row = self.db.execute(
            "SELECT digest_minutes FROM chat_settings WHERE chat_id=?", (chat_id,)
        ).fetchone()
        return int(row[0]) if row else 0

    def digests_due(self, limit: int, now: float | None = None) -> list[tuple[int, list[Delivery]]]:
        """Per digest chat whose interval has passed, up to ``limit`` waiting stories."""
        now = time.time() if now is None else now
        chats = self.db.execute(
            "SELECT c.chat_id FROM chat_settings c WHERE c.digest_minutes > 0 "
            "AND c.last_digest_at + c.digest_minutes * 60 <= ? AND EXISTS (SELECT 1 FROM "
            "deliveries d WHERE d.chat_id = c.chat_id AND d.status='digest')",
            (now,),
        ).fetchall()
        out = []
        for (chat_id,) in chats:
            rows = self.db.execute(
                "SELECT id, chat_id, article_id, body, attempts FROM deliveries WHERE chat_id=? "
                "AND status='digest' ORDER BY id LIMIT ?",
                (chat_id, limit),
            ).fetchall()
            out.append((chat_id, [_delivery(r) for r in rows]))
        return out

    def digest_sent(self, chat_id: int, ids: list[int]) -> None:
        with self.db:
            self.db.executemany(
                "UPDATE deliveries SET status='sent', sent_at=? WHERE id=?",
                [(time.time(), i) for i in ids],
            )
            self.db.execute(
                "UPDATE chat_settings SET last_digest_at=? WHERE chat_id=?", (time.time(), chat_id)
            )
