"""Fan-out: each story stored since the last run (by any process) becomes one queue row per
subscribed chat it matters to.

Idempotent: one row per chat and story, and a watermark of stories already fanned out, moved in
the same transaction as the rows it queued.
"""

from __future__ import annotations

from index.store import Store
from retrieval.topics import TOPIC_MATCH, Story


def fan_out(store: Store) -> int:
    """Queue pushes for new stories; returns how many rows were queued. The first call only
    sets the watermark: no backlog is pushed."""
    with store.pushes.fan_out_batch() as batch:
        if batch is None:
            return 0
        for article in batch.articles:
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
                }
                batch.queue(sub.chat_id, article.id, sub.id, body)
        return batch.queued
