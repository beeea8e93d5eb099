"""What each outcome of a send does to the queue: sent rows are marked, a 429 moves the row to
after the pause, transient errors back off and give up after ``MAX_ATTEMPTS``, a chat that is
gone is retired with its subscriptions."""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum

from index.store import Store
from index.store_pushes import Delivery

MAX_ATTEMPTS = 6
DIGEST_MAX_STORIES = 20  # stories listed in one digest


class Status(Enum):
    SENT = "sent"
    RETRY = "retry"  # Telegram said 429: wait ``retry_after`` seconds
    GONE = "gone"  # the chat blocked the bot or no longer exists
    FAILED = "failed"  # refused for good (bad request, chat migrated)
    TRANSIENT = "transient"  # network or server error: try again later


@dataclass(frozen=True)
class Outcome:
    status: Status
    detail: str = ""
    retry_after: float = 0.0


def record(store: Store, d: Delivery, outcome: Outcome) -> None:
    """Store what happened to one single push."""
    pushes = store.pushes
    if outcome.status is Status.SENT:
        pushes.mark(d.id, "sent")
    elif outcome.status is Status.RETRY:
        pushes.mark(d.id, "pending", "retry after", time.time() + outcome.retry_after)
    elif outcome.status is Status.GONE:
        pushes.retire_chat(d.chat_id, outcome.detail)
    elif outcome.status is Status.FAILED:
        pushes.mark(d.id, "failed", outcome.detail)
    else:
        attempts = d.attempts + 1
        if attempts >= MAX_ATTEMPTS:
            pushes.mark(d.id, "failed", outcome.detail, 0, True)
        else:
            backoff = min(300.0, 2.0**attempts)
            pushes.mark(d.id, "pending", outcome.detail, time.time() + backoff, True)


def record_digest(store: Store, chat_id: int, rows: list[Delivery], outcome: Outcome) -> None:
    """Store what happened to one digest: sent marks its stories; a gone chat is retired; any
    other outcome leaves the stories queued for the next round."""
    if outcome.status is Status.SENT:
        store.pushes.digest_sent(chat_id, [r.id for r in rows])
    elif outcome.status is Status.GONE:
        store.pushes.retire_chat(chat_id, outcome.detail)
