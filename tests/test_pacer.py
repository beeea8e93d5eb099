"""The one pacer (``talksbot.telegram.pacer``) on a real PTB bot against the test Bot API
server, which refuses with 429 whatever exceeds Telegram's windows."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest
from telegram.ext import ExtBot
from telegram.request import HTTPXRequest

from talksbot.telegram.pacer import Limits, Pacer, Priority
from tests.harness.bot_api import FakeBotAPI
from tests.harness.telegram_rules import FloodControl, check_text


@pytest.fixture
def api() -> FakeBotAPI:
    server = FakeBotAPI()
    server.base = server.start()
    yield server
    server.stop()


async def paced_bot(api: FakeBotAPI, limits: Limits | None = None) -> ExtBot:
    bot = ExtBot(
        api.token,
        base_url=api.base,
        rate_limiter=Pacer(limits),
        request=HTTPXRequest(connection_pool_size=64),
    )
    await bot.initialize()
    return bot


@pytest.fixture
async def bot(api: FakeBotAPI) -> AsyncIterator[ExtBot]:
    bot = await paced_bot(api)
    yield bot
    await bot.shutdown()


def accepted(api: FakeBotAPI) -> list:
    return [c for c in api.calls_to("sendMessage") if c.status == 200]


async def test_many_chats_and_one_busy_chat_stay_inside_the_windows(
    api: FakeBotAPI, bot: ExtBot
) -> None:
    # 73 messages at once: 70 chats, one of which gets 4 in a row.
    sends = [bot.send_message(chat, f"to {chat}") for chat in range(1, 71)]
    sends += [bot.send_message(7, f"again {n}") for n in range(3)]
    await asyncio.gather(*sends)
    assert api.refused() == []
    ok = accepted(api)
    assert len(ok) == 73
    to_7 = [c for c in ok if int(c.params["chat_id"]) == 7]
    assert [c.params["text"] for c in to_7] == ["to 7", "again 0", "again 1", "again 2"]
    assert all(b.at - a.at >= 1.0 for a, b in itertools.pairwise(to_7))
    assert max(sum(1 for c in ok if 0 <= c.at - d.at < 1.0) for d in ok) <= 30


async def test_group_window(api: FakeBotAPI) -> None:
    api.flood = FloodControl(group_per_minute=3, group_window=3.0)
    bot = await paced_bot(api, Limits(group_per_minute=3, group_window=3.0))
    try:
        await asyncio.gather(*(bot.send_message(-100, f"story {n}") for n in range(5)))
    finally:
        await bot.shutdown()
    assert api.refused() == []
    ok = accepted(api)
    assert [c.params["text"] for c in ok] == [f"story {n}" for n in range(5)]
    assert ok[3].at - ok[0].at >= 3.0  # the fourth waited for the first to leave the window


async def test_answers_go_before_pushes(api: FakeBotAPI, bot: ExtBot) -> None:
    pushes = [
        bot.send_message(1000 + n, f"push {n}", rate_limit_args=Priority.PUSH) for n in range(60)
    ]
    answers = [bot.send_message(2000 + n, f"answer {n}") for n in range(5)]
    await asyncio.gather(*pushes, *answers)
    assert api.refused() == []
    order = [c.params["text"] for c in accepted(api)]
    assert len(order) == 65
    # Three go in the first second beside 27 pushes, two at the next free slots (a push-first
    # pacer would put them after all 60 pushes).
    assert max(order.index(f"answer {n}") for n in range(5)) < 36
    assert sorted(t for t in order if t.startswith("push")) == sorted(
        f"push {n}" for n in range(60)
    )


async def test_a_429_is_waited_out_without_loss_or_reordering(api: FakeBotAPI, bot: ExtBot) -> None:
    api.flood_next("sendMessage", retry_after=1)
    await asyncio.gather(*(bot.send_message(5, f"m{n}") for n in range(3)))
    assert [c.params["text"] for c in accepted(api)] == ["m0", "m1", "m2"]
    assert len(api.refused()) == 1  # the injected one; the pacer caused none
    assert bot.rate_limiter.retries == 1


def test_the_server_checks_text_like_telegram() -> None:
    assert check_text("<b>ok</b> &amp; fine", "HTML") is None
    assert "can't parse entities" in check_text("<b>cut <i>here</b>", "HTML")["description"]
    assert "can't parse entities" in check_text('<a href="x">open', "HTML")["description"]
    assert "can't parse entities" in check_text("<br>", "HTML")["description"]
    assert check_text("<b>" + "x" * 4096 + "</b>", "HTML") is None  # tags do not count
    assert check_text("x" * 4097, None)["description"] == "Bad Request: message is too long"
    assert check_text("<b></b>", "HTML")["description"] == "Bad Request: message text is empty"


def test_the_server_refuses_what_exceeds_the_windows() -> None:
    flood = FloodControl()
    assert flood.admit(1, False, 0.0) is None
    assert flood.admit(1, False, 0.5) == 1  # one a second per chat
    assert flood.admit(1, False, 1.0) is None
    assert all(flood.admit(100 + n, False, 2.0) is None for n in range(30))
    assert flood.admit(200, False, 2.5) == 1  # 30 a second overall
    for n in range(20):
        assert flood.admit(-5, True, 10.0 + 2 * n) is None
    assert flood.admit(-5, True, 50.0) == 20  # 20 a minute per group
