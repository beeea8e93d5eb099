"""The bot administrators' sources (``TELEGRAM_ADMIN_IDS``): /ingest URL and /feeds."""

from __future__ import annotations

from telegram import Update
from telegram.ext import ContextTypes

from index.feeds import add_feed, ingest_url, list_feeds, remove_feed
from index.loaders import IngestError
from talksbot.render import plain
from talksbot.telegram.jobs import fan_out_now, poll_feeds
from talksbot.telegram.services import Services, services


async def _admin_only(update: Update, svc: Services) -> bool:
    """True for the bot's administrators; tells anyone else no."""
    user = update.effective_user
    if user and user.id in svc.settings.telegram_admin_ids:
        return True
    await update.effective_message.reply_text(
        plain("Only the bot's administrators can manage sources.")
    )
    return False


async def ingest_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/ingest URL: fetch a page and store it; subscribers hear of it."""
    svc = services(context)
    message = update.effective_message
    if not await _admin_only(update, svc):
        return
    if not context.args:
        await message.reply_text("Usage: /ingest https://example.org/article")
        return
    url = context.args[0]
    policy = svc.settings.fetch_policy
    report = await svc.ingest(lambda store, ingester: ingest_url(store, ingester, url, policy))
    text = report.summary() + "".join(f"\n• {e}" for e in [*report.errors, *report.notes])
    await message.reply_text(plain(text))
    if report.added:
        await fan_out_now(context)


async def feeds_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/feeds, /feeds add URL, /feeds remove URL|ID."""
    svc = services(context)
    message = update.effective_message
    if not await _admin_only(update, svc):
        return
    args = context.args or []
    try:
        if args[:1] == ["add"] and len(args) == 2:
            policy = svc.settings.fetch_policy
            feed, n = await svc.ingest(lambda store, _ingester: add_feed(store, args[1], policy))
            text = f"Added feed {feed.id}: {feed.title} ({n} entries; polled shortly)."
            if context.job_queue:
                context.job_queue.run_once(poll_feeds, when=1)
        elif args[:1] == ["remove"] and len(args) == 2:
            removed = await svc.run(remove_feed, svc.store, args[1])
            text = f"Removed {args[1]}." if removed else f"No feed {args[1]}."
        elif not args:
            feeds = await svc.run(list_feeds, svc.store)
            text = (
                "\n".join(
                    f"{f.id}. {f.url} — {f.title}"
                    + (f" (error: {f.last_error})" if f.last_error else "")
                    for f in feeds
                )
                or "No feeds. /feeds add URL"
            )
        else:
            text = "Usage: /feeds, /feeds add URL, /feeds remove URL|ID"
    except IngestError as exc:
        text = str(exc)
    await message.reply_text(plain(text))
