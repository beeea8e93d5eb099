"""Delivery: the one process holding the store's push lease sends what the queue holds through
the Application's one Bot (paced by ``talksbot.telegram.pacer``, as pushes: answers go first)
and records each outcome.

Exactly once, under faults:

* Only the holder of the store's ``pushes`` lease (``index/store_leases.py``) sends; it renews
  the lease while it runs and gives it up when it stops. Another process on the same store
  answers questions only, and takes the lease over once a holder that died (``kill -9``) stops
  renewing it.
* A row is claimed (``claimed``, with its holder) before it waits for its turn, and becomes
  ``sending`` only when the pacer gives it its turn, right before the one HTTP call. Claims
  another holder left behind go back to the queue; its ``sending`` rows may have reached the
  chat and are never sent again.
* Every row is sent and recorded on its own: one failed send, render or database write never
  stops the others. An outcome that could not be written (e.g. "database is locked") is kept and
  written again before anything new is claimed; the row stays ``sending`` meanwhile, so it is
  not sent twice.
* At most one row per chat is in flight, the oldest first; the pacer spaces them (one a second
  per chat, 20 a minute per group) without holding up other chats.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable

from telegram import Bot, InlineKeyboardMarkup, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, RetryAfter

from index.store import Store
from index.store_leases import PUSHES
from index.store_pushes import Delivery
from talksbot.pushes.queue import DIGEST_MAX_STORIES, Outcome, Status, record, record_digest
from talksbot.render import digest_pages, push_html
from talksbot.telegram.keyboards import push_keyboard
from talksbot.telegram.pacer import NotSent, Send

log = logging.getLogger("talksbot.pushes")


def _seconds(value: object) -> float:
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


def process_id() -> str:
    """Who holds a lease: host, pid (operators and tests find the process by it), a nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


CLAIM_SECONDS = 120.0  # a claimed row may wait this long for its turn (group windows)
STOP_GRACE = 5.0  # seconds a clean stop waits for sends in progress
# Telegram's refusals of a forum topic deleted since the subscription, and of one closed (which
# can be reopened: its subscriptions stay).
TOPIC_DELETED = ("message thread not found", "topic_deleted")
TOPIC_CLOSED = "topic_closed"


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
                self.store.leases.acquire, PUSHES, self.holder, self.lease_seconds
            )
        except Exception as exc:  # e.g. "database is locked": tried again next round
            log.warning("push lease not renewed: %s", exc)
            if now - self._renewed_at >= self.lease_seconds * 2 / 3:
                self.holding = False  # it may lapse before the next try: stop sending
            return
        self._renewed_at = now
        if self.holding and not had:
            recovered = await self.run(self.store.pushes.recover, self.holder)
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
        rows = await self.run(
            self.store.pushes.claim, self.holder, room, set(self._tasks), CLAIM_SECONDS
        )
        for d in rows:
            self._tasks[d.chat_id] = asyncio.create_task(self._deliver(d))
        started = len(rows)
        if started < room:
            for chat_id, digest in await self.run(
                self.store.pushes.digests_due, DIGEST_MAX_STORIES
            ):
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
                await self.run(self.store.pushes.release_claims, self.holder)
                await self.run(self.store.leases.release, PUSHES, self.holder)
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
            await self._record(lambda: self.store.pushes.mark(d.id, "failed", why))
            return

        started = False  # this row is 'sending' (set once, kept across 429 retries)

        async def on_turn() -> bool:
            """Right before the request (and again before a retry after a 429): still ours
            (not cancelled, not taken over), and from now on ``sending``, never claimed again."""
            nonlocal started
            started = started or (
                self.holding and await self.run(self.store.pushes.start, d.id, self.holder)
            )
            return started

        send = Send(on_turn=on_turn)
        try:
            outcome = await self._post(d.chat_id, text, keyboard, d.body.get("thread_id"), send)
        except NotSent:
            return  # the row went elsewhere (unsubscribed, lease lost): nothing was sent
        except asyncio.CancelledError:
            if not send.dispatched:  # stopped before it went on the wire: certainly not sent
                self._unrecorded.append(lambda: self.store.pushes.unstart(d.id, self.holder))
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
            reason = exc.message.lower()
            if "chat not found" in reason:
                return Outcome(Status.GONE, "chat not found")
            deleted = any(gone in reason for gone in TOPIC_DELETED)
            if thread_id is not None and (deleted or TOPIC_CLOSED in reason):
                # Not every story failing for good, unseen: the chat's general topic gets this
                # one, and, for a deleted topic, the next ones.
                await self._leave_thread(chat_id, thread_id, exc.message, deleted)
                return await self._post(chat_id, text, keyboard, None, send)
            return Outcome(Status.FAILED, exc.message)
        except NetworkError as exc:  # includes TimedOut and 5xx answers
            return Outcome(Status.TRANSIENT, str(exc))
        finally:
            if task:
                self._sends.pop(task, None)
        return Outcome(Status.SENT)

    async def _leave_thread(self, chat_id: int, thread_id: int, why: str, deleted: bool) -> None:
        """Say (and for a deleted topic, store) that a chat's pushes go to its general topic.
        A failed write is logged, never lets the push be lost: it goes all the same."""
        moved = False
        try:
            if deleted:
                moved = bool(await self.run(self.store.pushes.leave_thread, chat_id, thread_id))
        except Exception as exc:
            log.warning(
                "could not move chat %d's subscriptions out of topic %d: %s",
                chat_id,
                thread_id,
                exc,
            )
        log.info(
            "forum topic %d of chat %d refused a push (%s): sent to its general topic%s",
            thread_id,
            chat_id,
            why,
            ", and its subscriptions moved there" if moved else "",
        )

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
                    taken += await self.run(
                        self.store.pushes.digest_start, chat_id, ids, self.holder
                    )
                return self.holding and bool(taken)

            send = Send(on_turn=on_turn)
            try:
                outcome = await self._post(chat_id, text, None, page[0].body.get("thread_id"), send)
            except NotSent:
                continue
            except asyncio.CancelledError:
                if not send.dispatched:  # not on the wire: its stories wait for the next digest
                    ids = [r.id for r in page]
                    self._unrecorded.append(lambda ids=ids: self.store.pushes.digest_release(ids))
                raise
            except Exception as exc:
                log.warning("digest for chat %d not sent: %s", chat_id, exc)
                return
            sent = [r for r in page if r.id in taken]
            await self._record(lambda o=outcome, p=sent: record_digest(self.store, chat_id, p, o))
            if outcome.status is not Status.SENT:
                return
