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
from telegram.error import BadRequest
from telegram.ext import ContextTypes, filters

from retrieval.answer import ANSWERED
from talksbot.render import answer_html, cut, inline_html, plain
from talksbot.telegram.keyboards import EXAMPLES, PAGE, answer_keyboard
from talksbot.telegram.services import services


async def reply_with_answer(
    message: Message,
    question: str,
    context: ContextTypes.DEFAULT_TYPE,
    redo: int | None = None,
) -> None:
    """Answer in the chat (and topic) of ``message``, replying to it, with buttons; at most
    ``MAX_ASKING`` questions of one person at a time (told once to wait, the rest ignored).
    ``redo``: the id of the bot's earlier answer to this (since edited) message, edited in
    place instead of posting again."""
    svc = services(context)
    asker = (message.chat_id, message.from_user.id if message.from_user else 0)
    if svc.asking[asker] >= MAX_ASKING:
        if asker not in svc.told_to_wait:
            svc.told_to_wait.add(asker)
            await message.reply_text(plain(WAIT), do_quote=message.chat.type != ChatType.PRIVATE)
        return
    svc.asking[asker] += 1
    try:
        await _answer(message, question, context, redo)
    finally:
        svc.asking[asker] -= 1
        if svc.asking[asker] <= 0:
            del svc.asking[asker]
            svc.told_to_wait.discard(asker)


async def _answer(
    message: Message, question: str, context: ContextTypes.DEFAULT_TYPE, redo: int | None
) -> None:
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
    text = answer_html(answer)
    keyboard = answer_keyboard(key, answer) if key else None
    if redo is not None:
        try:
            await context.bot.edit_message_text(
                text, chat_id=message.chat_id, message_id=redo, reply_markup=keyboard
            )
            return
        except BadRequest as exc:
            if "not modified" in str(exc).lower():
                return  # the same answer as before
            if "not found" not in str(exc).lower():
                raise
            # The earlier answer was deleted: answer anew below.
    sent = await message.reply_text(
        text, reply_markup=keyboard, do_quote=message.chat.type != ChatType.PRIVATE
    )
    _remember(context, message.message_id, sent.message_id, question)


MAX_ASKING = 3
# Per chat, the latest questions answered (question message id -> (answer message id, the
# question as asked)): an edit of one of these redoes its answer in place.
ANSWERED_KEY = "answered"
ANSWERED_KEPT = 100


def _remember(
    context: ContextTypes.DEFAULT_TYPE, question_id: int, answer_id: int, question: str
) -> None:
    if context.chat_data is None:
        return
    answered: dict[int, tuple[int, str]] = context.chat_data.setdefault(ANSWERED_KEY, {})
    answered.pop(question_id, None)
    answered[question_id] = (answer_id, question)
    while len(answered) > ANSWERED_KEPT:
        del answered[next(iter(answered))]


WAIT = "I'm still answering your earlier questions; ask again once they're in."


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


async def edited_question(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A question edited after it was answered (a typo fixed): the answer is redone by editing
    the bot's reply, so a group does not get a second answer per fix. Edits of messages the
    bot never answered, and edits that leave the question as it was, get nothing."""
    message = update.effective_message
    answered = (context.chat_data or {}).get(ANSWERED_KEY, {})
    earlier = answered.get(message.message_id)
    question = _question_in(message, context.bot.username)
    if earlier is None or not question or question == earlier[1]:
        return
    answered[message.message_id] = (earlier[0], question)
    await reply_with_answer(message, question, context, redo=earlier[0])


def _question_in(message: Message, username: str) -> str:
    """The question a message asks the bot as it now reads ("" if none): ``/ask`` and its
    words; in a private chat any other text that is not a command; in a group the text of a
    message addressed to the bot, without the mention."""
    text = message.text or ""
    if text.startswith("/"):
        command, _, rest = text.partition(" ")
        name, _, bot = command[1:].partition("@")
        mine = not bot or bot.lower() == (username or "").lower()
        return " ".join(rest.split()) if name.lower() == "ask" and mine else ""
    if message.chat.type == ChatType.PRIVATE:
        return text.strip()
    return strip_mention(text, username) if AddressedToMe().filter(message) else ""


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
