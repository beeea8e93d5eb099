"""Caps on the updates one person, or one chat, has in progress at once.

python-telegram-bot processes up to 256 updates at once, and a handler that replies waits in the
pacer until its chat may be sent to again (1 message a second in a private chat, 20 a minute in
a group). So one person sending ``/help`` 300 times, or pressing one button 300 times, had every
slot waiting on their own chat's window, and nobody else was answered for minutes. Questions
have their own turns (``questions.MAX_ASKING``); commands and buttons had none. Here every
update of a person or chat over its cap is dropped before any handler sees it.

Inline queries and edits are left to their own handlers: a person's latest inline query must
get through (the ones typed past are dropped there), and edits wait for the asker's turn off
any handler.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Awaitable
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor

log = logging.getLogger("talksbot.bot")

# A person's updates in progress in one chat: three questions answered at a time (as
# ``questions.MAX_ASKING`` counts them, per chat and person), the notice that tells a fourth to
# wait, and a button.
PER_PERSON = 5
# A chat's: a group gets 20 messages a minute, so a twenty-first waiting reply would go out more
# than a minute late.
PER_CHAT = 20
MAX_UPDATES = 256  # python-telegram-bot's own default for ``concurrent_updates(True)``


class FairUpdates(BaseUpdateProcessor):
    """``concurrent_updates`` that drops a person's or a chat's updates beyond their cap
    while earlier ones are in progress (logged once per flood)."""

    def __init__(
        self,
        max_updates: int = MAX_UPDATES,
        per_person: int = PER_PERSON,
        per_chat: int = PER_CHAT,
    ) -> None:
        super().__init__(max_updates)
        self.per_person, self.per_chat = per_person, per_chat
        self.people: collections.Counter[tuple[int, int]] = collections.Counter()
        self.chats: collections.Counter[int] = collections.Counter()
        self.flooding: set[tuple[str, object]] = set()
        self.dropped = 0

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        person, chat = _keys(update)
        if person is None and chat is None:
            await coroutine
            return
        over = self._over(person, chat)
        if over:
            self.dropped += 1
            if over not in self.flooding:
                self.flooding.add(over)
                log.warning("%s %s sends faster than it is answered: dropping updates", *over)
            close = getattr(coroutine, "close", None)
            if close:
                close()  # never awaited: no "coroutine was never awaited" warning
            return
        self._count(person, chat, 1)
        try:
            await coroutine
        finally:
            self._count(person, chat, -1)

    def _over(self, person: tuple[int, int] | None, chat: int | None) -> tuple[str, object] | None:
        if person is not None and self.people[person] >= self.per_person:
            return ("user", person)
        if chat is not None and self.chats[chat] >= self.per_chat:
            return ("chat", chat)
        return None

    def _count(self, person: tuple[int, int] | None, chat: int | None, step: int) -> None:
        for kind, key, counter in (("user", person, self.people), ("chat", chat, self.chats)):
            if key is None:
                continue
            counter[key] += step
            if counter[key] <= 0:
                del counter[key]
                self.flooding.discard((kind, key))

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to free."""


def _keys(update: object) -> tuple[tuple[int, int] | None, int | None]:
    """(chat, person) and chat of an update; (None, None) for updates left uncapped."""
    if not isinstance(update, Update):
        return None, None
    if update.inline_query or update.chosen_inline_result or update.edited_message:
        return None, None
    user, chat = update.effective_user, update.effective_chat
    chat_id = chat.id if chat else None
    return ((chat_id or 0, user.id) if user else None), chat_id
