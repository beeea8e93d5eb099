"""Background work of the running bot: picking up new stories (from any process), polling
feeds, and the push deliverer's lifecycle."""

from __future__ import annotations

import asyncio
import logging

from telegram import Bot
from telegram.ext import ContextTypes, JobQueue
from telegram.request import HTTPXRequest

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
    if await svc.run(svc.answerer.searcher.refresh):
        log.info("index reloaded: %d sentences", svc.answerer.searcher.size)
    queued = await svc.run(fan_out, svc.store)
    if queued and svc.deliverer:
        log.info("queued %d pushes", queued)
        svc.deliverer.wake.set()


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
    interval = svc.settings.talksbot_fanout_interval
    job_queue.run_repeating(fan_out_now, interval=interval, first=interval)
    feeds = svc.settings.talksbot_feed_interval
    job_queue.run_repeating(poll_feeds, interval=feeds, first=min(10.0, feeds))


async def start_pushes(svc: Services, token: str) -> None:
    """Set the fan-out watermark (no backlog pushes), then start the deliverer on a Bot of its
    own: it paces pushes itself and must see every 429."""
    await svc.run(fan_out, svc.store)
    settings = svc.settings
    svc.push_bot = Bot(
        token,
        base_url=settings.telegram_api_base_url,
        base_file_url=settings.telegram_api_file_url,
        request=HTTPXRequest(connection_pool_size=16),
    )
    await svc.push_bot.initialize()
    svc.deliverer = Deliverer(svc.push_bot, svc.store, svc.run, rate=settings.telegram_push_rate)
    svc.delivery_task = asyncio.create_task(svc.deliverer.run_forever())


async def stop_pushes(svc: Services) -> None:
    """The message in flight is finished and marked, then the deliverer stops."""
    if svc.deliverer and svc.delivery_task:
        svc.deliverer.stop()
        await svc.delivery_task
    if svc.push_bot:
        await svc.push_bot.shutdown()
