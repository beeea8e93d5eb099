"""Buttons, one handler per kind of callback data (see ``callbacks``). Answers are kept in the
store, so buttons under them keep working after a restart."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from telegram import CallbackQuery, InlineKeyboardMarkup, Update
from telegram.error import BadRequest
from telegram.ext import ContextTypes

from index.store_answers import SavedAnswer
from talksbot.render import answer_html, context_html
from talksbot.telegram.callbacks import (
    AskAbout,
    Example,
    MoreContext,
    MoreResults,
    Unsubscribe,
    Vote,
    decode,
)
from talksbot.telegram.keyboards import EXAMPLES, MAX_PAGES, PAGE, answer_keyboard
from talksbot.telegram.questions import reply_with_answer
from talksbot.telegram.services import Services, services
from talksbot.telegram.subscriptions import may_manage

EXPIRED = "This button has expired; please ask again."
log = logging.getLogger("talksbot.bot")


async def example_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """An example question under /start: asked as if typed."""
    query = update.callback_query
    data = decode(Example, query.data)
    await _ack(query)
    if query.message is None:  # not under /start: nowhere to answer
        return
    index = data.index if data and 0 <= data.index < len(EXAMPLES) else 0
    await reply_with_answer(
        query.message, EXAMPLES[index], context, remember=False, asker_id=query.from_user.id
    )


async def unsubscribe_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """ "Remove" under /subscriptions and "Unsubscribe" under a push."""
    query = update.callback_query
    if query.message is None:  # a forged button on an inline message
        await _ack(query, EXPIRED, show_alert=True)
        return
    if not await may_manage(update, context):
        await _ack(query, "Only the group's administrators can do that.", show_alert=True)
        return
    data = decode(Unsubscribe, query.data)
    svc = services(context)
    removed = await svc.run(
        svc.store.pushes.unsubscribe,
        update.effective_chat.id,
        None,
        data.subscription_id if data else -1,
    )
    await _ack(query, "Unsubscribed." if removed else "Already unsubscribed.")


async def about_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """ "Ask about this" under a push: the story's title, asked as a question."""
    query = update.callback_query
    data = decode(AskAbout, query.data)
    svc = services(context)
    article = await svc.run(svc.store.article, data.article_id) if data else None
    await _ack(query)
    if article and query.message:
        await reply_with_answer(
            query.message, article.title, context, remember=False, asker_id=query.from_user.id
        )


@dataclass
class AnswerButton:
    """A button under a stored answer, with what it needs to act."""

    query: CallbackQuery
    svc: Services
    data: Vote | MoreResults | MoreContext
    saved: SavedAnswer

    @property
    def question(self) -> str:
        return self.saved.question

    @property
    def shown(self) -> list[int]:
        return self.saved.shown


async def _answer_button(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    data: Vote | MoreResults | MoreContext | None,
) -> AnswerButton | None:
    """The stored answer a button belongs to, if the button sits in the chat that answer was
    sent to; otherwise None, and the user told the button has expired (nothing changes). A
    button copied onto another chat's message, or an inline message, never reaches an answer."""
    query, svc = update.callback_query, services(context)
    saved = await svc.run(svc.store.answers.load, data.key) if data else None
    message = query.message
    if saved is None or message is None or saved.chat_id != message.chat.id:
        await _ack(query, EXPIRED, show_alert=True)
        return None
    return AnswerButton(query, svc, data, saved)


async def vote_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """👍/👎: stored with the question and the citations shown."""
    b = await _answer_button(update, context, decode(Vote, update.callback_query.data))
    if b is None:
        return
    user, message = update.effective_user, b.query.message
    await b.svc.run(
        b.svc.store.answers.add_feedback,
        message.chat_id if message else None,
        user.id if user else None,
        b.question,
        b.shown,
        1 if b.data.vote == 1 else -1,
    )
    await _ack(b.query, "Thanks for the feedback!")


async def more_results_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """ "More results": the next page of citations, edited into the answer's message."""
    b = await _answer_button(update, context, decode(MoreResults, update.callback_query.data))
    if b is None:
        return
    offset = min(max(b.data.offset, 0), (MAX_PAGES - 1) * PAGE)
    answer = await b.svc.answer(b.question, k=PAGE, offset=offset)
    if not answer.citations:
        await _ack(b.query, "No more results.")
        return
    shown = [c.sentence_id for c in answer.citations]
    await b.svc.run(b.svc.store.answers.update, b.saved.id, shown)
    await _ack(b.query)
    keyboard = answer_keyboard(b.data.key, answer, first_number=offset + 1)
    await _edit(b.query, answer_html(answer, first_number=offset + 1), keyboard)


def _legacy_context(text: str | None) -> MoreContext | None:
    """``ctx:ANSWER:SENTENCE`` from before buttons carried their page (offset -1: search)."""
    match = re.fullmatch(r"ctx:([0-9]{1,18}):(-?[0-9]{1,18})", text or "")
    return MoreContext(match[1], int(match[2]), -1) if match else None


async def more_context_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """ "More context [n]": the sentences around citation n, quoted in its place."""
    text = update.callback_query.data
    data = decode(MoreContext, text)
    if data is not None and not 0 <= data.offset < MAX_PAGES * PAGE:
        data = None  # a forged page: only old three-part buttons search for theirs (below)
    b = await _answer_button(update, context, data or _legacy_context(text))
    if b is None:
        return
    svc, data = b.svc, b.data
    around = await svc.run(svc.answerer.context, data.sentence_id, 2, 2)
    if not around:
        await _ack(b.query, "No more context for that passage.")
        return
    if 0 <= data.offset < MAX_PAGES * PAGE:
        offset = data.offset
        answer = await svc.answer(b.question, k=PAGE, offset=offset)
    else:  # an old button: find the page of results that holds this citation
        for offset in range(0, MAX_PAGES * PAGE, PAGE):
            answer = await svc.answer(b.question, k=PAGE, offset=offset)
            shown = {c.sentence_id for c in answer.citations}
            if not shown or data.sentence_id in shown:
                break
    await _ack(b.query)
    page = context_html(b.question, answer.citations, offset + 1, data.sentence_id, around)
    await _edit(b.query, page, b.query.message.reply_markup if b.query.message else None)


async def unknown_button(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
    """Data no handler above knows (an old or forged button): the spinner just stops."""
    await _ack(update.callback_query)


async def _ack(query: CallbackQuery, text: str | None = None, show_alert: bool = False) -> None:
    """Stop the button's spinner (showing ``text``). Telegram refuses once a press is too old
    to acknowledge (it waited while the bot was down or busy): the press is acted on all the
    same, and nobody is told of an error that is not theirs."""
    try:
        await query.answer(text, show_alert=show_alert)
    except BadRequest as exc:
        log.info("a button press could not be acknowledged: %s", exc)


# Telegram's refusals to edit a message that is gone (deleted since the press) or can no longer
# be edited: the page has nowhere to go, and nothing went wrong on the presser's side.
_GONE = ("message to edit not found", "message can't be edited")


async def _edit(query: CallbackQuery, text: str, keyboard: InlineKeyboardMarkup | None) -> None:
    try:
        await query.edit_message_text(text, reply_markup=keyboard)
    except BadRequest as exc:
        reason = str(exc).lower()
        if any(gone in reason for gone in _GONE):
            log.info("a button's answer could not be edited: %s", exc)
        elif "not modified" not in reason:
            raise
