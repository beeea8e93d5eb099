"""FairUpdates, the update processor that caps what one person or chat has in progress: the
real python-telegram-bot ``Update`` objects and processor API, updates held in progress by
handlers that wait on an event."""

from __future__ import annotations

import asyncio
import itertools

from telegram import Update

from talksbot.telegram.fairness import PER_CHAT, PER_PERSON, PER_USER, FairUpdates

_ids = itertools.count(1)
ANONYMOUS_ADMIN = 1087968824


def message(chat: int, user: int, **extra: object) -> Update:
    chat_type = "private" if chat > 0 else "supergroup"
    data = {
        "message_id": next(_ids),
        "date": 0,
        "chat": {"id": chat, "type": chat_type},
        "from": {"id": user, "is_bot": False, "first_name": "x"},
        "text": "/help",
        **extra,
    }
    return Update.de_json({"update_id": next(_ids), "message": data}, None)


async def run_all(fair: FairUpdates, updates: list[Update]) -> tuple[list[int], asyncio.Event]:
    """Feed ``updates`` to ``fair`` as the Application does (a task each); returns which
    reached their handler while all of those wait, and the event that lets them finish."""
    started: list[int] = []
    gate = asyncio.Event()

    async def handler(i: int) -> None:
        started.append(i)
        await gate.wait()

    for i, update in enumerate(updates):
        asyncio.create_task(fair.process_update(update, handler(i)))
    for _ in range(5):
        await asyncio.sleep(0)
    return started, gate


async def test_one_person_in_one_chat_many_chats_and_one_chat_of_many() -> None:
    fair = FairUpdates()
    started, gate = await run_all(fair, [message(7, 7) for _ in range(30)])
    assert len(started) == PER_PERSON
    gate.set()
    await asyncio.sleep(0.01)
    assert not fair.busy  # every count back to zero once the handlers end

    # One account flooding in sixty groups of its own: capped as one person overall.
    many = [message(-100 - chat, 8) for chat in range(60) for _ in range(5)]
    started, gate = await run_all(fair, many)
    assert len(started) == PER_USER
    gate.set()

    # Many people in one group: capped as one chat.
    crowd = [message(-200, 1000 + person) for person in range(100)]
    started, gate = await run_all(fair, crowd)
    assert len(started) == PER_CHAT
    assert fair.dropped == 25 + (300 - PER_USER) + (100 - PER_CHAT)
    gate.set()


async def test_shared_senders_and_service_messages_are_not_capped_as_one_person() -> None:
    fair = FairUpdates()
    # A group's anonymous administrators all appear as one account, in every group.
    admins = [message(-300 - chat, ANONYMOUS_ADMIN) for chat in range(30)]
    started, gate = await run_all(fair, admins)
    assert len(started) == 30
    # A chat at its cap still gets its move to a supergroup handled.
    crowd = [message(-400, 2000 + person) for person in range(PER_CHAT)]
    migrate = message(-400, 2999, text=None, migrate_to_chat_id=-1000400)
    started, gate2 = await run_all(fair, [*crowd, migrate])
    assert len(started) == PER_CHAT + 1
    gate.set()
    gate2.set()
