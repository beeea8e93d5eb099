"""talksbot on Telegram: ``python bot.py`` (= ``talksbot serve``; ``-v`` for full tracebacks).

Builds the python-telegram-bot Application: one table of handlers below, one table of commands
(``talksbot.telegram.commands``) that also makes the menus and /help, HTML replies without link
previews as the defaults. Shared services are loaded once in ``post_init`` into ``bot_data``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import sys
from concurrent.futures import ThreadPoolExecutor

from telegram import (
    BotCommandScopeAllGroupChats,
    BotCommandScopeAllPrivateChats,
    LinkPreviewOptions,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    Defaults,
    InlineQueryHandler,
    MessageHandler,
    filters,
)

from retrieval.answer import Answerer
from talksbot import cli
from talksbot.answering import AnswerPool, default_workers
from talksbot.config import Settings
from talksbot.telegram import buttons, commands, jobs, questions, webhook
from talksbot.telegram.callbacks import (
    AskAbout,
    Example,
    MoreContext,
    MoreResults,
    Unsubscribe,
    Vote,
    pattern,
)
from talksbot.telegram.commands import COMMANDS, bot_commands
from talksbot.telegram.fairness import FairUpdates
from talksbot.telegram.pacer import Limits, Pacer
from talksbot.telegram.services import Services
from talksbot.wiring import open_answerer

log = logging.getLogger("talksbot.bot")


async def error_handler(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log every handler error (the token is redacted from all logs) with what it was
    handling, and tell the user briefly."""
    log.error("error while handling %s", _described(update), exc_info=context.error)
    if isinstance(update, Update) and update.effective_message:
        try:
            await update.effective_message.reply_text(
                "Sorry, something went wrong while answering. Please try again."
            )
        except Exception as exc:  # the apology itself may fail (e.g. the API is down)
            log.warning("could not tell the user about the error: %s", exc)


_KINDS = ("message", "edited_message", "callback_query", "inline_query", "channel_post")


def _described(update: object) -> str:
    """An update as an operator can find it again: its kind, id and chat (never its text)."""
    if not isinstance(update, Update):
        return "a job" if update is None else "an update"
    kind = next((k for k in _KINDS if getattr(update, k, None)), "update")
    chat = update.effective_chat
    where = f" in chat {chat.id}" if chat else ""
    return f"{kind.replace('_', ' ')} {update.update_id}{where}"


def build_application(settings: Settings, answerer: Answerer | None = None) -> Application:
    """The Application with every handler registered; the index loads in ``post_init`` (or
    ``answerer`` is used as it is: the seam for tests)."""
    token = settings.telegram_bot_token.get_secret_value() if settings.telegram_bot_token else ""

    async def post_init(app: Application) -> None:
        loaded = answerer or await asyncio.to_thread(open_answerer, settings, True)
        svc = Services(loaded, ThreadPoolExecutor(1, "talksbot-answer"), settings)
        workers = settings.talksbot_answer_processes
        if answerer is None and workers != 0:  # a given answerer (tests) answers in-process
            svc.pool = AnswerPool(settings, workers or default_workers())
            await svc.pool.start()
        app.bot_data["services"] = svc
        await register_commands(app)
        await jobs.start_pushes(svc, app.bot)
        jobs.schedule(app.job_queue, svc)
        if svc.pool is None:  # this process searches: its index loads now, not on a question
            log.info(
                "talksbot ready as @%s with %d indexed sentences",
                app.bot.username,
                loaded.searcher.size,
            )
        else:  # the workers search; this process never loads the index
            log.info(
                "talksbot ready as @%s: %d articles, answered by %d worker processes",
                app.bot.username,
                loaded.searcher.store.article_count(),
                svc.pool.workers,
            )

    async def post_stop(app: Application) -> None:
        svc: Services | None = app.bot_data.get("services")
        if svc:
            await jobs.stop_pushes(svc)

    async def post_shutdown(app: Application) -> None:
        svc: Services | None = app.bot_data.get("services")
        if svc:
            svc.executor.shutdown(wait=True)
            if svc.pool:
                svc.pool.close()

    app = (
        Application.builder()
        .token(token)
        .base_url(settings.telegram_api_base_url)
        .base_file_url(settings.telegram_api_file_url)
        .defaults(
            Defaults(
                parse_mode=ParseMode.HTML,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
                # A question deleted before its answer (groups that clean up commands) is
                # answered all the same: Telegram refuses a reply to it otherwise.
                allow_sending_without_reply=True,
            )
        )
        # One pacer for everything sent: answers, edits and pushes share Telegram's windows.
        .rate_limiter(
            Pacer(
                Limits(
                    per_second=settings.telegram_rate_limit,
                    push_per_second=settings.telegram_push_rate,
                )
            )
        )
        # Updates at once; a person's or a chat's beyond a few in progress are dropped.
        .concurrent_updates(FairUpdates())
        .post_init(post_init)
        .post_stop(post_stop)
        .post_shutdown(post_shutdown)
        .build()
    )
    private = filters.ChatType.PRIVATE
    groups = filters.ChatType.GROUPS
    # New messages only: an edited question or command is not answered (or run) a second time,
    # which in a group would post again for every typo fixed; an edited question that was
    # answered has its answer redone in place (questions.edited_question).
    new = filters.UpdateType.MESSAGE
    text = new & filters.TEXT & ~filters.COMMAND
    edited = filters.UpdateType.EDITED_MESSAGE & filters.TEXT
    app.add_handlers(
        [
            # Commands, in private chats and groups (/ask@botname works too).
            *(CommandHandler(c.name, c.callback, filters=new) for c in COMMANDS),
            # Private chat: any text is a question (not an inline result sent via a bot); a
            # command it does not have, or anything but text, gets a hint.
            MessageHandler(private & text & ~filters.VIA_BOT, questions.private_text),
            MessageHandler(private & new & filters.COMMAND, commands.unknown_command),
            MessageHandler(
                private & new & ~filters.TEXT & ~filters.StatusUpdate.ALL & ~filters.VIA_BOT,
                commands.not_text,
            ),
            # Groups: only messages that mention the bot or reply to it (not a passage sent
            # from inline mode as a reply).
            MessageHandler(
                groups & text & ~filters.VIA_BOT & questions.AddressedToMe(), questions.group_text
            ),
            # An answered question edited: its answer is edited to match.
            MessageHandler(edited & (private | groups), questions.edited_question),
            # A group upgraded to a supergroup: its subscriptions and queue move with it.
            MessageHandler(filters.StatusUpdate.MIGRATE & filters.ChatType.GROUP, jobs.migrated),
            # Buttons, one handler per kind; anything else just stops the spinner.
            CallbackQueryHandler(buttons.example_button, pattern(Example)),
            CallbackQueryHandler(buttons.more_results_button, pattern(MoreResults)),
            CallbackQueryHandler(buttons.more_context_button, pattern(MoreContext)),
            CallbackQueryHandler(buttons.vote_button, pattern(Vote)),
            CallbackQueryHandler(buttons.unsubscribe_button, pattern(Unsubscribe)),
            CallbackQueryHandler(buttons.about_button, pattern(AskAbout)),
            CallbackQueryHandler(buttons.unknown_button),
            # Inline mode: @botname question, in any chat.
            InlineQueryHandler(questions.inline_query),
        ]
    )
    app.add_error_handler(error_handler)
    return app


async def register_commands(app: Application) -> None:
    """The command menus of private and group chats. A menu is a convenience: Telegram failing
    to take it (a 502 at start) is logged and the bot starts all the same."""
    menus = (
        ("private", BotCommandScopeAllPrivateChats()),
        ("group", BotCommandScopeAllGroupChats()),
    )
    for kind, scope in menus:
        try:
            await app.bot.set_my_commands(bot_commands(kind), scope=scope)
        except TelegramError as exc:
            log.warning("could not register the %s command menu: %s", kind, exc)


def webhook_secret(settings: Settings) -> str:
    """The secret Telegram must send with every webhook request: the configured one, or a fresh
    random one registered at start (a webhook is never unsigned). The webhook endpoint
    (``talksbot.telegram.webhook``) answers 403 to any request without it, unread."""
    configured = settings.telegram_webhook_secret
    if configured is None or not configured.get_secret_value():
        log.info("webhook: no TELEGRAM_WEBHOOK_SECRET set; using a random secret for this run")
        return secrets.token_urlsafe(32)
    secret = configured.get_secret_value()
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
        raise cli.CliError(
            "TELEGRAM_WEBHOOK_SECRET must be 1-256 characters of A-Z, a-z, 0-9, _ and -"
        )
    return secret


def run(settings: Settings) -> None:
    """Long polling, or a webhook when ``TELEGRAM_WEBHOOK_URL`` is set. Stops on SIGINT/SIGTERM."""
    app = build_application(settings)
    if settings.telegram_webhook_url:
        secret = webhook_secret(settings)
        asyncio.run(
            webhook.serve(
                app,
                settings.telegram_webhook_listen,
                settings.telegram_webhook_port,
                settings.telegram_webhook_url,
                secret,
                settings.telegram_webhook_max_connections,
            )
        )
    else:
        app.run_polling(
            allowed_updates=Update.ALL_TYPES, poll_interval=settings.telegram_poll_interval
        )


def main() -> int:
    """``python bot.py [-v]``: the CLI's ``serve``, running this module's ``run``."""
    return cli.main([*sys.argv[1:], "serve"], run_bot=run)


if __name__ == "__main__":
    sys.exit(main())
