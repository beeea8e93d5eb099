"""Subscriptions and pushes: new stories fanned out to subscribed chats through a queue kept in
the SQLite store, delivered within Telegram's limits.

Fan-out is idempotent (one delivery row per chat and story, a watermark of stories already
fanned out, all in one transaction), and a delivery is marked sent right after Telegram
accepts it, so a restart resumes the queue with nothing lost and nothing sent twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import html
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from enum import Enum

import numpy as np
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, RetryAfter

from index.store import Store
from index.store_leases import PUSHES as PUSH_LEASE
from retrieval.answer import text_fragment_link
from retrieval.topics import TOPIC_MATCH, Story, also_reported
from talksbot.telegram.pacer import NotSent, Send

log = logging.getLogger("talksbot.pushes")

MIN_TOPIC_CHARS, MAX_TOPIC_CHARS = 3, 100
MAX_ATTEMPTS = 6
MAX_AGE = 48 * 3600.0  # seconds: older stories are not pushed
WATERMARK = "fanout_article_id"


class SubscriptionError(Exception):
    """A subscription request that cannot be done; the message is shown as it is."""


# -- subscriptions ---------------------------------------------------------------------------
def normalise_topic(topic: str) -> str:
    """'' (all coverage) or a checked topic; ``SubscriptionError`` with a clear reason."""
    topic = " ".join((topic or "").split())
    if not topic:
        return ""
    if len(topic) < MIN_TOPIC_CHARS:
        raise SubscriptionError(
            f"A topic needs at least {MIN_TOPIC_CHARS} characters, e.g. /subscribe ceasefire terms"
        )
    if len(topic) > MAX_TOPIC_CHARS:
        raise SubscriptionError(
            f"That topic is {len(topic)} characters; please keep it under {MAX_TOPIC_CHARS}."
        )
    return topic


def subscribe(
    store: Store,
    chat_id: int,
    topic: str,
    vector: np.ndarray | None,
    thread_id: int | None = None,
) -> bool:
    """Add (or re-activate) a subscription, pushed to forum topic ``thread_id`` if given;
    False when it was already active (it then moves to that topic)."""
    blob = None if vector is None else np.asarray(vector, np.float32).tobytes()
    with store.db:
        row = store.db.execute(
            "SELECT id, active FROM subscriptions WHERE chat_id=? AND topic=?", (chat_id, topic)
        ).fetchone()
        if row and row[1]:
            store.db.execute("UPDATE subscriptions SET thread_id=? WHERE id=?", (thread_id, row[0]))
            return False
        if row:
            store.db.execute(
                "UPDATE subscriptions SET active=1, vector=?, created_at=?, thread_id=? WHERE id=?",
                (blob, time.time(), thread_id, row[0]),
            )
        else:
            store.db.execute(
                "INSERT INTO subscriptions(chat_id, topic, vector, created_at, thread_id) "
                "VALUES (?, ?, ?, ?, ?)",
                (chat_id, topic, blob, time.time(), thread_id),
            )
    return True


def chat_subscriptions(store: Store, chat_id: int) -> list[tuple[int, str]]:
    return [
        (r[0], r[1])
        for r in store.db.execute(
            "SELECT id, topic FROM subscriptions WHERE chat_id=? AND active=1 ORDER BY id",
            (chat_id,),
        )
    ]


def unsubscribe(
    store: Store, chat_id: int, topic: str | None = None, sub_id: int | None = None
) -> int:
    """Retire the chat's subscriptions: one topic, one id, or (neither) all; their queued
    stories are cancelled. Returns how many subscriptions."""
    where, args = "chat_id=? AND active=1", [chat_id]
    if sub_id is not None:
        where, args = where + " AND id=?", [*args, sub_id]
    elif topic is not None:
        where, args = where + " AND topic=?", [*args, topic]
    with store.db:
        ids = [r[0] for r in store.db.execute(f"SELECT id FROM subscriptions WHERE {where}", args)]
        marks = ",".join("?" * len(ids))
        store.db.execute(
            "UPDATE deliveries SET status='cancelled', error='unsubscribed' WHERE chat_id=? "
            f"AND status IN ('pending', 'digest', 'claimed') AND subscription_id IN ({marks})",
            (chat_id, *ids),
        )
        return store.db.execute(f"UPDATE subscriptions SET active=0 WHERE {where}", args).rowcount


# -- fan-out ---------------------------------------------------------------------------------
def story_time(published: str, added_at: float) -> float:
    """When a story appeared, for the push window: its publication time (a date alone counts as
    the end of that day), never later than when we first saw it; when undated or unreadable,
    when we first saw it."""
    text = (published or "").strip()
    try:
        if len(text) == 10:
            when = dt.datetime.combine(dt.date.fromisoformat(text), dt.time.max, dt.UTC)
        else:
            when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.UTC)
    except ValueError:
        return added_at
    return min(when.timestamp(), added_at)


def fan_out(store: Store, now: float | None = None, max_age: float = MAX_AGE) -> int:
    """Queue one delivery per subscribed chat for each story stored since the last fan-out
    (by any process), if it appeared within ``max_age`` seconds and after the subscription was
    made: a backfill of old articles pushes nothing. The first call only sets the watermark."""
    now = time.time() if now is None else now
    with store.db:
        store.db.execute("BEGIN IMMEDIATE")
        row = store.db.execute("SELECT value FROM meta WHERE key=?", (WATERMARK,)).fetchone()
        latest = store.db.execute("SELECT COALESCE(MAX(id), 0) FROM articles").fetchone()[0]
        if row is None:
            store.db.execute("INSERT INTO meta(key, value) VALUES (?, ?)", (WATERMARK, latest))
            return 0
        mark = int(row[0])
        if latest <= mark:
            return 0
        subs = store.db.execute(
            "SELECT id, chat_id, topic, vector, created_at, thread_id FROM subscriptions "
            "WHERE active=1"
        ).fetchall()
        digest_chats = {
            r[0]
            for r in store.db.execute("SELECT chat_id FROM chat_settings WHERE digest_minutes > 0")
        }
        articles = store.db.execute(
            "SELECT id, url, title, outlet, published, added_at FROM articles WHERE id > ? "
            "ORDER BY id",
            (mark,),
        ).fetchall()
        queued = 0
        for article in articles:
            article_id, url, title, outlet, published, added_at = article
            if story_time(published, added_at) < now - max_age:
                continue  # old news (a backfill, a late feed entry): no push
            also = also_reported(store, article_id)
            story = Story.load(store, article_id)  # read once, scored for every topic
            lead = story.passages(None)[1]
            for sub_id, chat_id, topic, blob, created_at, thread_id in subs:
                if created_at > added_at:
                    continue  # subscribed after the story came in
                passages = lead
                if topic:
                    vector = np.frombuffer(blob, dtype=np.float32)
                    score, passages = story.passages(vector)
                    if score < TOPIC_MATCH:
                        continue
                body = {
                    "title": title,
                    "outlet": outlet,
                    "published": published,
                    "url": url,
                    "passages": [{"id": pid, "text": text} for pid, text in passages],
                    "also": also,
                    "topic": topic,
                    "subscription_id": sub_id,
                    "thread_id": thread_id,
                }
                cur = store.db.execute(
                    "INSERT OR IGNORE INTO deliveries(chat_id, article_id, subscription_id, body, "
                    "created_at, status) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        chat_id,
                        article_id,
                        sub_id,
                        json.dumps(body),
                        now,
                        "digest" if chat_id in digest_chats else "pending",
                    ),
                )
                queued += cur.rowcount
        store.db.execute("UPDATE meta SET value=? WHERE key=?", (latest, WATERMARK))
    return queued


# -- the queue -------------------------------------------------------------------------------
@dataclass
class Delivery:
    id: int
    chat_id: int
    article_id: int
    body: dict
    attempts: int


_COLUMNS = "id, chat_id, article_id, body, attempts"


def _delivery(r: tuple) -> Delivery:
    return Delivery(r[0], r[1], r[2], json.loads(r[3]), r[4])


def claim(
    store: Store,
    holder: str,
    limit: int,
    busy: Collection[int] = (),
    seconds: float = 120.0,
    now: float | None = None,
) -> list[Delivery]:
    """Claim for ``holder`` up to ``limit`` due rows: each chat's oldest, none for the chats in
    ``busy`` (a send in progress there). A claim not sent within ``seconds`` lapses."""
    now = time.time() if now is None else now
    busy = list(busy)
    skip = f" AND chat_id NOT IN ({','.join('?' * len(busy))})" if busy else ""
    with store.db:
        store.db.execute("BEGIN IMMEDIATE")
        ids = [
            r[0]
            for r in store.db.execute(
                "SELECT MIN(id) FROM deliveries WHERE ((status='pending' AND next_at <= ?) "
                f"OR (status='claimed' AND lease_until <= ?)){skip} "
                "GROUP BY chat_id ORDER BY MIN(id) LIMIT ?",
                (now, now, *busy, limit),
            )
        ]
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        store.db.execute(
            f"UPDATE deliveries SET status='claimed', lease_holder=?, lease_until=? "
            f"WHERE id IN ({marks})",
            (holder, now + seconds, *ids),
        )
        rows = store.db.execute(
            f"SELECT {_COLUMNS} FROM deliveries WHERE id IN ({marks}) ORDER BY id", ids
        ).fetchall()
    return [_delivery(r) for r in rows]


def start(store: Store, delivery_id: int, holder: str) -> bool:
    """Just before the send: the row is still this holder's claim (not cancelled, not taken
    over) and becomes ``sending``, never to be claimed again."""
    with store.db:
        return (
            store.db.execute(
                "UPDATE deliveries SET status='sending' WHERE id=? AND status='claimed' "
                "AND lease_holder=?",
                (delivery_id, holder),
            ).rowcount
            == 1
        )


def release_claims(store: Store, holder: str) -> int:
    """A clean stop: rows claimed but not sent go back to the queue."""
    with store.db:
        return store.db.execute(
            "UPDATE deliveries SET status='pending', lease_holder='' "
            "WHERE status='claimed' AND lease_holder=?",
            (holder,),
        ).rowcount


def recover(store: Store, holder: str) -> str:
    """On taking the push lease: other holders' claims go back to the queue; their ``sending``
    rows may have reached the chat, so they are not sent again."""
    with store.db:
        back = store.db.execute(
            "UPDATE deliveries SET status='pending', lease_holder='' "
            "WHERE status='claimed' AND lease_holder != ?",
            (holder,),
        ).rowcount
        lost = store.db.execute(
            "UPDATE deliveries SET status='failed', "
            "error='interrupted while sending: may have been delivered' "
            "WHERE status IN ('sending', 'digest-sending') AND lease_holder != ?",
            (holder,),
        ).rowcount
    return f"{back} claimed rows back in the queue, {lost} interrupted sends not repeated"


def migrate_chat(store: Store, old: int, new: int) -> None:
    """A group that became a supergroup (``ChatMigrated``): its subscriptions, settings and
    unsent rows move to the new id (the row that met the error is sent again there)."""
    live = "('pending', 'digest', 'claimed', 'sending', 'digest-sending')"
    with store.db:
        store.db.execute("UPDATE OR IGNORE subscriptions SET chat_id=? WHERE chat_id=?", (new, old))
        store.db.execute("UPDATE subscriptions SET active=0 WHERE chat_id=?", (old,))
        store.db.execute("UPDATE OR IGNORE chat_settings SET chat_id=? WHERE chat_id=?", (new, old))
        store.db.execute(
            "UPDATE OR IGNORE deliveries SET chat_id=?, next_at=0, lease_holder='', "
            "status=CASE WHEN status LIKE 'digest%' THEN 'digest' ELSE 'pending' END "
            f"WHERE chat_id=? AND status IN {live}",
            (new, old),
        )
        store.db.execute(
            "UPDATE deliveries SET status='cancelled', error='chat migrated' "
            f"WHERE chat_id=? AND status IN {live}",
            (old,),
        )


def mark(
    store: Store,
    delivery_id: int,
    status: str,
    error: str = "",
    next_at: float = 0,
    attempt: bool = False,
) -> None:
    with store.db:
        store.db.execute(
            "UPDATE deliveries SET status=?, error=?, next_at=?, attempts=attempts+?, "
            "sent_at=CASE WHEN ?='sent' THEN ? ELSE sent_at END WHERE id=?",
            (status, error, next_at, int(attempt), status, time.time(), delivery_id),
        )


def retire_chat(store: Store, chat_id: int, reason: str) -> None:
    """A chat that blocked the bot or is gone: its subscriptions end, its queue is dropped."""
    with store.db:
        store.db.execute("UPDATE subscriptions SET active=0 WHERE chat_id=?", (chat_id,))
        store.db.execute(
            "UPDATE deliveries SET status='failed', error=? WHERE chat_id=? "
            "AND status IN ('pending', 'digest', 'claimed', 'sending', 'digest-sending')",
            (reason, chat_id),
        )


def queue_counts(store: Store) -> dict[str, int]:
    return dict(store.db.execute("SELECT status, COUNT(*) FROM deliveries GROUP BY status"))


# -- digests ---------------------------------------------------------------------------------
DIGEST_DEFAULT_MINUTES, DIGEST_MIN_MINUTES, DIGEST_MAX_MINUTES = 60, 5, 1440
DIGEST_MAX_STORIES = 20


def set_digest(store: Store, chat_id: int, minutes: int) -> None:
    """Digest mode for a chat (``minutes`` > 0) or single pushes again (0): queued stories
    then go out one by one."""
    if minutes and not DIGEST_MIN_MINUTES <= minutes <= DIGEST_MAX_MINUTES:
        raise SubscriptionError(
            f"A digest interval is {DIGEST_MIN_MINUTES} to {DIGEST_MAX_MINUTES} minutes."
        )
    with store.db:
        # The first digest comes one interval after digests are turned on.
        store.db.execute(
            "INSERT INTO chat_settings(chat_id, digest_minutes, last_digest_at) VALUES (?, ?, ?) "
            "ON CONFLICT(chat_id) DO UPDATE SET digest_minutes=excluded.digest_minutes, "
            "last_digest_at=excluded.last_digest_at",
            (chat_id, minutes, time.time()),
        )
        if not minutes:
            store.db.execute(
                "UPDATE deliveries SET status='pending' WHERE chat_id=? AND status='digest'",
                (chat_id,),
            )


def digest_minutes(store: Store, chat_id: int) -> int:
    row = store.db.execute(
        "SELECT digest_minutes FROM chat_settings WHERE chat_id=?", (chat_id,)
    ).fetchone()
    return int(row[0]) if row else 0


def digests_due(store: Store, now: float | None = None) -> list[tuple[int, list[Delivery]]]:
    now = time.time() if now is None else now
    chats = store.db.execute(
        "SELECT c.chat_id FROM chat_settings c WHERE c.digest_minutes > 0 "
        "AND c.last_digest_at + c.digest_minutes * 60 <= ? AND EXISTS (SELECT 1 FROM deliveries "
        "d WHERE d.chat_id = c.chat_id AND d.status='digest')",
        (now,),
    ).fetchall()
    out = []
    for (chat_id,) in chats:
        rows = store.db.execute(
            "SELECT id, chat_id, article_id, body, attempts FROM deliveries WHERE chat_id=? "
            "AND status='digest' ORDER BY id LIMIT ?",
            (chat_id, DIGEST_MAX_STORIES),
        ).fetchall()
        out.append((chat_id, [Delivery(r[0], r[1], r[2], json.loads(r[3]), r[4]) for r in rows]))
    return out


def digest_sent(store: Store, chat_id: int, ids: list[int]) -> None:
    with store.db:
        store.db.executemany(
            "UPDATE deliveries SET status='sent', sent_at=? WHERE id=?",
            [(time.time(), i) for i in ids],
        )
        store.db.execute(
            "UPDATE chat_settings SET last_digest_at=? WHERE chat_id=?", (time.time(), chat_id)
        )


def digest_start(store: Store, chat_id: int, ids: list[int], holder: str) -> list[int]:
    """The digest's rows that are still waiting, now being sent by ``holder``."""
    marks = ",".join("?" * len(ids))
    with store.db:
        store.db.execute(
            "UPDATE deliveries SET status='digest-sending', lease_holder=? "
            f"WHERE chat_id=? AND status='digest' AND id IN ({marks})",
            (holder, chat_id, *ids),
        )
        return [
            r[0]
            for r in store.db.execute(
                "SELECT id FROM deliveries WHERE status='digest-sending' AND lease_holder=? "
                f"AND id IN ({marks}) ORDER BY id",
                (holder, *ids),
            )
        ]


def digest_release(store: Store, ids: list[int]) -> None:
    """Stories of a digest message that did not go out wait for the next one."""
    marks = ",".join("?" * len(ids))
    with store.db:
        store.db.execute(
            "UPDATE deliveries SET status='digest' WHERE status='digest-sending' "
            f"AND id IN ({marks})",
            ids,
        )


def _digest_item(d: Delivery) -> str:
    b = d.body
    title = html.escape(b["title"][:150], quote=False)
    link = f'<a href="{html.escape(b["url"])}">{title}</a>' if b["url"] else title
    meta = html.escape(f"{b['outlet'] or 'unknown outlet'} · {b['published'] or 'undated'}")
    return f"• {link}\n  {meta}"


def digest_pages(rows: list[Delivery], limit: int = 4096) -> list[tuple[list[Delivery], str]]:
    """The digest as messages of whole items, each under ``limit``, with the rows each lists."""
    pages: list[tuple[list[Delivery], list[str]]] = []
    size = limit
    for d in rows:
        item = _digest_item(d)
        if size + 1 + len(item) > limit - 60:  # room for the header line
            pages.append(([], []))
            size = 0
        pages[-1][0].append(d)
        pages[-1][1].append(item)
        size += 1 + len(item)
    out = []
    for n, (page_rows, items) in enumerate(pages, 1):
        count = f"{len(rows)} new stor{'y' if len(rows) == 1 else 'ies'}"
        part = f" ({n}/{len(pages)})" if len(pages) > 1 else ""
        out.append((page_rows, "\n".join([f"🗞 <b>{count}{part}</b>", *items])))
    return out


def digest_html(rows: list[Delivery]) -> str:
    return digest_pages(rows)[0][1]


# -- the message -----------------------------------------------------------------------------
def push_html(body: dict) -> str:
    def esc(text: str) -> str:
        return html.escape(text, quote=False)

    title = esc(body["title"][:200])
    head = f'<a href="{html.escape(body["url"])}">{title}</a>' if body["url"] else title
    lines = [
        f"🆕 <b>{head}</b>",
        f"{esc(body['outlet'] or 'unknown outlet')} · {esc(body['published'] or 'undated')}",
    ]
    if body.get("also"):
        lines.append("Also reported by " + esc(", ".join(body["also"][:5])))
    if body.get("topic"):
        lines.append(f"Topic: <i>{esc(body['topic'])}</i>")
    for p in body["passages"]:
        quote = esc(p["text"][:400])
        link = text_fragment_link(body["url"], p["text"][:400])
        cite = f' <a href="{html.escape(link)}">source</a>' if link else ""
        lines.append(f"<blockquote>{quote}</blockquote>{cite}")
    return "\n".join(lines)[:4000]


def push_keyboard(article_id: int, subscription_id: int | None) -> InlineKeyboardMarkup:
    row = [InlineKeyboardButton("Ask about this", callback_data=f"about:{article_id}")]
    if subscription_id:
        row.append(InlineKeyboardButton("Unsubscribe", callback_data=f"unsub:{subscription_id}"))
    return InlineKeyboardMarkup([row])


# -- delivery --------------------------------------------------------------------------------
# Exactly once, under faults:
# * Only the holder of the store's ``pushes`` lease sends; it renews the lease while it runs and
#   gives it up when it stops. Another process on the store answers questions only, and takes
#   the lease over once a holder that died (``kill -9``) stops renewing it.
# * A row is claimed (``claimed``, with its holder) before it waits for its turn, and becomes
#   ``sending`` just before the one HTTP call that sends it. Claims another holder left behind go
#   back to the queue; its ``sending`` rows may have reached the chat and are never sent again.
# * Every row is sent and recorded on its own: one failed send, render or database write never
#   stops the others. An outcome that could not be written (e.g. "database is locked") is kept
#   and written again before anything new is claimed; the row stays ``sending`` meanwhile.
# * At most one row per chat is in flight, the oldest first; the one pacer spaces them (one a
#   second per chat, 20 a minute per group) without holding up other chats.
class Status(Enum):
    SENT = "sent"
    RETRY = "retry"  # the pacer gave up on a long 429: wait ``retry_after`` seconds
    GONE = "gone"  # the chat blocked the bot or no longer exists
    MIGRATED = "migrated"  # the group is now a supergroup: ``new_chat_id``
    FAILED = "failed"  # refused for good (bad request)
    TRANSIENT = "transient"  # network or server error: try again later


@dataclass(frozen=True)
class Outcome:
    status: Status
    detail: str = ""
    retry_after: float = 0.0
    new_chat_id: int = 0


def record(store: Store, d: Delivery, outcome: Outcome) -> None:
    """Store what happened to one single push."""
    if outcome.status is Status.SENT:
        mark(store, d.id, "sent")
    elif outcome.status is Status.RETRY:
        mark(store, d.id, "pending", "retry after", time.time() + outcome.retry_after)
    elif outcome.status is Status.GONE:
        retire_chat(store, d.chat_id, outcome.detail)
    elif outcome.status is Status.MIGRATED:
        migrate_chat(store, d.chat_id, outcome.new_chat_id)
    elif outcome.status is Status.FAILED:
        mark(store, d.id, "failed", outcome.detail)
    else:
        attempts = d.attempts + 1
        if attempts >= MAX_ATTEMPTS:
            mark(store, d.id, "failed", outcome.detail, 0, True)
        else:
            backoff = min(300.0, 2.0**attempts)
            mark(store, d.id, "pending", outcome.detail, time.time() + backoff, True)


def record_digest(store: Store, chat_id: int, rows: list[Delivery], outcome: Outcome) -> None:
    """One digest message: sent marks its stories; a gone chat is retired, a migrated one
    moved; otherwise its stories wait for the next digest."""
    ids = [r.id for r in rows]
    if outcome.status is Status.SENT:
        digest_sent(store, chat_id, ids)
    elif outcome.status is Status.GONE:
        retire_chat(store, chat_id, outcome.detail)
    elif outcome.status is Status.MIGRATED:
        migrate_chat(store, chat_id, outcome.new_chat_id)
    else:
        digest_release(store, ids)


def _seconds(value: object) -> float:
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


def process_id() -> str:
    """Who holds a lease: host, pid (operators and tests find the process by it), a nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


CLAIM_SECONDS = 120.0  # a claimed row may wait this long for its turn (group windows)
STOP_GRACE = 5.0  # seconds a clean stop waits for sends in progress


class Deliverer:
    """Sends due pushes and digests, through the Application's one (paced) Bot, while this
    process holds the store's push lease."""

    def __init__(
        self,
        bot: Bot,
        store: Store,
        run: Callable[..., Awaitable],
        lease_seconds: float = 15.0,
        concurrency: int = 64,
        holder: str | None = None,
    ) -> None:
        self.bot, self.store, self.run = bot, store, run
        self.lease_seconds, self.concurrency = lease_seconds, concurrency
        self.holder = holder or process_id()
        self.holding = False
        self.wake = asyncio.Event()
        self._renewed_at = 0.0
        self._tasks: dict[int, asyncio.Task] = {}  # chat -> its send in progress
        self._sends: dict[asyncio.Task, Send] = {}  # whether each has gone on the wire
        self._unrecorded: list[Callable[[], object]] = []  # writes to try again
        self._stopping = False

    def stop(self) -> None:
        self._stopping = True
        self.wake.set()

    # -- the loop ---------------------------------------------------------------------------
    async def run_forever(self) -> None:
        try:
            while not self._stopping:
                try:
                    await self._keep_lease()
                    if self.holding:
                        await self._write_unrecorded()
                        await self._start_sends()
                except Exception:  # the loop must outlive any one failure
                    log.exception("delivery round failed")
                await self._wait()
        finally:
            await self._wind_down()

    async def _wait(self) -> None:
        """Until a send finishes, new rows are queued, or a second passes."""
        if self._stopping:
            return
        self.wake.clear()
        waits = [asyncio.ensure_future(self.wake.wait())]
        waits += [asyncio.ensure_future(asyncio.shield(t)) for t in self._tasks.values()]
        try:
            await asyncio.wait(waits, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def _keep_lease(self) -> None:
        now = time.monotonic()
        if self.holding and now - self._renewed_at < self.lease_seconds / 3:
            return
        had = self.holding
        try:
            self.holding = await self.run(
                self.store.leases.acquire, PUSH_LEASE, self.holder, self.lease_seconds
            )
        except Exception as exc:  # e.g. "database is locked": tried again next round
            log.warning("push lease not renewed: %s", exc)
            if now - self._renewed_at >= self.lease_seconds * 2 / 3:
                self.holding = False  # it may lapse before the next try: stop sending
            return
        self._renewed_at = now
        if self.holding and not had:
            recovered = await self.run(recover, self.store, self.holder)
            log.info("this process sends pushes (%s); %s", self.holder, recovered)
        elif had and not self.holding:
            log.warning("push lease taken over by another process: this one stops pushing")

    async def _write_unrecorded(self) -> None:
        while self._unrecorded:
            try:
                await self.run(self._unrecorded[0])
            except Exception as exc:
                log.warning("a push outcome is still not recorded: %s", exc)
                return
            self._unrecorded.pop(0)

    async def deliver_due(self) -> int:
        """Send everything due now and wait until it is recorded (taking the lease if free);
        how many pushes and digests were handled. For one-off runs and tests."""
        await self._keep_lease()
        handled = 0
        while self.holding:
            await self._write_unrecorded()
            started = await self._start_sends()
            if not started:
                break
            handled += started
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        return handled

    async def _start_sends(self) -> int:
        """Claim what fits beside the sends in progress and start it; how many started."""
        self._tasks = {c: t for c, t in self._tasks.items() if not t.done()}
        room = self.concurrency - len(self._tasks)
        if room <= 0 or self._unrecorded:
            return 0
        rows = await self.run(claim, self.store, self.holder, room, set(self._tasks), CLAIM_SECONDS)
        for d in rows:
            self._tasks[d.chat_id] = asyncio.create_task(self._deliver(d))
        started = len(rows)
        if started < room:
            for chat_id, digest in await self.run(digests_due, self.store):
                if chat_id not in self._tasks and started < room:
                    self._tasks[chat_id] = asyncio.create_task(self._digest(chat_id, digest))
                    started += 1
        return started

    async def _wind_down(self) -> None:
        """A clean stop: sends in progress get a moment to finish and be recorded, rows still
        waiting for their turn go back to the queue, and the lease is released."""
        tasks = [t for t in self._tasks.values() if not t.done()]
        for t in tasks:  # still waiting for their turn: not sent, back to the queue
            send = self._sends.get(t)
            if send is None or not send.dispatched:
                t.cancel()
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=STOP_GRACE)
            for t in late:
                t.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._write_unrecorded()
        if self.holding:
            with contextlib.suppress(Exception):
                await self.run(release_claims, self.store, self.holder)
                await self.run(self.store.leases.release, PUSH_LEASE, self.holder)
        self.holding = False

    async def _record(self, write: Callable[[], object]) -> None:
        try:
            await self.run(write)
        except Exception as exc:
            log.warning("push outcome not recorded (%s): kept, and written again", exc)
            self._unrecorded.append(write)

    # -- one push ---------------------------------------------------------------------------
    async def _deliver(self, d: Delivery) -> None:
        try:
            text = push_html(d.body)
            keyboard = push_keyboard(d.article_id, d.body.get("subscription_id"))
        except Exception as exc:  # a row that cannot be rendered fails alone
            why = f"cannot render: {exc}"
            await self._record(lambda: mark(self.store, d.id, "failed", why))
            return

        started = False

        async def on_turn() -> bool:
            """Right before the request (and again before a retry after a 429): still ours
            (not cancelled, not taken over), and from now on ``sending``, never claimed again."""
            nonlocal started
            started = started or (
                self.holding and await self.run(start, self.store, d.id, self.holder)
            )
            return started

        send = Send(on_turn=on_turn)
        try:
            outcome = await self._post(d.chat_id, text, keyboard, d.body.get("thread_id"), send)
        except NotSent:
            return  # the row went elsewhere (unsubscribed, lease lost): nothing was sent
        except asyncio.CancelledError:
            if started and not send.dispatched:  # stopped while waiting out a 429: not sent
                self._unrecorded.append(lambda: mark(self.store, d.id, "pending"))
            raise
        except Exception as exc:  # e.g. the start could not be written: still claimed,
            log.warning("push %d not sent: %s", d.id, exc)  # claimed again when it lapses
            return
        await self._record(lambda: record(self.store, d, outcome))

    async def _post(
        self,
        chat_id: int,
        text: str,
        keyboard: InlineKeyboardMarkup | None,
        thread_id: int | None = None,
        send: Send | None = None,
    ) -> Outcome:
        """Send one message, paced as a push, and say how it went (``NotSent`` and errors of
        ``send.on_turn`` are raised)."""
        send = send or Send()
        task = asyncio.current_task()
        if task:
            self._sends[task] = send
        try:
            await self.bot.send_message(
                chat_id,
                text,
                parse_mode=ParseMode.HTML,
                reply_markup=keyboard,
                message_thread_id=thread_id,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
                rate_limit_args=send,
            )
        except RetryAfter as exc:
            return Outcome(Status.RETRY, retry_after=_seconds(exc.retry_after))
        except ChatMigrated as exc:
            return Outcome(Status.MIGRATED, f"now {exc.new_chat_id}", new_chat_id=exc.new_chat_id)
        except Forbidden as exc:
            return Outcome(Status.GONE, f"forbidden: {exc.message}")
        except BadRequest as exc:
            if "chat not found" in exc.message.lower():
                return Outcome(Status.GONE, "chat not found")
            return Outcome(Status.FAILED, exc.message)
        except NetworkError as exc:  # includes TimedOut and 5xx answers
            return Outcome(Status.TRANSIENT, str(exc))
        finally:
            if task:
                self._sends.pop(task, None)
        return Outcome(Status.SENT)

    # -- one digest -------------------------------------------------------------------------
    async def _digest(self, chat_id: int, rows: list[Delivery]) -> None:
        """A chat's waiting stories in as many messages as they need; each message's stories
        are taken right before it goes and marked as soon as it is accepted, so a failure never
        repeats a story already delivered."""
        for page, text in digest_pages(rows):
            taken: list[int] = []

            async def on_turn(page: list[Delivery] = page, taken: list[int] = taken) -> bool:
                if not taken:
                    ids = [r.id for r in page]
                    taken += await self.run(digest_start, self.store, chat_id, ids, self.holder)
                return self.holding and bool(taken)

            send = Send(on_turn=on_turn)
            try:
                outcome = await self._post(chat_id, text, None, page[0].body.get("thread_id"), send)
            except NotSent:
                continue
            except asyncio.CancelledError:
                if taken and not send.dispatched:
                    self._unrecorded.append(lambda ids=taken: digest_release(self.store, ids))
                raise
            except Exception as exc:
                log.warning("digest for chat %d not sent: %s", chat_id, exc)
                return
            sent = [r for r in page if r.id in taken]
            await self._record(lambda o=outcome, p=sent: record_digest(self.store, chat_id, p, o))
            if outcome.status is not Status.SENT:
                return
