"""Fan-out: each story stored since the last run (by any process) becomes one queue row per
subscribed chat it matters to.

Idempotent: one row per chat and story, and a watermark of stories already fanned out, moved in
the same transaction as the rows it queued. No floods: only stories that appeared within
``max_age`` (48 hours by default) and after the subscription was made are pushed, so a backfill
of old articles pushes nothing.
"""

from __future__ import annotations

import datetime as dt
import time

from index.store import Store
from retrieval.topics import TOPIC_MATCH, Story

MAX_AGE = 48 * 3600.0  # seconds: older stories are not pushed


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


def fan_out(store: Store, max_age: float = MAX_AGE, now: float | None = None) -> int:
    """Queue pushes for new stories; returns how many rows were queued. The first call only
    sets the watermark: no backlog is pushed."""
    now = time.time() if now is None else now
    with store.pushes.fan_out_batch() as batch:
        if batch is None:
            return 0
        for article in batch.articles:
            if story_time(article.published, article.added_at) < now - max_age:
                continue  # old news (a backfill, a late feed entry): no push
            also = store.also_reported(article.id)
            story = Story.load(store, article.id)  # read once, scored for every topic
            lead = story.passages(None)[1]
            for sub in batch.subscriptions:
                if sub.created_at > article.added_at:
                    continue  # subscribed after the story came in
                passages = lead
                if sub.topic:
                    score, passages = story.passages(sub.vector)
                    if score < TOPIC_MATCH:
                        continue
                body = {
                    "title": article.title,
                    "outlet": article.outlet,
                    "published": article.published,
                    "url": article.url,
                    "passages": [{"id": pid, "text": text} for pid, text in passages],
                    "also": also,
                    "topic": sub.topic,
                    "subscription_id": sub.id,
                    "thread_id": sub.thread_id,
                }
                batch.queue(sub.chat_id, article.id, sub.id, body)
        return batch.queued
