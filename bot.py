"""talksbot's Telegram front end. ``python bot.py`` is ``talksbot serve``.

Handlers only parse the update, call the answer pipeline (``retrieval``) and format Telegram
HTML. Shared services live in ``bot_data["services"]``, loaded once in ``post_init``.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from telegram import (
    BotCommand,
    BotCommandScopeAllGroupChats,
    BotCommandScopeAllPrivateChats,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQueryResultArticle,
    InputTextMessageContent,
    LinkPreviewOptions,
    Message,
    MessageEntity,
    Update,
)
from telegram.constants import ChatAction, ChatType, ParseMode
from telegram.error import BadRequest
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    InlineQueryHandler,
    MessageHandler,
    filters,
)

import pushes
from config import Settings
from index.loaders import IngestError
from retrieval.answer import ABSTAINED, ANSWERED, Answer, Answerer, Citation, describe_coverage
from talksbot.telegram.pacer import Limits, Pacer

log = logging.getLogger("talksbot.bot")

MAX_MESSAGE = 4096
PAGE = 3  # citations per message
MAX_PAGES = 10  # "More results" goes this deep
EXAMPLES = (
    "Why was the Budapest summit paused?",
    "Where will the next round of talks be held?",
    "Who would monitor a ceasefire?",
)
PRIVATE_COMMANDS = [
    BotCommand("start", "What I cover, with example questions"),
    BotCommand("help", "How to ask"),
    BotCommand("sources", "Outlets, article count and date range"),
    BotCommand("latest", "Newest articles"),
    BotCommand("subscribe", "New coverage as it arrives (optionally on a topic)"),
    BotCommand("subscriptions", "Your subscriptions"),
    BotCommand("unsubscribe", "Stop pushes (one topic or all)"),
    BotCommand("digest", "One message per interval instead of one per story"),
]
GROUP_COMMANDS = [
    BotCommand("ask", "Ask about the peace talks coverage"),
    BotCommand("sources", "Outlets, article count and date range"),
    BotCommand("latest", "Newest articles"),
    BotCommand("subscribe", "New coverage in this group (admins)"),
    BotCommand("subscriptions", "This group's subscriptions"),
    BotCommand("unsubscribe", "Stop pushes (admins)"),
    BotCommand("digest", "Digest mode for this group (admins)"),
    BotCommand("help", "How to ask"),
]


@dataclass
class Services:
    """What every handler needs; one instance in ``bot_data``."""

    answerer: Answerer
    executor: ThreadPoolExecutor  # one worker: retrieval and SQLite stay on one thread
    settings: Settings
    deliverer: pushes.Deliverer | None = None
    delivery_task: asyncio.Task | None = None

    async def run(self, fn, *args, **kwargs):  # noqa: ANN001, ANN201
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, lambda: fn(*args, **kwargs))


def services(context: ContextTypes.DEFAULT_TYPE) -> Services:
    return context.bot_data["services"]


# -- formatting ------------------------------------------------------------------------------
def esc(text: str) -> str:
    return html.escape(text, quote=False)


def cut(text: str, limit: int) -> str:
    """Plain text shortened at a word boundary (escaping comes after, so no tag is ever cut)."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - 1)].rsplit(" ", 1)[0].rstrip(",;:") + "…"


def citation_html(n: int, c: Citation, quote: str | None = None) -> str:
    source = esc(c.outlet or "unknown outlet")
    if c.link or c.url:
        source = f'<a href="{html.escape(c.link or c.url)}">{source}</a>'
    date = esc(c.published or "undated")
    return (
        f"<b>[{n}]</b> <i>{esc(cut(c.title, 150))}</i>\n"
        f"<blockquote>{esc(quote if quote is not None else c.quote)}</blockquote>\n"
        f"{source} · {date}"
    )


def fit(blocks: list[str], limit: int = MAX_MESSAGE) -> str:
    """Whole blocks joined while they fit; a message is never cut inside a tag."""
    out: list[str] = []
    size = 0
    for block in blocks:
        extra = len(block) + (2 if out else 0)
        if size + extra > limit:
            break
        out.append(block)
        size += extra
    return "\n\n".join(out)


def answer_html(answer: Answer, first_number: int = 1) -> str:
    if answer.status == ANSWERED:
        header = f"🔎 <b>{esc(cut(answer.question, 300))}</b>"
        blocks = [header] + [
            citation_html(first_number + i, c) for i, c in enumerate(answer.citations)
        ]
        return fit(blocks)
    if answer.status == ABSTAINED:
        blocks = [esc(answer.message), esc(describe_coverage(answer.coverage))]
        if answer.nearest:
            lines = ["Nearest articles:"]
            for a in answer.nearest:
                title = esc(cut(a.title, 120))
                link = f'<a href="{html.escape(a.url)}">{title}</a>' if a.url else title
                lines.append(
                    f"• {link} ({esc(a.outlet or 'unknown outlet')}, "
                    f"{esc(a.published or 'undated')})"
                )
            blocks.append("\n".join(lines))
        return fit(blocks)
    return esc(answer.message)


def answer_keyboard(
    answer_id: int, answer: Answer, first_number: int = 1
) -> InlineKeyboardMarkup | None:
    """Context buttons per citation, "More results" (next page), 👍/👎."""
    if answer.status != ANSWERED:
        return None
    context_row = [
        InlineKeyboardButton(
            f"More context [{n}]", callback_data=f"ctx:{answer_id}:{c.sentence_id}"
        )
        for n, c in enumerate(answer.citations, first_number)
    ]
    actions = []
    next_offset = first_number - 1 + PAGE
    if answer.has_more and next_offset < MAX_PAGES * PAGE:
        actions.append(
            InlineKeyboardButton("More results", callback_data=f"more:{answer_id}:{next_offset}")
        )
    actions += [
        InlineKeyboardButton("👍", callback_data=f"fb:{answer_id}:1"),
        InlineKeyboardButton("👎", callback_data=f"fb:{answer_id}:-1"),
    ]
    return InlineKeyboardMarkup([context_row, actions])


NO_PREVIEW = LinkPreviewOptions(is_disabled=True)


# -- answering -------------------------------------------------------------------------------
async def reply_with_answer(
    message: Message, question: str, context: ContextTypes.DEFAULT_TYPE
) -> None:
    """Answer in the chat (and topic) of ``message``, replying to it, with buttons."""
    svc = services(context)
    delay = svc.settings.telegram_typing_after
    if delay <= 0:
        await _typing_later(message, 0)
    typing = asyncio.create_task(_typing_later(message, delay or 3600))
    try:
        answer = await svc.run(svc.answerer.answer, question, k=PAGE)
        answer_id = None
        if answer.status == ANSWERED:
            store = svc.answerer.searcher.store
            answer_id = await svc.run(
                store.save_answer,
                message.chat_id,
                answer.question,
                [c.sentence_id for c in answer.citations],
            )
    finally:
        typing.cancel()
    await message.reply_text(
        answer_html(answer),
        parse_mode=ParseMode.HTML,
        link_preview_options=NO_PREVIEW,
        reply_markup=answer_keyboard(answer_id, answer) if answer_id else None,
        do_quote=message.chat.type != ChatType.PRIVATE,
    )


async def _typing_later(message: Message, delay: float) -> None:
    """Show "typing…" only when an answer takes long enough for it to matter."""
    await asyncio.sleep(delay)
    await message.chat.send_action(
        ChatAction.TYPING,
        message_thread_id=message.message_thread_id if message.is_topic_message else None,
    )


def strip_mention(text: str, username: str) -> str:
    return re.sub(rf"@{re.escape(username)}\b", " ", text, flags=re.I).strip(" ,:\n")


async def private_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """In a private chat every text message is a question."""
    await reply_with_answer(update.effective_message, update.effective_message.text, context)


async def group_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """In a group: a message that @mentions the bot or replies to one of its messages."""
    message = update.effective_message
    question = strip_mention(message.text, context.bot.username)
    if not question:
        await message.reply_text(
            f"Ask me something after the mention, e.g. @{context.bot.username} {EXAMPLES[0]}"
        )
        return
    await reply_with_answer(message, question, context)


async def ask_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    question = " ".join(context.args or []).strip()
    if not question:
        await message.reply_text(f"Usage: /ask your question, e.g. /ask {EXAMPLES[0]}")
        return
    await reply_with_answer(message, question, context)


class _AddressedToMe(filters.MessageFilter):
    """Group messages for the bot: an @mention of it, or a reply to one of its messages."""

    def filter(self, message: Message) -> bool:
        bot = message.get_bot()
        reply = message.reply_to_message
        if reply and reply.from_user and reply.from_user.id == bot.id:
            return True
        for entity, text in message.parse_entities(
            [MessageEntity.MENTION, MessageEntity.TEXT_MENTION]
        ).items():
            if (
                entity.type == MessageEntity.TEXT_MENTION
                and entity.user
                and entity.user.id == bot.id
            ):
                return True
            if bot.username and text.lstrip("@").lower() == bot.username.lower():
                return True
        return False


# -- commands --------------------------------------------------------------------------------
async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    svc = services(context)
    cov = await svc.run(svc.answerer.coverage)
    keyboard = InlineKeyboardMarkup(
        [[InlineKeyboardButton(q, callback_data=f"ex:{i}")] for i, q in enumerate(EXAMPLES)]
    )
    await update.effective_message.reply_text(
        "I answer questions about news coverage of the Russia–Ukraine peace talks with quotes "
        "from the articles, each linked to its source. I never make things up: if the coverage "
        f"does not say, I tell you.\n\n{esc(describe_coverage(cov))}\n\nTry one:",
        parse_mode=ParseMode.HTML,
        reply_markup=keyboard,
    )


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await update.effective_message.reply_text(
        "<b>Ask a question</b> about the peace talks and the war as the news covered them.\n"
        "• Private chat: just write your question.\n"
        "• Groups: <code>/ask your question</code>, mention me, or reply to my message.\n"
        f"• Any chat: type <code>@{esc(context.bot.username or 'bot')} question</code>.\n\n"
        "Each answer quotes the articles, with outlet, date and a link to the passage. "
        "/sources lists what I have read, /latest the newest articles.",
        parse_mode=ParseMode.HTML,
    )


async def sources(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    svc = services(context)
    cov = await svc.run(svc.answerer.coverage)
    names = ", ".join(cov.get("outlet_names", [])[:40])
    more = len(cov.get("outlet_names", [])) - 40
    text = esc(describe_coverage(cov))
    if names:
        text += f"\n\n<b>Outlets:</b> {esc(names)}" + (f" and {more} more" if more > 0 else "")
    await update.effective_message.reply_text(fit([text]), parse_mode=ParseMode.HTML)


async def latest(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    svc = services(context)
    articles = await svc.run(svc.answerer.searcher.store.latest, 5)
    if not articles:
        await update.effective_message.reply_text("No articles yet.")
        return
    lines = ["<b>Newest articles</b>"]
    for a in articles:
        title = esc(cut(a.title, 150))
        link = f'<a href="{html.escape(a.url)}">{title}</a>' if a.url else title
        lines.append(
            f"• {link}\n  {esc(a.outlet or 'unknown outlet')} · {esc(a.published or 'undated')}"
        )
    await update.effective_message.reply_text(
        fit(["\n".join(lines)]), parse_mode=ParseMode.HTML, link_preview_options=NO_PREVIEW
    )


# -- subscriptions and sources ---------------------------------------------------------------
async def _may_manage(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """Anyone in a private chat; in a group, its administrators (anonymous ones included)."""
    chat, user, message = update.effective_chat, update.effective_user, update.effective_message
    if chat.type == ChatType.PRIVATE:
        return True
    if message and message.sender_chat and message.sender_chat.id == chat.id:
        return True
    if user is None:
        return False
    member = await context.bot.get_chat_member(chat.id, user.id)
    return member.status in ("administrator", "creator")


async def subscribe_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    if not await _may_manage(update, context):
        await message.reply_text("Only this group's administrators can change its subscriptions.")
        return
    try:
        topic = pushes.normalise_topic(" ".join(context.args or []))
    except pushes.SubscriptionError as exc:
        await message.reply_text(str(exc))
        return
    svc = services(context)
    vector = (await svc.run(svc.answerer.searcher.embedder.embed, [topic]))[0] if topic else None
    thread = message.message_thread_id if message.is_topic_message else None
    added = await svc.run(
        pushes.subscribe, svc.answerer.searcher.store, message.chat_id, topic, vector, thread
    )
    what = f"new coverage about <i>{esc(topic)}</i>" if topic else "all new coverage"
    text = (
        f"Subscribed: I will post {what} here as it arrives."
        if added
        else f"Already subscribed to {what}."
    )
    await message.reply_text(text + " /subscriptions lists them.", parse_mode=ParseMode.HTML)


async def subscriptions_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    svc = services(context)
    subs = await svc.run(
        pushes.chat_subscriptions, svc.answerer.searcher.store, update.effective_chat.id
    )
    if not subs:
        await update.effective_message.reply_text(
            "No subscriptions. /subscribe for all new coverage, or /subscribe TOPIC."
        )
        return
    lines = ["<b>Subscriptions</b>"] + [
        f"• {esc(topic) if topic else 'all new coverage'}" for _, topic in subs
    ]
    keyboard = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(
                    f"Remove: {cut(topic or 'all new coverage', 40)}",
                    callback_data=f"unsub:{sub_id}",
                )
            ]
            for sub_id, topic in subs
        ]
    )
    await update.effective_message.reply_text(
        "\n".join(lines), parse_mode=ParseMode.HTML, reply_markup=keyboard
    )


async def unsubscribe_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    if not await _may_manage(update, context):
        await message.reply_text("Only this group's administrators can change its subscriptions.")
        return
    topic = " ".join(" ".join(context.args or []).split())
    svc = services(context)
    removed = await svc.run(
        pushes.unsubscribe, svc.answerer.searcher.store, message.chat_id, topic or None
    )
    if removed:
        await message.reply_text(f"Unsubscribed ({removed} subscription{'s' * (removed > 1)}).")
    else:
        await message.reply_text("There was no such subscription. /subscriptions lists them.")


async def digest_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/digest (status), /digest on [MINUTES], /digest off."""
    message = update.effective_message
    svc = services(context)
    store = svc.answerer.searcher.store
    args = [a.lower() for a in context.args or []]
    if not args:
        minutes = await svc.run(pushes.digest_minutes, store, message.chat_id)
        state = f"on, every {minutes} minutes" if minutes else "off (one message per story)"
        await message.reply_text(f"Digest mode is {state}. /digest on [MINUTES] or /digest off.")
        return
    if not await _may_manage(update, context):
        await message.reply_text("Only this group's administrators can change its pushes.")
        return
    if args[0] == "off" and len(args) == 1:
        minutes = 0
    elif args[0] == "on" and (len(args) == 1 or (len(args) == 2 and args[1].isdigit())):
        minutes = int(args[1]) if len(args) == 2 else pushes.DIGEST_DEFAULT_MINUTES
    else:
        await message.reply_text("Usage: /digest on [MINUTES], /digest off")
        return
    try:
        await svc.run(pushes.set_digest, store, message.chat_id, minutes)
    except pushes.SubscriptionError as exc:
        await message.reply_text(str(exc))
        return
    await message.reply_text(
        f"Digest on: one message every {minutes} minutes listing new stories."
        if minutes
        else "Digest off: one message per new story."
    )


async def _admin_only(update: Update, svc: Services) -> bool:
    """True for the bot's administrators (``TELEGRAM_ADMIN_IDS``); tells anyone else no."""
    user = update.effective_user
    if user and user.id in svc.settings.telegram_admin_ids:
        return True
    await update.effective_message.reply_text("Only the bot's administrators can manage sources.")
    return False


async def ingest_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/ingest URL (administrators): fetch a page and store it; subscribers hear of it."""
    from index.feeds import ingest_url

    svc = services(context)
    message = update.effective_message
    if not await _admin_only(update, svc):
        return
    if not context.args:
        await message.reply_text("Usage: /ingest https://example.org/article")
        return
    report = await asyncio.to_thread(
        _with_ingester, svc, lambda store, ing: ingest_url(store, ing, context.args[0])
    )
    text = report.summary() + "".join(f"\n• {e}" for e in report.errors)
    await message.reply_text(cut(text, 4000))
    if report.added:
        await _fan_out(context)


async def feeds_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/feeds, /feeds add URL, /feeds remove URL|ID (administrators)."""
    from index.feeds import add_feed, list_feeds, remove_feed

    svc = services(context)
    message = update.effective_message
    if not await _admin_only(update, svc):
        return
    args = context.args or []
    store = svc.answerer.searcher.store
    try:
        if args[:1] == ["add"] and len(args) == 2:
            feed, n = await asyncio.to_thread(
                _with_ingester, svc, lambda st, _ing: add_feed(st, args[1])
            )
            text = f"Added feed {feed.id}: {feed.title} ({n} entries; polled shortly)."
            if context.job_queue:
                context.job_queue.run_once(_poll_feeds, when=1)
        elif args[:1] == ["remove"] and len(args) == 2:
            removed = await svc.run(remove_feed, store, args[1])
            text = f"Removed {args[1]}." if removed else f"No feed {args[1]}."
        elif not args:
            feeds = await svc.run(list_feeds, store)
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
    await message.reply_text(cut(text, 4000), link_preview_options=NO_PREVIEW)


# -- buttons ---------------------------------------------------------------------------------
async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Callback data: ``ex:N``, ``more:ANSWER:OFFSET``, ``ctx:ANSWER:SENTENCE``, ``fb:ANSWER:±1``.

    Answers are kept in the store, so buttons keep working after a restart."""
    query = update.callback_query
    svc = services(context)
    store = svc.answerer.searcher.store
    kind, _, rest = (query.data or "").partition(":")
    if kind == "ex":
        await query.answer()
        index = int(rest) if rest.isdigit() and int(rest) < len(EXAMPLES) else 0
        await reply_with_answer(query.message, EXAMPLES[index], context)
        return
    if kind == "unsub":
        if not await _may_manage(update, context):
            await query.answer("Only the group's administrators can do that.", show_alert=True)
            return
        removed = await svc.run(
            pushes.unsubscribe,
            store,
            update.effective_chat.id,
            None,
            int(rest) if rest.isdigit() else -1,
        )
        await query.answer("Unsubscribed." if removed else "Already unsubscribed.")
        return
    if kind == "about":
        article = await svc.run(store.article, int(rest)) if rest.isdigit() else None
        await query.answer()
        if article and query.message:
            await reply_with_answer(query.message, article.title, context)
        return
    answer_id_text, _, arg = rest.partition(":")
    saved = (
        await svc.run(store.load_answer, int(answer_id_text)) if answer_id_text.isdigit() else None
    )
    if saved is None:
        await query.answer("That answer is no longer available; please ask again.", show_alert=True)
        return
    question, shown = saved
    answer_id = int(answer_id_text)
    if kind == "fb":
        vote = 1 if arg == "1" else -1
        user = update.effective_user
        await svc.run(
            store.add_feedback,
            query.message.chat_id if query.message else None,
            user.id if user else None,
            question,
            shown,
            vote,
        )
        await query.answer("Thanks for the feedback!")
    elif kind == "more":
        offset = min(int(arg) if arg.isdigit() else PAGE, (MAX_PAGES - 1) * PAGE)
        answer = await svc.run(svc.answerer.answer, question, k=PAGE, offset=offset)
        if not answer.citations:
            await query.answer("No more results.")
            return
        await svc.run(store.update_answer, answer_id, [c.sentence_id for c in answer.citations])
        await query.answer()
        keyboard = answer_keyboard(answer_id, answer, first_number=offset + 1)
        await _edit(query, answer_html(answer, first_number=offset + 1), keyboard)
    elif kind == "ctx":
        sentence_id = int(arg) if arg.isdigit() else -1
        context_sentences = await svc.run(svc.answerer.context, sentence_id, 2, 2)
        if not context_sentences:
            await query.answer("No more context for that passage.")
            return
        # The page of results that holds this citation (the message may show a later page).
        for offset in range(0, MAX_PAGES * PAGE, PAGE):
            answer = await svc.run(svc.answerer.answer, question, k=PAGE, offset=offset)
            if not answer.citations or sentence_id in {c.sentence_id for c in answer.citations}:
                break
        await query.answer()
        blocks = [f"🔎 <b>{esc(cut(question, 300))}</b>"]
        for i, c in enumerate(answer.citations, offset + 1):
            quote = cut(" ".join(context_sentences), 2500) if c.sentence_id == sentence_id else None
            blocks.append(citation_html(i, c, quote))
        await _edit(query, fit(blocks), query.message.reply_markup if query.message else None)
    else:
        await query.answer()


async def _edit(query, text: str, keyboard: InlineKeyboardMarkup | None) -> None:  # noqa: ANN001
    try:
        await query.edit_message_text(
            text, parse_mode=ParseMode.HTML, reply_markup=keyboard, link_preview_options=NO_PREVIEW
        )
    except BadRequest as exc:
        if "not modified" not in str(exc).lower():
            raise


# -- inline mode -----------------------------------------------------------------------------
async def inline_query(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """``@bot question`` anywhere: up to five cited passages to pick from."""
    query = update.inline_query
    question = (query.query or "").strip()
    if len(question) < 3:
        await query.answer([], cache_time=10)
        return
    svc = services(context)
    answer = await svc.run(svc.answerer.answer, question, k=5)
    results = []
    for i, c in enumerate(answer.citations):
        results.append(
            InlineQueryResultArticle(
                id=f"{c.sentence_id}",
                title=cut(c.quote, 100),
                description=f"{c.outlet or 'unknown outlet'} · {c.published or 'undated'} · "
                f"{cut(c.title, 60)}",
                input_message_content=InputTextMessageContent(
                    fit([f"🔎 <b>{esc(cut(question, 300))}</b>", citation_html(i + 1, c)]),
                    parse_mode=ParseMode.HTML,
                    link_preview_options=NO_PREVIEW,
                ),
            )
        )
    if not results:
        results.append(
            InlineQueryResultArticle(
                id="none",
                title="No answer in the coverage",
                description=cut(answer.message, 100),
                input_message_content=InputTextMessageContent(
                    answer_html(answer), parse_mode=ParseMode.HTML
                ),
            )
        )
    await query.answer(results, cache_time=60)


# -- errors ----------------------------------------------------------------------------------
async def error_handler(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log every handler error (the token is redacted from all logs) and tell the user briefly."""
    log.error("error while handling an update", exc_info=context.error)
    if isinstance(update, Update) and update.effective_message:
        try:
            await update.effective_message.reply_text(
                "Sorry, something went wrong while answering. Please try again."
            )
        except Exception:  # noqa: BLE001 - the apology itself may fail (e.g. the API is down)
            log.warning("could not tell the user about the error")


class LogFormatter(logging.Formatter):
    """Never lets the token reach a log line (request URLs and some errors contain it, in the
    message or a traceback), and shows an error as one line unless ``verbose``."""

    def __init__(self, token: str, fmt: str, verbose: bool = False) -> None:
        super().__init__(fmt)
        self.token, self.verbose = token, verbose

    def formatException(self, ei) -> str:  # noqa: ANN001, N802 - logging's API
        if self.verbose:
            return super().formatException(ei)
        return f"  {ei[0].__name__}: {ei[1]}"

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text.replace(self.token, "<token>") if self.token else text


# -- application -----------------------------------------------------------------------------
def build_application(settings: Settings, answerer: Answerer | None = None) -> Application:
    """The Application with every handler registered; the index loads in ``post_init``."""
    token = settings.telegram_bot_token.get_secret_value() if settings.telegram_bot_token else ""

    async def post_init(app: Application) -> None:
        import cli

        loaded = answerer or await asyncio.to_thread(cli.open_answerer, settings, True)
        svc = Services(loaded, ThreadPoolExecutor(1, "talksbot-answer"), settings)
        app.bot_data["services"] = svc
        store = loaded.searcher.store
        await svc.run(pushes.fan_out, store)  # first run sets the watermark: no backlog pushes
        # Pushes go through the one Bot and its pacer, as pushes (answers go first).
        svc.deliverer = pushes.Deliverer(
            app.bot, store, svc.run, lease_seconds=settings.talksbot_push_lease_seconds
        )
        svc.delivery_task = asyncio.create_task(svc.deliverer.run_forever())
        await app.bot.set_my_commands(PRIVATE_COMMANDS, scope=BotCommandScopeAllPrivateChats())
        await app.bot.set_my_commands(GROUP_COMMANDS, scope=BotCommandScopeAllGroupChats())
        if app.job_queue:
            app.job_queue.run_repeating(
                _fan_out,
                interval=settings.talksbot_fanout_interval,
                first=settings.talksbot_fanout_interval,
            )
            app.job_queue.run_repeating(
                _poll_feeds,
                interval=settings.talksbot_feed_interval,
                first=min(10.0, settings.talksbot_feed_interval),
            )
            app.job_queue.run_repeating(_prune, interval=6 * 3600, first=1.0)
        log.info(
            "talksbot ready as @%s with %d indexed sentences",
            app.bot.username,
            loaded.searcher.size,
        )

    async def post_stop(app: Application) -> None:
        svc: Services | None = app.bot_data.get("services")
        if svc and svc.deliverer and svc.delivery_task:
            svc.deliverer.stop()  # the message in flight is finished and marked, then it stops
            await svc.delivery_task

    async def post_shutdown(app: Application) -> None:
        svc: Services | None = app.bot_data.get("services")
        if svc:
            svc.executor.shutdown(wait=True)

    app = (
        Application.builder()
        .token(token)
        .base_url(settings.telegram_api_base_url)
        .base_file_url(settings.telegram_api_file_url)
        # One pacer for everything sent: answers, edits and pushes share Telegram's windows.
        .rate_limiter(
            Pacer(
                Limits(
                    per_second=settings.telegram_rate_limit,
                    push_per_second=settings.telegram_push_rate,
                )
            )
        )
        .concurrent_updates(True)
        .post_init(post_init)
        .post_stop(post_stop)
        .post_shutdown(post_shutdown)
        .build()
    )
    private = filters.ChatType.PRIVATE
    groups = filters.ChatType.GROUPS
    app.add_handlers(
        [
            # Commands, in private chats and groups (/ask@botname works too).
            CommandHandler("start", start),
            CommandHandler("help", help_command),
            CommandHandler("sources", sources),
            CommandHandler("latest", latest),
            CommandHandler("ask", ask_command),
            # Subscriptions (in groups, admins only) and the administrators' sources.
            CommandHandler("subscribe", subscribe_command),
            CommandHandler("subscriptions", subscriptions_command),
            CommandHandler("unsubscribe", unsubscribe_command),
            CommandHandler("digest", digest_command),
            CommandHandler("ingest", ingest_command),
            CommandHandler("feeds", feeds_command),
            # Private chat: any text is a question.
            MessageHandler(private & filters.TEXT & ~filters.COMMAND, private_text),
            # Groups: only messages that mention the bot or reply to it.
            MessageHandler(groups & filters.TEXT & ~filters.COMMAND & _AddressedToMe(), group_text),
            # A group upgraded to a supergroup: subscriptions move with it.
            MessageHandler(filters.StatusUpdate.MIGRATE & filters.ChatType.GROUP, chat_migrated),
            # Buttons under answers and /start.
            CallbackQueryHandler(button),
            # Inline mode.
            InlineQueryHandler(inline_query),
        ]
    )
    app.add_error_handler(error_handler)
    return app


async def _fan_out(context: ContextTypes.DEFAULT_TYPE) -> None:
    """New stories by any route (feed poll, /ingest, `talksbot ingest` in another process):
    reload the index and queue pushes for subscribed chats."""
    svc = services(context)
    if await svc.run(svc.answerer.searcher.refresh):
        log.info("index reloaded: %d sentences", svc.answerer.searcher.size)
    max_age = svc.settings.talksbot_push_max_age_hours * 3600
    queued = await svc.run(pushes.fan_out, svc.answerer.searcher.store, max_age=max_age)
    if queued and svc.deliverer:
        log.info("queued %d pushes", queued)
        svc.deliverer.wake.set()


async def _prune(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Retention: old answers (their buttons then say so), feedback and finished pushes go."""
    svc = services(context)
    before = time.time() - svc.settings.talksbot_retention_days * 86400
    pruned = await svc.run(svc.answerer.searcher.store.prune, before)
    if any(pruned.values()):
        log.info("pruned %s", pruned)


async def chat_migrated(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A group became a supergroup: its subscriptions and queued pushes follow it."""
    message = update.effective_message
    svc = services(context)
    await svc.run(
        pushes.migrate_chat,
        svc.answerer.searcher.store,
        message.chat_id,
        message.migrate_to_chat_id,
    )


def _with_ingester(svc: Services, work):  # noqa: ANN001, ANN202
    """Run ``work(store, ingester)`` on a store connection of its own (network-bound work stays
    off the answering thread)."""
    from index.ingest import Ingester
    from index.store import Store

    store = Store(svc.settings.data_dir)
    try:
        return work(store, Ingester(store, svc.answerer.searcher.embedder))
    finally:
        store.close()


async def _poll_feeds(context: ContextTypes.DEFAULT_TYPE) -> None:
    from index.feeds import list_feeds, poll_feeds

    svc = services(context)
    if not await svc.run(list_feeds, svc.answerer.searcher.store):
        return
    report = await asyncio.to_thread(_with_ingester, svc, poll_feeds)
    for error in report.errors:
        log.warning("feed poll: %s", error)
    if report.added:
        await _fan_out(context)


def run_bot(settings: Settings, verbose: bool = False) -> None:
    """Long polling, or a webhook when ``TELEGRAM_WEBHOOK_URL`` is set. Stops on SIGINT/SIGTERM."""
    token = settings.telegram_bot_token.get_secret_value() if settings.telegram_bot_token else ""
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=logging.INFO, format=fmt)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(LogFormatter(token, fmt, verbose))
    logging.getLogger("httpx").setLevel(logging.WARNING)
    app = build_application(settings)
    if settings.telegram_webhook_url:
        secret = settings.telegram_webhook_secret
        app.run_webhook(
            listen=settings.telegram_webhook_listen,
            port=settings.telegram_webhook_port,
            url_path="telegram",
            webhook_url=settings.telegram_webhook_url,
            secret_token=secret.get_secret_value() if secret else None,
            allowed_updates=Update.ALL_TYPES,
        )
    else:
        app.run_polling(
            allowed_updates=Update.ALL_TYPES, poll_interval=settings.telegram_poll_interval
        )


def main() -> int:
    import cli

    return cli.main([*sys.argv[1:], "serve"])  # e.g. `python bot.py -v` for full tracebacks


if __name__ == "__main__":
    sys.exit(main())
