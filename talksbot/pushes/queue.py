"""What each outcome of a send does to the queue: sent rows are marked, a 429 moves the row to
after the pause, transient errors back off and give up after ``MAX_ATTEMPTS``, a chat that is
gone is retired with its subscriptions, a group that became a supergroup takes its
subscriptions and queue to its new id."""

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
    RETRY = "retry"  # a 429 longer than the pacer waits out: wait ``retry_after`` seconds
    GONE = "gone"  # the chat blocked the bot or no longer exists
    MIGRATED = "migrated"  # the group is a supergroup now, ``new_chat_id``
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
    pushes = store.pushes
    if outcome.status is Status.SENT:
        pushes.mark(d.id, "sent")
    elif outcome.status is Status.RETRY:
        pushes.mark(d.id, "pending", "retry after", time.time() + outcome.retry_after)
    elif outcome.status is Status.GONE:
        pushes.retire_chat(d.chat_id, outcome.detail)
    elif outcome.status is Status.MIGRATED:
        pushes.migrate_chat(d.chat_id, outcome.new_chat_id)
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
    """Store what happened to one digest message: sent marks its stories; a gone chat is
    retired, a migrated one moved; one refused for good gives its stories up (as a single push
    would be); after a 429 or a server error they wait (the pause, or a backoff that gives up
    after ``MAX_ATTEMPTS``) before the next digest tries them: never resent at once."""
    ids = [r.id for r in rows]
    pushes = store.pushes
    if outcome.status is Status.SENT:
        pushes.digest_sent(chat_id, ids)
    elif outcome.status is Status.GONE:
        pushes.retire_chat(chat_id, outcome.detail)
    elif outcome.status is Status.MIGRATED:
        pushes.migrate_chat(chat_id, outcome.new_chat_id)
    elif outcome.status is Status.FAILED:
        for i in ids:
            pushes.mark(i, "failed", outcome.detail)
    elif outcome.status is Status.RETRY:
        pushes.digest_release(ids, time.time() + outcome.retry_after, "retry after")
    else:
        attempts = max((r.attempts for r in rows), default=0) + 1
        if attempts >= MAX_ATTEMPTS:
            for i in ids:
                pushes.mark(i, "failed", outcome.detail, 0, True)
        else:
            backoff = min(300.0, 2.0**attempts)
            pushes.digest_release(ids, time.time() + backoff, outcome.detail, True)
