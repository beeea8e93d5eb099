"""Subscriptions and pushes: new stories fanned out to subscribed chats through a queue kept in
the SQLite store, delivered within Telegram's limits.

Fan-out is idempotent (one delivery row per chat and story, a watermark of stories already
fanned out, all in one transaction), and a delivery is marked sent right after Telegram
accepts it, so a restart resumes the queue with nothing lost and nothing sent twice.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import html
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np
from aiolimiter import AsyncLimiter
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, RetryAfter

from index.store import Store
from retrieval.answer import text_fragment_link
from retrieval.topics import TOPIC_MATCH, Story, also_reported

log = logging.getLogger("talksbot.pushes")

MIN_TOPIC_CHARS, MAX_TOPIC_CHARS = 3, 100
MAX_ATTEMPTS = 6
PER_CHAT_GAP = 1.0  # seconds between two messages to one chat
GROUP_GAP = 3.0  # a group takes 20 messages a minute
WINDOW_SECONDS = 1.0
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


def subscribe(store: Store, chat_id: int, topic: str, vector: np.ndarray | None) -> bool:
    """Add (or re-activate) a subscription; False when it was already active."""
    blob = None if vector is None else np.asarray(vector, np.float32).tobytes()
    with store.db:
        row = store.db.execute(
            "SELECT id, active FROM subscriptions WHERE chat_id=? AND topic=?", (chat_id, topic)
        ).fetchone()
        if row and row[1]:
            return False
        if row:
            store.db.execute(
                "UPDATE subscriptions SET active=1, vector=?, created_at=? WHERE id=?",
                (blob, time.time(), row[0]),
            )
        else:
            store.db.execute(
                "INSERT INTO subscriptions(chat_id, topic, vector, created_at) VALUES (?, ?, ?, ?)",
                (chat_id, topic, blob, time.time()),
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
    """Retire the chat's subscriptions: one topic, one id, or (neither) all. Returns how many."""
    query, args = "UPDATE subscriptions SET active=0 WHERE chat_id=? AND active=1", [chat_id]
    if sub_id is not None:
        query, args = query + " AND id=?", [*args, sub_id]
    elif topic is not None:
        query, args = query + " AND topic=?", [*args, topic]
    with store.db:
        return store.db.execute(query, args).rowcount


# -- fan-out ---------------------------------------------------------------------------------
def fan_out(store: Store, now: float | None = None) -> int:
    """Queue one delivery per subscribed chat for each story stored since the last fan-out
    (by any process). The first call only sets the watermark: no backlog is pushed."""
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
            "SELECT id, chat_id, topic, vector, created_at FROM subscriptions WHERE active=1"
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
            also = also_reported(store, article_id)
            story = Story.load(store, article_id)  # read once, scored for every topic
            lead = story.passages(None)[1]
            for sub_id, chat_id, topic, blob, created_at in subs:
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


def due(store: Store, limit: int = 500, now: float | None = None) -> list[Delivery]:
    now = time.time() if now is None else now
    rows = store.db.execute(
        "SELECT id, chat_id, article_id, body, attempts FROM deliveries "
        "WHERE status='pending' AND next_at <= ? ORDER BY next_at, id LIMIT ?",
        (now, limit),
    ).fetchall()
    return [Delivery(r[0], r[1], r[2], json.loads(r[3]), r[4]) for r in rows]


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
            "AND status IN ('pending', 'digest')",
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


def digest_html(rows: list[Delivery]) -> str:
    lines = [f"🗞 <b>{len(rows)} new stor{'y' if len(rows) == 1 else 'ies'}</b>"]
    for d in rows:
        b = d.body
        title = html.escape(b["title"][:150], quote=False)
        link = f'<a href="{html.escape(b["url"])}">{title}</a>' if b["url"] else title
        meta = html.escape(f"{b['outlet'] or 'unknown outlet'} · {b['published'] or 'undated'}")
        lines.append(f"• {link}\n  {meta}")
    return "\n".join(lines)[:4000]


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
def _seconds(value: object) -> float:
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


class Deliverer:
    """Sends due deliveries: under ``rate`` messages/s overall, one per chat per second (20 a
    minute per group), waits out RetryAfter, retries transient errors with backoff, retires
    chats that are gone. Give it a ``Bot`` without a rate limiter of its own: this class is the
    rate limiter for pushes, and must see each RetryAfter itself."""

    def __init__(
        self,
        bot: Bot,
        store: Store,
        run: Callable[..., Awaitable],
        rate: float = 29.0,
        concurrency: int = 8,
    ) -> None:
        self.bot, self.store, self.run = bot, store, run
        # One message every 1/rate seconds, no bursts: a burst would trip Telegram's per-second
        # window even when the average is under it. And never more than ``rate`` in any second
        # (jitter in the event loop can bunch sends that the limiter spaced out).
        self.limiter = AsyncLimiter(1, 1 / rate)
        self.gate = asyncio.Lock()
        self.window_cap = max(1, int(rate))
        self.window: collections.deque[float] = collections.deque()
        self.concurrency = concurrency
        self.wake = asyncio.Event()
        self.last_sent: dict[int, float] = {}
        self.paused_until = 0.0
        self._stopping = False

    def stop(self) -> None:
        self._stopping = True
        self.wake.set()

    async def run_forever(self) -> None:
        while not self._stopping:
            try:
                sent = await self.deliver_due()
            except Exception:
                log.exception("delivery round failed")
                sent = 0
            if not sent and not self._stopping:
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout=1.0)

    async def deliver_due(self) -> int:
        """Send what is due now (single pushes, then digests); returns how many were handled."""
        batch = await self.run(due, self.store, 200)
        if not batch:
            return await self.send_digests()
        queue: asyncio.Queue[Delivery] = asyncio.Queue()
        for d in batch:
            queue.put_nowait(d)

        async def worker() -> None:
            while not queue.empty() and not self._stopping:
                await self._send(queue.get_nowait())

        await asyncio.gather(*(worker() for _ in range(self.concurrency)))
        return len(batch)

    async def _window_slot(self) -> None:
        while True:
            now = time.monotonic()
            while self.window and now - self.window[0] >= WINDOW_SECONDS:
                self.window.popleft()
            if len(self.window) < self.window_cap:
                self.window.append(now)
                return
            await asyncio.sleep(self.window[0] + WINDOW_SECONDS - now)

    async def _slot(self, chat_id: int) -> None:
        """Wait for this chat's gap, then (one sender at a time) for any 429 pause, the spacing
        and the per-second cap, so nothing that waited goes out in a burst afterwards."""
        gap = GROUP_GAP if chat_id < 0 else PER_CHAT_GAP
        wait = self.last_sent.get(chat_id, 0) + gap - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self.last_sent[chat_id] = time.monotonic()
        async with self.gate:
            while (pause := self.paused_until - time.monotonic()) > 0:
                await asyncio.sleep(pause)
            await self.limiter.acquire()
            await self._window_slot()

    async def _post(self, chat_id: int, text: str, keyboard: InlineKeyboardMarkup | None) -> str:
        """Send one message; returns "sent", "retry:SECONDS", "gone:REASON", "failed:REASON"
        or "transient:REASON"."""
        await self._slot(chat_id)
        try:
            await self.bot.send_message(
                chat_id,
                text,
                parse_mode=ParseMode.HTML,
                reply_markup=keyboard,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
            )
        except RetryAfter as exc:
            pause = _seconds(exc.retry_after)
            self.paused_until = max(self.paused_until, time.monotonic() + pause)
            return f"retry:{pause}"
        except Forbidden as exc:
            return f"gone:forbidden: {exc.message}"
        except ChatMigrated as exc:
            return f"failed:migrated to {exc.new_chat_id}"
        except BadRequest as exc:
            if "chat not found" in exc.message.lower():
                return "gone:chat not found"
            return f"failed:{exc.message}"
        except NetworkError as exc:  # includes TimedOut and 5xx answers
            return f"transient:{exc}"
        return "sent"

    async def _send(self, d: Delivery) -> None:
        outcome = await self._post(
            d.chat_id, push_html(d.body), push_keyboard(d.article_id, d.body.get("subscription_id"))
        )
        kind, _, detail = outcome.partition(":")
        if kind == "sent":
            await self.run(mark, self.store, d.id, "sent")
        elif kind == "retry":
            await self.run(
                mark, self.store, d.id, "pending", "retry after", time.time() + float(detail)
            )
        elif kind == "gone":
            await self.run(retire_chat, self.store, d.chat_id, detail)
        elif kind == "failed":
            await self.run(mark, self.store, d.id, "failed", detail)
        else:
            attempts = d.attempts + 1
            if attempts >= MAX_ATTEMPTS:
                await self.run(mark, self.store, d.id, "failed", detail, 0, True)
            else:
                backoff = min(300.0, 2.0**attempts)
                await self.run(
                    mark, self.store, d.id, "pending", detail, time.time() + backoff, True
                )

    async def send_digests(self) -> int:
        """One message per digest chat whose interval has passed, listing its new stories."""
        ready = await self.run(digests_due, self.store)
        for chat_id, rows in ready:
            outcome = await self._post(chat_id, digest_html(rows), None)
            kind, _, detail = outcome.partition(":")
            if kind == "sent":
                await self.run(digest_sent, self.store, chat_id, [r.id for r in rows])
            elif kind == "gone":
                await self.run(retire_chat, self.store, chat_id, detail)
            # retry / transient / failed: the stories stay queued for the next round
        return len(ready)
