"""Questions, however they arrive: private messages, /ask, @mentions and replies in groups,
inline queries. Each is answered in the chat (and forum topic) it came from."""

from __future__ import annotations

import asyncio
import re

from telegram import (
    InlineQueryResultArticle,
    InputTextMessageContent,
    Message,
    MessageEntity,
    Update,
)
from telegram.constants import ChatAction, ChatType
from telegram.ext import ContextTypes, filters

from retrieval.answer import ANSWERED
from talksbot.render import answer_html, cut, inline_html, plain
from talksbot.telegram.keyboards import EXAMPLES, PAGE, answer_keyboard
from talksbot.telegram.services import services


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
        answer = await svc.answer(question, k=PAGE)
        key = None
        if answer.status == ANSWERED:
            key = await svc.run(
                svc.store.answers.save,
                message.chat_id,
                answer.question,
                [c.sentence_id for c in answer.citations],
            )
    finally:
        typing.cancel()
    await message.reply_text(
        answer_html(answer),
        reply_markup=answer_keyboard(key, answer) if key else None,
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
            plain(f"Ask me something after the mention, e.g. @{context.bot.username} {EXAMPLES[0]}")
        )
        return
    await reply_with_answer(message, question, context)


async def ask_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/ask QUESTION (in groups, where plain messages are not for the bot)."""
    message = update.effective_message
    question = " ".join(context.args or []).strip()
    if not question:
        await message.reply_text(plain(f"Usage: /ask your question, e.g. /ask {EXAMPLES[0]}"))
        return
    await reply_with_answer(message, question, context)


class AddressedToMe(filters.MessageFilter):
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


async def inline_query(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """``@bot question`` anywhere: up to five cited passages to pick from."""
    query = update.inline_query
    question = (query.query or "").strip()
    if len(question) < 3:
        await query.answer([], cache_time=10)
        return
    svc = services(context)
    answer = await svc.answer(question, k=5)
    results = [
        InlineQueryResultArticle(
            id=f"{c.sentence_id}",
            title=cut(c.quote, 100),
            description=f"{c.outlet or 'unknown outlet'} · {c.published or 'undated'} · "
            f"{cut(c.title, 60)}",
            input_message_content=InputTextMessageContent(inline_html(question, i + 1, c)),
        )
        for i, c in enumerate(answer.citations)
    ]
    if not results:
        results.append(
            InlineQueryResultArticle(
                id="none",
                title="No answer in the coverage",
                description=cut(answer.message, 100),
                input_message_content=InputTextMessageContent(answer_html(answer)),
            )
        )
    await query.answer(results, cache_time=60)
