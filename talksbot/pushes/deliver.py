"""Delivery: sends what the queue holds under Telegram's limits, and records each outcome."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable

from aiolimiter import AsyncLimiter
from telegram import Bot, InlineKeyboardMarkup, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, RetryAfter

from index.store import Store
from index.store_pushes import Delivery
from talksbot.pushes.queue import DIGEST_MAX_STORIES, Outcome, Status, record, record_digest
from talksbot.render import digest_html, push_html
from talksbot.telegram.keyboards import push_keyboard

log = logging.getLogger("talksbot.pushes")

PER_CHAT_GAP = 1.0  # seconds between two messages to one chat
GROUP_GAP = 3.0  # a group takes 20 messages a minute
WINDOW_SECONDS = 1.0


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
            except Exception:  # the worker must outlive any one failure
                log.exception("delivery round failed")
                sent = 0
            if not sent and not self._stopping:
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout=1.0)

    async def deliver_due(self) -> int:
        """Send what is due now (single pushes, then digests); returns how many were handled."""
        batch = await self.run(self.store.pushes.due, 200)
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

    async def _post(
        self, chat_id: int, text: str, keyboard: InlineKeyboardMarkup | None
    ) -> Outcome:
        """Send one message and say how it went."""
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
            return Outcome(Status.RETRY, retry_after=pause)
        except Forbidden as exc:
            return Outcome(Status.GONE, f"forbidden: {exc.message}")
        except ChatMigrated as exc:
            return Outcome(Status.FAILED, f"migrated to {exc.new_chat_id}")
        except BadRequest as exc:
            if "chat not found" in exc.message.lower():
                return Outcome(Status.GONE, "chat not found")
            return Outcome(Status.FAILED, exc.message)
        except NetworkError as exc:  # includes TimedOut and 5xx answers
            return Outcome(Status.TRANSIENT, str(exc))
        return Outcome(Status.SENT)

    async def _send(self, d: Delivery) -> None:
        outcome = await self._post(
            d.chat_id, push_html(d.body), push_keyboard(d.article_id, d.body.get("subscription_id"))
        )
        await self.run(record, self.store, d, outcome)

    async def send_digests(self) -> int:
        """One message per digest chat whose interval has passed, listing its new stories."""
        ready = await self.run(self.store.pushes.digests_due, DIGEST_MAX_STORIES)
        for chat_id, rows in ready:
            outcome = await self._post(chat_id, digest_html(rows), None)
            await self.run(record_digest, self.store, chat_id, rows, outcome)
        return len(ready)
