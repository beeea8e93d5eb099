"""Questions, however they arrive: private messages, /ask, @mentions and replies in groups,
inline queries. Each is answered in the chat (and forum topic) it came from."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from dataclasses import dataclass

from telegram import (
    InlineKeyboardMarkup,
    InlineQuery,
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
from talksbot.telegram.services import Services, services

log = logging.getLogger("talksbot.bot")


async def reply_with_answer(
    message: Message,
    question: str,
    context: ContextTypes.DEFAULT_TYPE,
    remember: bool = True,
    asker_id: int | None = None,
) -> None:
    """Answer in the chat (and topic) of ``message``, replying to it, with buttons; at most
    ``MAX_ASKING`` questions of one person at a time (told once to wait, the rest ignored).
    With ``remember`` (a person's question, not a button under the bot's own message) the
    question is remembered from the start, so an edit of it, even one made while this answer
    is on its way, redoes the answer in place (``edited_question``). ``asker_id``: who asked,
    when not the message's sender (a button under the bot's own message: whoever pressed it)."""
    svc = services(context)
    asker = _asker(message) if asker_id is None else (message.chat_id, asker_id)
    if not _take_turn(svc, asker):
        if asker not in svc.told_to_wait:
            svc.told_to_wait.add(asker)
            await _reply(message, plain(WAIT))
        return
    asked = _remember(context, message.message_id) if remember else Asked()
    asked.wanted = question
    try:
        text, keyboard = await _compose(message, question, context)
        sent = await _reply(message, text, keyboard)
        asked.answer_id, asked.shown, asked.at = sent.message_id, _digest(question), time.time()
    finally:
        _end_turn(svc, asker)
        asked.busy = False
    await _redo_logged(message, asked, context)  # edited meanwhile: answer it as it now reads


async def _reply(
    message: Message, text: str, keyboard: InlineKeyboardMarkup | None = None
) -> Message:
    """Reply in the message's chat and topic, quoting it in groups (where several people ask)."""
    return await message.reply_text(
        text, reply_markup=keyboard, do_quote=message.chat.type != ChatType.PRIVATE
    )


async def _compose(
    message: Message, question: str, context: ContextTypes.DEFAULT_TYPE
) -> tuple[str, InlineKeyboardMarkup | None]:
    """The answer's HTML and buttons (its citations saved for the buttons)."""
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
    return answer_html(answer), answer_keyboard(key, answer) if key else None


MAX_ASKING = 3
WAIT = "I'm still answering your earlier questions; ask again once they're in."
# Per chat, the latest questions answered (question message id -> ``Asked``): an edit of one
# of these within ``REDO_WINDOW`` of its answer redoes that answer in place.
ASKED_KEY = "asked"
ASKED_KEPT = 100
REDO_WINDOW = 48 * 3600.0


@dataclass
class Asked:
    """A question the bot answers (or answered) by a reply, as its edits need it."""

    answer_id: int | None = None  # the bot's reply, once sent
    shown: str = ""  # digest of the question that reply answers
    wanted: str = ""  # the question as the message now reads, until the reply answers it
    busy: bool = True  # an answer to it is being made: an edit only updates ``wanted``
    at: float = 0.0  # when the reply was sent


def _digest(question: str) -> str:
    """A short fingerprint of a question, spacing folded (no question text kept per chat)."""
    folded = " ".join(question.split())
    return hashlib.blake2b(folded.encode(), digest_size=8).hexdigest()


def _asker(message: Message) -> tuple[int, int]:
    return message.chat_id, message.from_user.id if message.from_user else 0


def _take_turn(svc: Services, asker: tuple[int, int]) -> bool:
    if svc.asking[asker] >= MAX_ASKING:
        return False
    svc.asking[asker] += 1
    return True


def _end_turn(svc: Services, asker: tuple[int, int]) -> None:
    """Give the turn back; the asker's oldest edit waiting for one (``_defer``) takes it."""
    svc.asking[asker] -= 1
    if svc.asking[asker] <= 0:
        del svc.asking[asker]
        svc.told_to_wait.discard(asker)
    waiting = svc.deferred.get(asker)
    if waiting:
        message, asked, context = waiting.pop(next(iter(waiting)))
        if not waiting:
            del svc.deferred[asker]
        if context.application.running:
            context.application.create_task(_redo_logged(message, asked, context))
        else:  # stopping: like an edit of an answer made before a restart, it gets nothing
            svc.deferred.pop(asker, None)


def _defer(
    svc: Services, message: Message, asked: Asked, context: ContextTypes.DEFAULT_TYPE
) -> None:
    """Keep an edit whose asker has no turn free until one ends. No handler waits for it (a
    waiting handler holds one of the library's places for updates, and a flood of edits would
    hold them all); as a fourth question is, an edit beyond ``MAX_ASKING`` waiting ones is
    ignored."""
    waiting = svc.deferred.setdefault(_asker(message), {})
    if message.message_id in waiting or len(waiting) < MAX_ASKING:
        waiting[message.message_id] = (message, asked, context)
    else:
        log.info("an edit was ignored: its asker has %d edits waiting for a turn", len(waiting))


def _remember(context: ContextTypes.DEFAULT_TYPE, question_id: int) -> Asked:
    asked = Asked()
    if context.chat_data is None:
        return asked
    kept: dict[int, Asked] = context.chat_data.setdefault(ASKED_KEY, {})
    kept.pop(question_id, None)
    kept[question_id] = asked
    while len(kept) > ASKED_KEPT:
        del kept[next(iter(kept))]
    return asked


async def edited_question(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A question edited after it was asked (a typo fixed): its answer is redone by editing
    the bot's reply, so a group does not get a second answer per fix. Edits of messages the
    bot never answered (or answered over ``REDO_WINDOW`` ago), and edits that leave the
    question as it was, get nothing."""
    message = update.effective_message
    asked = (context.chat_data or {}).get(ASKED_KEY, {}).get(message.message_id)
    if asked is None or (asked.answer_id is not None and time.time() - asked.at > REDO_WINDOW):
        return
    question = _question_in(message, context.bot.username)
    if not question:
        return
    asked.wanted = question
    if not asked.busy:  # else the answer being made is redone to it when done
        await _redo(message, asked, context)


async def _redo(message: Message, asked: Asked, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Edit the reply until it answers the question as the message last read: one answer
    at a time per message, the latest edit winning. It takes one of the asker's
    ``MAX_ASKING`` turns until the edit is sent; with none free it is deferred (``_defer``),
    so edits cannot make more answers at once than new questions can, nor wait in a handler."""
    svc = services(context)
    asker = _asker(message)
    asked.busy = True
    try:
        while asked.answer_id is not None and asked.wanted:
            question = asked.wanted
            if _digest(question) == asked.shown:
                asked.wanted = ""
                break
            if not _take_turn(svc, asker):
                _defer(svc, message, asked, context)
                break
            try:
                text, keyboard = await _compose(message, question, context)
                await _replace(message, asked, text, keyboard)
                asked.shown = _digest(question)
            finally:
                _end_turn(svc, asker)
    finally:
        asked.busy = False


async def _redo_logged(message: Message, asked: Asked, context: ContextTypes.DEFAULT_TYPE) -> None:
    """``_redo`` off any handler (a deferred edit): a failure is logged, not apologised for."""
    try:
        await _redo(message, asked, context)
    except Exception:
        log.warning("could not redo an answer after its question was edited", exc_info=True)


async def _replace(
    message: Message, asked: Asked, text: str, keyboard: InlineKeyboardMarkup | None
) -> None:
    """Put the new answer in the bot's reply; a reply since deleted is sent again."""
    assert asked.answer_id is not None
    try:
        await message.get_bot().edit_message_text(
            text, chat_id=message.chat_id, message_id=asked.answer_id, reply_markup=keyboard
        )
    except BadRequest as exc:
        if "not modified" in str(exc).lower():
            return  # the same answer as before
        if "not found" not in str(exc).lower():
            raise
        sent = await _reply(message, text, keyboard)
        asked.answer_id, asked.at = sent.message_id, time.time()


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


def _question_in(message: Message, username: str) -> str:
    """The question a message asks the bot as it now reads ("" if none): ``/ask`` and its
    words; in a private chat any other text that is not a command; in a group the text of a
    message addressed to the bot, without the mention."""
    text = message.text or ""
    # A command as Telegram marks it (what ``filters.COMMAND`` routes): "/r/ukraine: …" typed
    # in a private chat, with no command entity, is a question like any other text.
    command = next(
        (
            e
            for e in message.entities
            if e.type == MessageEntity.BOT_COMMAND and e.offset == 0 and e.length > 1
        ),
        None,
    )
    if command is not None:
        name, _, bot = text[1 : command.length].partition("@")
        mine = not bot or bot.lower() == (username or "").lower()
        return " ".join(text[command.length :].split()) if name.lower() == "ask" and mine else ""
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
    """``@bot question`` anywhere: up to five cited passages to pick from. Telegram sends a
    query per keystroke: one person's are answered one at a time, the latest waiting one
    replacing any older (which the person has typed past), so no one's typing can fill the
    answer queue for everyone else."""
    query = update.inline_query
    svc = services(context)
    user = query.from_user.id
    if user in svc.inline_waiting:  # one of theirs is being answered: this one is next
        svc.inline_waiting[user] = query
        return
    svc.inline_waiting[user] = None
    try:
        next_query: InlineQuery | None = query
        while next_query is not None:
            try:
                await _answer_inline(next_query, svc)
            except Exception:  # (a query too old by now, say) the latest waiting one still goes
                log.warning("could not answer an inline query", exc_info=True)
            next_query, svc.inline_waiting[user] = svc.inline_waiting[user], None
    finally:
        del svc.inline_waiting[user]


async def _answer_inline(query: InlineQuery, svc: Services) -> None:
    question = (query.query or "").strip()
    if len(question) < 3:
        await query.answer([], cache_time=10)
        return
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
