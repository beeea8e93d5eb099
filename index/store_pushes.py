"""Subscriptions, per-chat push settings and the persistent push queue (``deliveries``)."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field

import numpy as np

from index.schema import write
from index.text import BIDI, BLANK, CONTROL, INVISIBLE

WATERMARK = "fanout_article_id"  # meta key: the last article fanned out


def visible(topic: str) -> str:
    """A subscription topic as it shows: control, bidirectional and blank characters dropped,
    spacing folded."""
    return " ".join(BLANK.sub("", INVISIBLE.sub("", BIDI.sub("", CONTROL.sub(" ", topic)))).split())


def topic_key(topic: str) -> str:
    """How subscription topics compare: as they show, whatever their case."""
    return visible(topic).casefold()


@dataclass
class Subscription:
    id: int
    chat_id: int
    topic: str  # '' = all new coverage
    vector: np.ndarray | None  # the topic's embedding
    created_at: float
    thread_id: int | None = None  # the forum topic it was made in: pushed there


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
    def subscribe(
        self, chat_id: int, topic: str, vector: np.ndarray | None, thread_id: int | None = None
    ) -> bool:
        """Add (or re-activate) a subscription, pushed to forum topic ``thread_id`` if given;
        False when it was already active (it then moves to that topic)."""
        blob = None if vector is None else np.asarray(vector, np.float32).tobytes()
        with write(self.db):
            rows = self._topic_rows(chat_id, topic)
            active = [r[0] for r in rows if r[1]]  # more than one only if stored before keys
            if active:
                marks = ",".join("?" * len(active))
                self.db.execute(
                    f"UPDATE subscriptions SET thread_id=? WHERE id IN ({marks})",
                    (thread_id, *active),
                )
                return False
            row = rows[0] if rows else None
            if row:
                self.db.execute(
                    "UPDATE subscriptions SET active=1, vector=?, created_at=?, thread_id=? "
                    "WHERE id=?",
                    (blob, time.time(), thread_id, row[0]),
                )
            else:
                self.db.execute(
                    "INSERT INTO subscriptions(chat_id, topic, vector, created_at, thread_id) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (chat_id, topic, blob, time.time(), thread_id),
                )
        return True

    def _topic_rows(self, chat_id: int, topic: str) -> list[tuple[int, int]]:
        """(id, active) of the chat's subscriptions to ``topic`` (``topic_key``: rows stored
        before topics were cleaned and compared so are found too)."""
        key = topic_key(topic)
        return [
            (r[0], r[1])
            for r in self.db.execute(
                "SELECT id, active, topic FROM subscriptions WHERE chat_id=?", (chat_id,)
            )
            if topic_key(r[2]) == key
        ]

    def leave_thread(self, chat_id: int, thread_id: int) -> int:
        """The chat's subscriptions made in forum topic ``thread_id`` (deleted or closed since)
        are pushed to its general topic from now on; how many."""
        with write(self.db):
            return self.db.execute(
                "UPDATE subscriptions SET thread_id=NULL WHERE chat_id=? AND thread_id=?",
                (chat_id, thread_id),
            ).rowcount

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
        """Retire the chat's subscriptions: one topic, one id, or (neither) all; the stories
        they queued and not yet sent are cancelled. Returns how many subscriptions."""
        with write(self.db):
            if sub_id is None and topic is not None:
                ids = [i for i, active in self._topic_rows(chat_id, topic) if active]
            else:
                where, args = "chat_id=? AND active=1", [chat_id]
                if sub_id is not None:
                    where, args = where + " AND id=?", [*args, sub_id]
                ids = [
                    r[0]
                    for r in self.db.execute(f"SELECT id FROM subscriptions WHERE {where}", args)
                ]
            marks = ",".join("?" * len(ids))
            self.db.execute(
                "UPDATE deliveries SET status='cancelled', error='unsubscribed' WHERE chat_id=? "
                f"AND status IN ('pending', 'digest', 'claimed') AND subscription_id IN ({marks})",
                (chat_id, *ids),
            )
            return self.db.execute(
                f"UPDATE subscriptions SET active=0 WHERE id IN ({marks})", ids
            ).rowcount

    def subscription_vector(self, sub_id: int) -> np.ndarray | None:
        row = self.db.execute("SELECT vector FROM subscriptions WHERE id=?", (sub_id,)).fetchone()
        return np.frombuffer(row[0], dtype=np.float32) if row and row[0] is not None else None

    # -- fan-out ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def fan_out_batch(self) -> Iterator[FanOutBatch | None]:
        """The fan-out transaction (taken before anything is read, so two processes never fan
        one story out twice). None when there is nothing new, or on the first call, which only
        sets the watermark: no backlog is pushed."""
        with write(self.db):
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
                    r[5],
                )
                for r in self.db.execute(
                    "SELECT id, chat_id, topic, vector, created_at, thread_id FROM subscriptions "
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
    def claim(
        self,
        holder: str,
        limit: int,
        busy: Collection[int] = (),
        seconds: float = 120.0,
        now: float | None = None,
    ) -> list[Delivery]:
        """Claim for ``holder`` up to ``limit`` due rows: each chat's oldest, none for the chats
        in ``busy`` (a send in progress there). A claim not sent within ``seconds`` lapses."""
        now = time.time() if now is None else now
        busy = list(busy)
        skip = f" AND chat_id NOT IN ({','.join('?' * len(busy))})" if busy else ""
        with write(self.db):
            ids = [
                r[0]
                for r in self.db.execute(
                    "SELECT MIN(id) FROM deliveries WHERE ((status='pending' AND next_at <= ?) "
                    f"OR (status='claimed' AND lease_until <= ?)){skip} "
                    "GROUP BY chat_id ORDER BY MIN(id) LIMIT ?",
                    (now, now, *busy, limit),
                )
            ]
            if not ids:
                return []
            marks = ",".join("?" * len(ids))
            self.db.execute(
                "UPDATE deliveries SET status='claimed', lease_holder=?, lease_until=? "
                f"WHERE id IN ({marks})",
                (holder, now + seconds, *ids),
            )
            rows = self.db.execute(
                "SELECT id, chat_id, article_id, body, attempts FROM deliveries "
                f"WHERE id IN ({marks}) ORDER BY id",
                ids,
            ).fetchall()
        return [_delivery(r) for r in rows]

    def start(self, delivery_id: int, holder: str) -> bool:
        """Right before the send: the row is still this holder's claim (not cancelled, not
        taken over) and becomes ``sending``, never to be claimed again."""
        with write(self.db):
            return (
                self.db.execute(
                    "UPDATE deliveries SET status='sending' WHERE id=? AND status='claimed' "
                    "AND lease_holder=?",
                    (delivery_id, holder),
                ).rowcount
                == 1
            )

    def unstart(self, delivery_id: int, holder: str) -> None:
        """A send stopped before it went on the wire: the row goes back to the queue (if it is
        still this holder's)."""
        with write(self.db):
            self.db.execute(
                "UPDATE deliveries SET status='pending', lease_holder='' WHERE id=? "
                "AND lease_holder=? AND status IN ('claimed', 'sending')",
                (delivery_id, holder),
            )

    def release_claims(self, holder: str) -> int:
        """A clean stop: rows claimed but not sent go back to the queue."""
        with write(self.db):
            return self.db.execute(
                "UPDATE deliveries SET status='pending', lease_holder='' "
                "WHERE status='claimed' AND lease_holder=?",
                (holder,),
            ).rowcount

    def recover(self, holder: str) -> str:
        """On taking the push lease: other holders' claims go back to the queue; their rows on
        the wire (``sending``) may have reached the chat, so they are not sent again."""
        with write(self.db):
            back = self.db.execute(
                "UPDATE deliveries SET status='pending', lease_holder='' "
                "WHERE status='claimed' AND lease_holder != ?",
                (holder,),
            ).rowcount
            lost = self.db.execute(
                "UPDATE deliveries SET status='failed', "
                "error='interrupted while sending: may have been delivered' "
                "WHERE status IN ('sending', 'digest-sending') AND lease_holder != ?",
                (holder,),
            ).rowcount
        return f"{back} claimed rows back in the queue, {lost} interrupted sends not repeated"

    def migrate_chat(self, old: int, new: int) -> None:
        """A group that became a supergroup (``ChatMigrated``): its subscriptions, settings and
        unsent rows move to the new id (the row that met the error is sent again there), and so
        do its answers: their messages move with the history, and their buttons work only in
        the chat their answer is bound to."""
        live = "('pending', 'digest', 'claimed', 'sending', 'digest-sending')"
        with write(self.db):
            self.db.execute(
                "UPDATE OR IGNORE subscriptions SET chat_id=? WHERE chat_id=?", (new, old)
            )
            self.db.execute("UPDATE subscriptions SET active=0 WHERE chat_id=?", (old,))
            self.db.execute(
                "UPDATE OR IGNORE chat_settings SET chat_id=? WHERE chat_id=?", (new, old)
            )
            self.db.execute(
                "UPDATE OR IGNORE deliveries SET chat_id=?, next_at=0, lease_holder='', "
                "status=CASE WHEN status LIKE 'digest%' THEN 'digest' ELSE 'pending' END "
                f"WHERE chat_id=? AND status IN {live}",
                (new, old),
            )
            self.db.execute("UPDATE answers SET chat_id=? WHERE chat_id=?", (new, old))
            self.db.execute(
                "UPDATE deliveries SET status='cancelled', error='chat migrated' "
                f"WHERE chat_id=? AND status IN {live}",
                (old,),
            )

    def prune(self, before: float) -> int:
        """Retention: finished rows (sent, failed, cancelled) older than ``before`` go."""
        with write(self.db):
            return self.db.execute(
                "DELETE FROM deliveries WHERE status IN ('sent', 'failed', 'cancelled') "
                "AND COALESCE(sent_at, created_at) < ?",
                (before,),
            ).rowcount

    def mark(
        self,
        delivery_id: int,
        status: str,
        error: str = "",
        next_at: float = 0,
        attempt: bool = False,
    ) -> None:
        with write(self.db):
            self.db.execute(
                "UPDATE deliveries SET status=?, error=?, next_at=?, attempts=attempts+?, "
                "sent_at=CASE WHEN ?='sent' THEN ? ELSE sent_at END WHERE id=?",
                (status, error, next_at, int(attempt), status, time.time(), delivery_id),
            )

    def retire_chat(self, chat_id: int, reason: str) -> None:
        """A chat that blocked the bot or is gone: its subscriptions end, its queue is dropped."""
        with write(self.db):
            self.db.execute("UPDATE subscriptions SET active=0 WHERE chat_id=?", (chat_id,))
            self.db.execute(
                "UPDATE deliveries SET status='failed', error=? WHERE chat_id=? AND status IN "
                "('pending', 'digest', 'claimed', 'sending', 'digest-sending')",
                (reason, chat_id),
            )

    def counts(self) -> dict[str, int]:
        """Rows per status: pending, digest, claimed, sending, sent, failed, cancelled."""
        return dict(self.db.execute("SELECT status, COUNT(*) FROM deliveries GROUP BY status"))

    # -- digests ----------------------------------------------------------------------------
    def set_digest(self, chat_id: int, minutes: int) -> None:
        """Digest mode for a chat (``minutes`` > 0) or single pushes again (0): queued stories
        then go out one by one. The first digest comes one interval after digests are on."""
        with write(self.db):
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
            "deliveries d WHERE d.chat_id = c.chat_id AND d.status='digest' AND d.next_at <= ?)",
            (now, now),
        ).fetchall()
        out = []
        for (chat_id,) in chats:
            rows = self.db.execute(
                "SELECT id, chat_id, article_id, body, attempts FROM deliveries WHERE chat_id=? "
                "AND status='digest' AND next_at <= ? ORDER BY id LIMIT ?",
                (chat_id, now, limit),
            ).fetchall()
            out.append((chat_id, [_delivery(r) for r in rows]))
        return out

    def digest_start(self, chat_id: int, ids: list[int], holder: str) -> list[int]:
        """Right before a digest message goes: which of its stories still wait (now
        ``digest-sending`` by ``holder``)."""
        marks = ",".join("?" * len(ids))
        with write(self.db):
            self.db.execute(
                "UPDATE deliveries SET status='digest-sending', lease_holder=? "
                f"WHERE chat_id=? AND status='digest' AND id IN ({marks})",
                (holder, chat_id, *ids),
            )
            return [
                r[0]
                for r in self.db.execute(
                    "SELECT id FROM deliveries WHERE status='digest-sending' AND lease_holder=? "
                    f"AND id IN ({marks}) ORDER BY id",
                    (holder, *ids),
                )
            ]

    def digest_release(
        self, ids: list[int], next_at: float = 0.0, error: str = "", attempt: bool = False
    ) -> None:
        """Stories of a digest message that did not go out wait for the next digest, and (after
        a 429 or a server error) until ``next_at``, so a refused digest is not resent at once."""
        marks = ",".join("?" * len(ids))
        with write(self.db):
            self.db.execute(
                "UPDATE deliveries SET status='digest', next_at=?, error=?, "
                f"attempts=attempts+? WHERE status='digest-sending' AND id IN ({marks})",
                (next_at, error, int(attempt), *ids),
            )

    def digest_sent(self, chat_id: int, ids: list[int]) -> None:
        with write(self.db):
            self.db.executemany(
                "UPDATE deliveries SET status='sent', sent_at=? WHERE id=?",
                [(time.time(), i) for i in ids],
            )
            self.db.execute(
                "UPDATE chat_settings SET last_digest_at=? WHERE chat_id=?", (time.time(), chat_id)
            )
