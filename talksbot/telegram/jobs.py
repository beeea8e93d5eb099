"""Background work of the running bot: picking up new stories (from any process), polling
feeds, retention, and the push deliverer's lifecycle."""

from __future__ import annotations

import asyncio
import logging
import time

from telegram import Bot, Update
from telegram.ext import ContextTypes, JobQueue

from index.feeds import list_feeds
from index.feeds import poll_feeds as poll_all_feeds
from talksbot.pushes.deliver import Deliverer
from talksbot.pushes.fanout import fan_out
from talksbot.telegram.services import Services, services

log = logging.getLogger("talksbot.bot")


async def fan_out_now(context: ContextTypes.DEFAULT_TYPE) -> None:
    """New stories by any route (feed poll, /ingest, `talksbot ingest` in another process):
    reload the index and queue pushes for subscribed chats."""
    svc = services(context)
    if await svc.catch_up():
        log.info("index reloaded: %d sentences", svc.answerer.searcher.size)
    max_age = svc.settings.talksbot_push_max_age_hours * 3600
    queued = await svc.run(fan_out, svc.store, max_age)
    if queued and svc.deliverer:
        log.info("queued %d pushes", queued)
        svc.deliverer.wake.set()


async def refresh_index(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Make what any process stored searchable: replays the store's change log (no rebuild)."""
    svc = services(context)
    if await svc.catch_up():
        log.info("index caught up: %d sentences", svc.answerer.searcher.size)


async def poll_feeds(context: ContextTypes.DEFAULT_TYPE) -> None:
    svc = services(context)
    if not await svc.run(list_feeds, svc.store):
        return
    policy = svc.settings.fetch_policy
    report = await svc.ingest(lambda store, ingester: poll_all_feeds(store, ingester, policy))
    for error in report.errors:
        log.warning("feed poll: %s", error)
    if report.added:
        await fan_out_now(context)


def schedule(job_queue: JobQueue | None, svc: Services) -> None:
    if job_queue is None:
        return
    poll = svc.settings.talksbot_index_poll
    job_queue.run_repeating(refresh_index, interval=poll, first=poll)
    interval = svc.settings.talksbot_fanout_interval
    job_queue.run_repeating(fan_out_now, interval=interval, first=interval)
    feeds = svc.settings.talksbot_feed_interval
    job_queue.run_repeating(poll_feeds, interval=feeds, first=min(10.0, feeds))
    job_queue.run_repeating(prune, interval=6 * 3600, first=1.0)


async def start_pushes(svc: Services, bot: Bot) -> None:
    """Set the fan-out watermark (no backlog pushes), then start the deliverer on the
    Application's one Bot: its pacer spaces pushes behind answers."""
    await svc.run(fan_out, svc.store)
    svc.deliverer = Deliverer(
        bot, svc.store, svc.run, lease_seconds=svc.settings.talksbot_push_lease_seconds
    )
    svc.delivery_task = asyncio.create_task(svc.deliverer.run_forever())


async def stop_pushes(svc: Services) -> None:
    """Messages on the wire are finished and recorded, those still waiting go back to the
    queue, and the push lease is released."""
    if svc.deliverer and svc.delivery_task:
        svc.deliverer.stop()
        await svc.delivery_task


async def prune(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Retention: old answers (their buttons then expire), feedback and finished pushes go."""
    svc = services(context)
    before = time.time() - svc.settings.talksbot_retention_days * 86400
    pruned = await svc.run(svc.store.prune, before)
    if any(pruned.values()):
        log.info("pruned %s", pruned)


async def migrated(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A group became a supergroup: its subscriptions and queued pushes follow it."""
    message = update.effective_message
    if message and message.migrate_to_chat_id:
        svc = services(context)
        await svc.run(svc.store.pushes.migrate_chat, message.chat_id, message.migrate_to_chat_id)
