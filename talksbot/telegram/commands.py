"""The command table, which drives registration, the menus per chat type and /help, and the
informational commands: /start, /help, /sources, /latest."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from telegram import BotCommand, Update
from telegram.constants import ChatType
from telegram.ext import ContextTypes

from talksbot.render import help_html, latest_html, plain, sources_html, welcome_html
from talksbot.telegram import admin, questions, subscriptions
from talksbot.telegram.keyboards import examples_keyboard
from talksbot.telegram.services import services

Handler = Callable[[Update, ContextTypes.DEFAULT_TYPE], Awaitable[None]]


@dataclass(frozen=True)
class Command:
    name: str
    callback: Handler
    private: str = ""  # its line in the private chats' menu ('' = not listed there)
    group: str = ""  # its line in the groups' menu


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """What the bot covers, with example questions as buttons."""
    svc = services(context)
    coverage = await svc.run(svc.answerer.coverage)
    await update.effective_message.reply_text(
        welcome_html(coverage), reply_markup=examples_keyboard()
    )


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """How to ask, and the commands of this kind of chat."""
    private = update.effective_chat is None or update.effective_chat.type == ChatType.PRIVATE
    await update.effective_message.reply_text(
        help_html(context.bot.username or "", menu("private" if private else "group"))
    )


async def sources(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    svc = services(context)
    coverage = await svc.run(svc.answerer.coverage)
    await update.effective_message.reply_text(sources_html(coverage))


async def latest(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    svc = services(context)
    articles = await svc.run(svc.store.latest, 5)
    if not articles:
        await update.effective_message.reply_text("No articles yet.")
        return
    await update.effective_message.reply_text(latest_html(articles))


async def unknown_command(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
    """A private chat's command the bot does not have: said so, not met with silence."""
    message = update.effective_message
    name = message.text.split(maxsplit=1)[0][:40] if message.text else "that command"
    await message.reply_text(plain(f"I don't know {name}. /help lists what I can do."))


async def not_text(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
    """A photo, sticker, voice note or file in a private chat: only text is read."""
    await update.effective_message.reply_text(
        plain("I read text only: send your question as a message.")
    )


COMMANDS: tuple[Command, ...] = (
    Command("start", start, private="What I cover, with example questions"),
    Command("ask", questions.ask_command, group="Ask about the peace talks coverage"),
    Command("help", help_command, private="How to ask", group="How to ask"),
    Command(
        "sources",
        sources,
        private="Outlets, article count and date range",
        group="Outlets, article count and date range",
    ),
    Command("latest", latest, private="Newest articles", group="Newest articles"),
    Command(
        "subscribe",
        subscriptions.subscribe_command,
        private="New coverage as it arrives (optionally on a topic)",
        group="New coverage in this group (admins)",
    ),
    Command(
        "subscriptions",
        subscriptions.subscriptions_command,
        private="Your subscriptions",
        group="This group's subscriptions",
    ),
    Command(
        "unsubscribe",
        subscriptions.unsubscribe_command,
        private="Stop pushes (one topic or all)",
        group="Stop pushes (admins)",
    ),
    Command(
        "digest",
        subscriptions.digest_command,
        private="One message per interval instead of one per story",
        group="Digest mode for this group (admins)",
    ),
    # The bot administrators' commands are in no menu.
    Command("ingest", admin.ingest_command),
    Command("feeds", admin.feeds_command),
)


def menu(scope: str) -> list[tuple[str, str]]:
    """(command, description) for the "private" or "group" menu, in table order."""
    return [(c.name, getattr(c, scope)) for c in COMMANDS if getattr(c, scope)]


def bot_commands(scope: str) -> list[BotCommand]:
    return [BotCommand(name, description) for name, description in menu(scope)]
