"""One pacer for everything the bot sends: answers, edits, pushes and digests all go through the
Application's one Bot, and this rate limiter spaces them within Telegram's windows.

Telegram refuses (429) more than 30 messages a second overall, more than one a second to a chat
and more than 20 a minute to a group. The pacer holds each message until all three windows have
room, and it counts a message against them from the moment it is handed to the network until one
window-length after its answer came back. The server sees the message somewhere between those
two moments, so the server's window can never hold more than the pacer's: no timing jitter on
either side turns into a 429. Answers (the default) go before pushes (``Priority.PUSH``), and
pushes go evenly spaced and leave part of each second free, so a question during a large
fan-out waits at most for the next free slot. A 429 that comes anyway (another client on the
same token) pauses all sending for its ``retry_after`` and the message is sent again in its
place: nothing is lost, and nothing overtakes it in its chat.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import datetime as dt
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

log = logging.getLogger("talksbot.pacer")

#: Methods that put a message in a chat (or change one): what Telegram's windows count.
PACED_PREFIXES = ("send", "edit", "copyMessage", "forwardMessage")
UNPACED = frozenset({"sendChatAction"})


class Priority(IntEnum):
    """``rate_limit_args`` for a send. Answers are the default (pass nothing); never 0, which
    PTB drops."""

    ANSWER = 1
    PUSH = 2


class NotSent(Exception):
    """A send whose ``on_turn`` said no when its turn came: nothing went to Telegram."""


@dataclass
class Send:
    """``rate_limit_args`` for a send that must know its turn: ``on_turn`` runs when the windows
    have room, right before the request (False cancels it: ``NotSent``), and ``dispatched``
    says whether it went on the wire, so a send cancelled before that was certainly not
    delivered."""

    priority: int = Priority.PUSH
    on_turn: Callable[[], Awaitable[bool]] | None = None
    dispatched: bool = False


@dataclass(frozen=True)
class Limits:
    """Telegram's windows, and how much of the overall one pushes may take."""

    per_second: int = 30
    chat_gap: float = 1.0  # seconds between two messages to one chat
    group_per_minute: int = 20
    group_window: float = 60.0  # seconds (a minute at Telegram; shorter in tests)
    push_per_second: int = 27  # the rest of each second stays free for answers
    max_retry_after: float = 60.0  # a longer 429 is raised to the caller, not waited out
    max_retries: int = 8


def _seconds(value: object) -> float:
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


def chat_key(data: dict[str, Any]) -> tuple[int | str | None, bool]:
    """The chat a request writes to and whether it is a group (negative id or ``@name``)."""
    chat = data.get("chat_id")
    if chat is None:
        return None, False
    with contextlib.suppress(TypeError, ValueError):
        chat = int(chat)
    return chat, isinstance(chat, str) or chat < 0


@dataclass(eq=False)
class _Ticket:
    priority: int
    seq: int
    chat: int | str | None
    group: bool
    ready: asyncio.Future = field(repr=False)

    @property
    def order(self) -> tuple[int, int]:
        return self.priority, self.seq


class Pacer(BaseRateLimiter[int | Send]):
    """A PTB rate limiter that throttles every message to stay inside Telegram's windows."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._seq = itertools.count()
        self._waiting: list[_Ticket] = []  # by (priority, seq)
        self._recent: collections.deque[float] = collections.deque()  # done, last second
        self._in_flight = 0
        self._busy: set[int | str] = set()  # chats with a message in flight
        self._chat_free_at: dict[int | str, float] = {}
        self._group_recent: dict[int | str, collections.deque[float]] = {}
        self._paused_until = 0.0
        self._next_push_at = 0.0  # pushes go evenly spaced, never in bursts
        self._timer: asyncio.TimerHandle | None = None
        self.retries = 0  # 429s waited out (for logs and tests)

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        if self._timer:
            self._timer.cancel()

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict | list[dict]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | Send | None,
    ) -> bool | dict | list[dict]:
        if endpoint in UNPACED or not endpoint.startswith(PACED_PREFIXES):
            return await self._unpaced(callback, args, kwargs)
        chat, group = chat_key(data)
        send = rate_limit_args if isinstance(rate_limit_args, Send) else None
        priority = int((send.priority if send else rate_limit_args) or Priority.ANSWER)
        seq = next(self._seq)  # kept across retries: a message sent again keeps its place
        attempts = 0
        while True:
            ticket = _Ticket(priority, seq, chat, group, asyncio.get_running_loop().create_future())
            bisect.insort(self._waiting, ticket, key=lambda t: t.order)
            self._pump()
            try:
                await ticket.ready
            except asyncio.CancelledError:
                if ticket in self._waiting:
                    self._waiting.remove(ticket)
                elif ticket.ready.done() and not ticket.ready.cancelled():
                    self._finish(ticket, counted=False)
                raise
            if send and send.on_turn:
                try:
                    go = await send.on_turn()
                except BaseException:
                    self._finish(ticket, counted=False)
                    raise
                if not go:
                    self._finish(ticket, counted=False)
                    raise NotSent(endpoint)
            if send:
                send.dispatched = True
            try:
                result = await callback(*args, **kwargs)
            except RetryAfter as exc:
                if send:
                    send.dispatched = False  # refused: certainly not delivered
                self._finish(ticket, counted=False, pump=False)
                attempts += 1
                wait = _seconds(exc.retry_after)
                if wait > self.limits.max_retry_after or attempts > self.limits.max_retries:
                    self._pump()
                    raise
                self.retries += 1
                self._paused_until = max(self._paused_until, time.monotonic() + wait)
                log.warning(
                    "Telegram asked to wait %.0f s (%s); all sending paused", wait, endpoint
                )
                continue  # back in the queue in its old place, before anything queued later
            except BaseException:
                self._finish(ticket, counted=True)  # it may have reached Telegram: count it
                raise
            self._finish(ticket, counted=True)
            return result

    async def _unpaced(self, callback, args, kwargs):  # noqa: ANN001, ANN202
        """Calls no window counts (answerCallbackQuery, getChatMember, ...): 429s waited out."""
        for attempt in itertools.count(1):
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as exc:
                wait = _seconds(exc.retry_after)
                if wait > self.limits.max_retry_after or attempt > self.limits.max_retries:
                    raise
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    # -- the windows ------------------------------------------------------------------------
    def _finish(self, ticket: _Ticket, counted: bool, pump: bool = True) -> None:
        self._in_flight -= 1
        now = time.monotonic()
        if ticket.chat is not None:
            self._busy.discard(ticket.chat)
            if counted:
                self._chat_free_at[ticket.chat] = now + self.limits.chat_gap
                if ticket.group:
                    self._group_recent.setdefault(ticket.chat, collections.deque()).append(now)
        if counted:
            self._recent.append(now)
        if pump:
            self._pump()

    def _group_full(self, chat: int | str, now: float) -> float | None:
        """When the group's minute window frees a slot, or None if it has room."""
        recent = self._group_recent.get(chat)
        if not recent:
            return None
        while recent and recent[0] <= now - self.limits.group_window:
            recent.popleft()
        if not recent:
            del self._group_recent[chat]
            return None
        if len(recent) < self.limits.group_per_minute:
            return None
        return recent[0] + self.limits.group_window

    def _pump(self) -> None:
        """Release every waiting message that fits now, best first; wake again when the next
        one could."""
        if self._timer:
            self._timer.cancel()
            self._timer = None
        now = time.monotonic()
        wake = float("inf")
        if now < self._paused_until:
            wake = self._paused_until
        else:
            while self._recent and self._recent[0] <= now - 1.0:
                self._recent.popleft()
            if len(self._chat_free_at) > 10_000:
                self._chat_free_at = {c: t for c, t in self._chat_free_at.items() if t > now}
            held: set[int | str] = set()  # chats whose earlier message still waits
            keep: list[_Ticket] = []
            for i, ticket in enumerate(self._waiting):
                if ticket.ready.done():  # cancelled while waiting
                    continue
                cap = (
                    self.limits.per_second
                    if ticket.priority <= Priority.ANSWER
                    else min(self.limits.push_per_second, self.limits.per_second)
                )
                push = ticket.priority > Priority.ANSWER
                full = self._in_flight + len(self._recent) >= cap
                if full or (push and now < self._next_push_at):
                    if full and self._recent:
                        wake = min(wake, self._recent[0] + 1.0)
                    if not full:
                        wake = min(wake, self._next_push_at)
                    keep.extend(t for t in self._waiting[i:] if not t.ready.done())
                    break  # everything after is held back the same way
                chat = ticket.chat
                if chat is not None:
                    if chat in held or chat in self._busy:
                        held.add(chat)
                        keep.append(ticket)
                        continue  # woken when the message in flight is done
                    free_at = self._chat_free_at.get(chat, 0.0)
                    group_at = self._group_full(chat, now) if ticket.group else None
                    if free_at > now or group_at is not None:
                        held.add(chat)
                        keep.append(ticket)
                        wake = min(wake, max(free_at, group_at or 0.0))
                        continue
                    self._busy.add(chat)
                if push:  # spread out, so a window full of pushes frees a slot every 1/rate
                    # (a late timer may catch up a little: the window still caps the second)
                    self._next_push_at = max(now - 0.1, self._next_push_at) + 1.0 / cap
                self._in_flight += 1
                ticket.ready.set_result(None)
            self._waiting = keep
        if self._waiting and wake != float("inf"):
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(max(0.0, wake - now) + 0.001, self._pump)

    @property
    def waiting(self) -> int:
        return len(self._waiting)
