"""Inline keyboards: under answers, /start, /subscriptions and pushes."""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from retrieval.answer import ANSWERED, Answer
from talksbot.render import cut
from talksbot.telegram.callbacks import (
    AskAbout,
    Example,
    MoreContext,
    MoreResults,
    Unsubscribe,
    Vote,
    encode,
)

PAGE = 3  # citations per message
MAX_PAGES = 10  # "More results" goes this deep
EXAMPLES = (
    "Why was the Budapest summit paused?",
    "Where will the next round of talks be held?",
    "Who would monitor a ceasefire?",
)


def _button(text: str, data: object) -> InlineKeyboardButton:
    return InlineKeyboardButton(text, callback_data=encode(data))


def answer_keyboard(key: str, answer: Answer, first_number: int = 1) -> InlineKeyboardMarkup | None:
    """Context buttons per citation, "More results" (next page), 👍/👎; ``key`` names the stored
    answer (its token)."""
    if answer.status != ANSWERED:
        return None
    offset = first_number - 1
    context_row = [
        _button(f"More context [{n}]", MoreContext(key, c.sentence_id, offset))
        for n, c in enumerate(answer.citations, first_number)
    ]
    actions = []
    next_offset = offset + PAGE
    if answer.has_more and next_offset < MAX_PAGES * PAGE:
        actions.append(_button("More results", MoreResults(key, next_offset)))
    actions += [_button("👍", Vote(key, 1)), _button("👎", Vote(key, -1))]
    return InlineKeyboardMarkup([context_row, actions])


def examples_keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[_button(q, Example(i))] for i, q in enumerate(EXAMPLES)])


def subscriptions_keyboard(subs: list[tuple[int, str]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [_button(f"Remove: {cut(topic or 'all new coverage', 40)}", Unsubscribe(sub_id))]
            for sub_id, topic in subs
        ]
    )


def push_keyboard(article_id: int, subscription_id: int | None) -> InlineKeyboardMarkup:
    row = [_button("Ask about this", AskAbout(article_id))]
    if subscription_id:
        row.append(_button("Unsubscribe", Unsubscribe(subscription_id)))
    return InlineKeyboardMarkup([row])
