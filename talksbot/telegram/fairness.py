"""Caps on the updates one person, or one chat, has in progress at once.

python-telegram-bot processes up to 256 updates at once, and a handler that replies waits in the
pacer until its chat may be sent to again (1 message a second in a private chat, 20 a minute in
a group). So one person sending ``/help`` 300 times, or pressing one button 300 times, had every
slot waiting on their own chat's window, and nobody else was answered for minutes. Questions
have their own turns (``questions.MAX_ASKING``); commands and buttons had none. Here every
update of a person or chat over its cap is dropped before any handler sees it.

Left uncapped: inline queries and edits (a person's latest inline query must get through, the
ones typed past are dropped by its handler; edits wait for the asker's turn off any handler),
and service messages (a group's move to a supergroup must always be handled).
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Awaitable
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor, filters

log = logging.getLogger("talksbot.bot")

# A person's updates in progress in one chat: three questions answered at a time (as
# ``questions.MAX_ASKING`` counts them, per chat and person), the notice that tells a fourth to
# wait, and a button.
PER_PERSON = 5
# A person's in all chats: one account in sixty groups of its own must not hold every slot.
PER_USER = 20
# A chat's: a group gets 20 messages a minute, so a twenty-first waiting reply would go out more
# than a minute late.
PER_CHAT = 20
MAX_UPDATES = 256  # python-telegram-bot's own default for ``concurrent_updates(True)``
# Senders Telegram shows for many people at once (a group's anonymous administrators, a channel
# posting in a group, Telegram's own service account): capped per chat, never as one person.
SHARED_SENDERS = frozenset({1087968824, 136817688, 777000})

Key = tuple[str, object]


class FairUpdates(BaseUpdateProcessor):
    """``concurrent_updates`` that drops a person's or a chat's updates beyond their cap
    while earlier ones are in progress (logged once per flood)."""

    def __init__(
        self,
        max_updates: int = MAX_UPDATES,
        per_person: int = PER_PERSON,
        per_user: int = PER_USER,
        per_chat: int = PER_CHAT,
    ) -> None:
        super().__init__(max_updates)
        self.caps = {"person": per_person, "user": per_user, "chat": per_chat}
        self.busy: collections.Counter[Key] = collections.Counter()
        self.flooding: set[Key] = set()
        self.dropped = 0

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        keys = _keys(update)
        over = next((k for k in keys if self.busy[k] >= self.caps[k[0]]), None)
        if over:
            self.dropped += 1
            if over not in self.flooding:
                self.flooding.add(over)
                log.warning("%s %s sends faster than it is answered: dropping updates", *over)
            close = getattr(coroutine, "close", None)
            if close:
                close()  # never awaited: no "coroutine was never awaited" warning
            return
        self.busy.update(keys)
        try:
            await coroutine
        finally:
            self.busy.subtract(keys)
            for key in keys:
                if self.busy[key] <= 0:
                    del self.busy[key]
                    self.flooding.discard(key)

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to free."""


def _keys(update: object) -> list[Key]:
    """What an update counts against: its sender in this chat, its sender anywhere, its
    chat; nothing for the updates left uncapped (see the module's docstring)."""
    if not isinstance(update, Update):
        return []
    if update.inline_query or update.chosen_inline_result or update.edited_message:
        return []
    if update.message and filters.StatusUpdate.ALL.check_update(update):
        return []
    user, chat = update.effective_user, update.effective_chat
    chat_id = chat.id if chat else 0
    keys: list[Key] = [("chat", chat_id)] if chat else []
    if user:
        keys.append(("person", (chat_id, user.id)))
        if user.id not in SHARED_SENDERS:
            keys.append(("user", user.id))
    return keys
