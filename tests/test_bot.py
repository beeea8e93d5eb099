"""The bot (python-telegram-bot's Application over HTTP) against our own Bot API server on
127.0.0.1. Tests script updates and assert on what the bot sends: in process through
``build_application`` by default, and a few against the real entry point, ``python bot.py``."""

from __future__ import annotations

import asyncio
import collections
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.bot_api import BOT, USER, FakeBotAPI
from tests.harness.bot_process import running_bot
from tests.harness.chat import ask, buttons, check_html, query, wait_until
from tests.harness.data import CORPUS, ROOT, cli_env, ingest
from tests.harness.in_process import InProcessBot, app_bot

QUESTION = "How long did the second day of talks in Geneva last?"
# A message of the bot's in a group, as a reply to it carries it.
BOT_MESSAGE = {
    "message_id": 1,
    "date": 0,
    "chat": {"id": -200, "type": "supergroup"},
    "from": BOT,
    "text": "an earlier answer",
}
World = tuple[FakeBotAPI, InProcessBot]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One bot in process on the fixture corpus, shared by the tests of this module."""
    data_dir = tmp_path_factory.mktemp("bot") / "data"
    ingest(data_dir, CORPUS)
    with app_bot(data_dir) as running:
        yield running


# -- startup -------------------------------------------------------------------------------
def test_startup_sets_command_menus_per_scope(world: World) -> None:
    api, _ = world
    scopes = {c.params["scope"]["type"] for c in api.calls_to("setMyCommands")}
    assert scopes == {"all_private_chats", "all_group_chats"}
    group = next(
        c for c in api.calls_to("setMyCommands") if c.params["scope"]["type"] == "all_group_chats"
    )
    assert "ask" in [cmd["command"] for cmd in group.params["commands"]]
    assert api.calls_to("getMe")


# -- private chat --------------------------------------------------------------------------
def test_one_persons_flood_is_answered_three_at_a_time_and_told_once(world: World) -> None:
    """Ten questions at once from one person: the first three are answered, one notice says
    to wait, the rest are dropped; once the answers are out, questions are answered again."""
    api, _ = world
    chat, start = 4242, time.monotonic()

    def mine() -> list[str]:
        return [
            c.params["text"]
            for c in api.calls_to("sendMessage")
            if c.at >= start and str(c.params["chat_id"]) == str(chat)
        ]

    for i in range(10):
        api.push(api.message(f"{QUESTION} ({i})", chat_id=chat))
    wait_until(lambda: len(mine()) >= 4, 30, "three answers and a notice")
    time.sleep(1.5)  # anything more would have been sent by now (1/s per chat)
    assert sum("<blockquote>" in t for t in mine()) == 3
    assert sum("still answering your earlier questions" in t for t in mine()) == 1
    assert len(mine()) == 4
    after = ask(api, api.message(QUESTION, chat_id=chat), chat_id=chat)
    assert "<blockquote>" in after.params["text"]


def _sent_to(api: FakeBotAPI, chat: int, since: float) -> list[str]:
    return [
        c.params.get("text", "")
        for c in api.calls_to("sendMessage") + api.calls_to("editMessageText")
        if c.at >= since and str(c.params.get("chat_id")) == str(chat) and c.status == 200
    ]


def test_a_flood_of_commands_and_button_presses_holds_up_nobody_else(world: World) -> None:
    """300 /help and 300 presses of one button from one person (each reply waits for that
    chat's one message a second): the person gets a few replies and the rest are dropped
    before any handler, so the 256 updates the bot processes at once are never all theirs
    and someone else's question is answered meanwhile."""
    from talksbot.telegram.fairness import PER_PERSON

    api, _ = world
    flooder = {"id": 555, "is_bot": False, "first_name": "Flood"}
    answer = ask(api, api.message(QUESTION, chat_id=555, user=flooder), chat_id=555)
    more = api.callback(buttons(answer)["More results"], api.sent_message(answer))
    more["callback_query"]["from"] = flooder
    start = time.monotonic()
    for _ in range(300):
        api.push(api.message("/help", chat_id=555, user=flooder))
        api.push(more)
    other = {"id": 556, "is_bot": False, "first_name": "Bob"}
    call = ask(api, api.message(QUESTION, chat_id=556, user=other), chat_id=556)
    assert "two hours" in call.params["text"]
    wait_until(lambda: len(_sent_to(api, 555, start)) >= 1, 10, "the flooder's first reply")
    time.sleep(PER_PERSON + 1.5)  # one a second in a private chat: all they get is out by now
    assert 1 <= len(_sent_to(api, 555, start)) <= PER_PERSON


def test_a_groups_flood_is_capped_per_chat(world: World) -> None:
    """Many people of one group flooding /help: at most the chat's cap of replies wait for
    its window (20 messages a minute) and the rest are dropped; other chats are answered."""
    api, bot = world
    processor = bot.app.update_processor
    cap, processor.caps["chat"] = processor.caps["chat"], 3  # the test's own: replies 3 s apart
    try:
        start, dropped = time.monotonic(), processor.dropped
        for i in range(300):
            user = {"id": 10_000 + i, "is_bot": False, "first_name": f"Member {i}"}
            api.push(api.message("/help", chat_id=-555, chat_type="supergroup", user=user))
        call = ask(api, api.message(QUESTION, chat_id=557), chat_id=557)
        assert "two hours" in call.params["text"]
        wait_until(lambda: len(_sent_to(api, -555, start)) >= 3, 20, "the group's replies")
        wait_until(lambda: not processor.busy.get(("chat", -555)), 20, "the replies to end")
        # Three at a time: a fourth gets in only once one of them is out (3 s apart here).
        replies = len(_sent_to(api, -555, start))
        assert 3 <= replies <= 6
        assert processor.dropped - dropped == 300 - replies
    finally:
        processor.caps["chat"] = cap


def test_private_question_gets_cited_answer_with_buttons(world: World) -> None:
    api, _ = world
    call = ask(api, api.message(QUESTION), chat_id=42)
    text = call.params["text"]
    assert call.params["parse_mode"] == "HTML"
    assert "<blockquote>The second day of talks in Geneva ended after just two hours" in text
    assert 'href="https://example-news.org/world/2026/02/18/geneva-round-ends#:~:text=' in text
    assert "example-news.org</a> · 2026-02-18" in text
    check_html(text)
    data = list(buttons(call).values())
    assert any(b.startswith("ctx:") for b in data)
    assert any(b.startswith("fb:") and b.endswith(":1") for b in data)


def test_start_help_sources_latest(world: World) -> None:
    api, _ = world
    start = ask(api, api.message("/start"))
    assert "3 articles from 2 outlets" in start.params["text"]
    examples = start.params["reply_markup"]["inline_keyboard"]
    assert len(examples) == 3 and examples[0][0]["callback_data"] == "ex:0"
    assert "/ask" in ask(api, api.message("/help")).params["text"]
    sources = ask(api, api.message("/sources")).params["text"]
    assert "example-news.org" in sources and "2026-02-18 to 2026-02-20" in sources
    latest = ask(api, api.message("/latest")).params["text"]
    assert latest.index("Local truce") < latest.index("Geneva round")  # newest first
    check_html(latest)


def test_example_button_asks_the_example(world: World) -> None:
    api, _ = world
    start = ask(api, api.message("/start"))
    before = time.monotonic()
    api.push(api.callback("ex:0", api.sent_message(start)))
    reply = api.wait_for("sendMessage", lambda c: c.at >= before)
    assert "Budapest" in reply.params["text"]  # the example was asked (this corpus lacks it)


def test_button_answers_count_against_whoever_pressed(world: World) -> None:
    """In a group, one person pressing buttons again and again uses up their own three turns,
    not everyone's (the buttons sit under the bot's own message)."""
    api, bot = world
    from talksbot.telegram import questions

    start = ask(api, api.message("/start", chat_id=-217, chat_type="supergroup"), chat_id=-217)
    svc = bot.app.bot_data["services"]
    presser = (-217, USER["id"])

    async def hold() -> None:
        svc.asking[presser] += questions.MAX_ASKING

    asyncio.run_coroutine_threadsafe(hold(), bot._loop).result(timeout=10)
    before = time.monotonic()
    api.push(api.callback("ex:0", api.sent_message(start)))
    notice = api.wait_for("sendMessage", lambda c: c.at >= before)
    assert notice.params["text"] == questions.WAIT  # the presser is told to wait
    other = api.callback("ex:0", api.sent_message(start))
    other["callback_query"]["from"] = {**USER, "id": USER["id"] + 1}
    before = time.monotonic()
    api.push(other)
    reply = api.wait_for("sendMessage", lambda c: c.at >= before)
    assert "Budapest" in reply.params["text"]  # someone else is answered all the same


def test_a_private_chat_gets_a_hint_for_unknown_commands_and_anything_but_text(
    world: World,
) -> None:
    """Silence reads as a broken bot: an unknown command and a photo or sticker are told
    what works. A passage sent from inline mode (via the bot) is no question to answer."""
    api, _ = world
    unknown = ask(api, api.message("/foo bar", chat_id=559), chat_id=559)
    assert unknown.params["text"] == "I don't know /foo. /help lists what I can do."
    photo = api.message("", chat_id=559)
    del photo["message"]["text"]
    photo["message"]["photo"] = [{"file_id": "p", "file_unique_id": "p", "width": 9, "height": 9}]
    photo["message"]["caption"] = QUESTION
    time.sleep(1.1)  # Telegram's one message a second per chat
    assert "text only" in ask(api, photo, chat_id=559).params["text"]
    sticker = api.message("", chat_id=559)
    del sticker["message"]["text"]
    sticker["message"]["sticker"] = {
        "file_id": "s",
        "file_unique_id": "s",
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
        "type": "regular",
    }
    time.sleep(1.1)
    assert "text only" in ask(api, sticker, chat_id=559).params["text"]
    pasted = api.message(QUESTION, chat_id=559)
    pasted["message"]["via_bot"] = BOT
    start = time.monotonic()
    api.push(pasted)
    time.sleep(2.5)  # an answer would be out by now
    assert not _sent_to(api, 559, start)


def test_hostile_markup_in_the_question_is_escaped(world: World) -> None:
    api, _ = world
    hostile = (
        "the second day of talks in Geneva ended with no agreement <b>bold</b> & "
        '<a href="javascript:alert(1)">x</a> *md* [link](http://evil.example) </blockquote>'
    )
    text = ask(api, api.message(hostile)).params["text"]
    check_html(text)
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; &lt;a href=" in text
    assert "javascript:" not in text.replace('&lt;a href="javascript:', "")
    assert "&lt;/blockquote&gt;" in text


def test_a_4000_character_question_gets_a_short_clear_reply(world: World) -> None:
    api, _ = world
    text = ask(api, api.message("Geneva " * 570)).params["text"]
    assert "characters long; please keep it under 1,000" in text
    assert len(text) < 200


# -- buttons -------------------------------------------------------------------------------
def test_more_results_more_context_and_feedback(world: World) -> None:
    api, bot = world
    answer = ask(api, api.message("the second day of talks in Geneva ended with no agreement"))
    message = api.sent_message(answer)
    first = buttons(answer)
    # More results edits in the next citations, numbered on.
    more = ask(api, api.callback(first["More results"], message), method="editMessageText")
    assert "<b>[4]</b>" in more.params["text"]
    check_html(more.params["text"])
    page2 = buttons(more)
    assert "More context [4]" in page2 and "More context [1]" not in page2
    # More context edits in the sentences around a citation, on the page that shows it.
    ctx = ask(api, api.callback(page2["More context [4]"], message), method="editMessageText")
    assert "<b>[4]</b>" in ctx.params["text"] and "<b>[1]</b>" not in ctx.params["text"]
    check_html(ctx.params["text"])
    ctx = ask(api, api.callback(first["More context [1]"], message), method="editMessageText")
    assert "Negotiators from the U.S. and Ukraine met Russian officials" in ctx.params["text"]
    check_html(ctx.params["text"])
    # Thumbs up is stored with the question and the citations shown.
    ask(
        api,
        api.callback(first["👍"], message),
        method="answerCallbackQuery",
        text="Thanks for the feedback!",
    )
    rows = query(bot.settings.data_dir, "SELECT question, citations, vote FROM feedback")
    assert rows and rows[-1][0].startswith("the second day of talks") and rows[-1][2] == 1
    assert len(json.loads(rows[-1][1])) >= 1


def test_a_press_too_old_to_acknowledge_or_an_answer_gone_is_no_error(world: World) -> None:
    """Telegram refuses to acknowledge a press that waited too long (the bot was down or
    busy): the page is edited in all the same. An answer deleted since the press cannot be
    edited: nothing is sent, and in neither case is the presser sent an apology."""
    from tests.harness.telegram_rules import bad_request

    api, _ = world
    answer = ask(api, api.message(QUESTION, chat_id=558), chat_id=558)
    message, first = api.sent_message(answer), buttons(answer)
    too_old = "query is too old and response timeout expired or query id is invalid"
    api.fail_next("answerCallbackQuery", 400, bad_request(too_old))
    more = ask(api, api.callback(first["More results"], message), method="editMessageText")
    assert "<b>[4]</b>" in more.params["text"]
    start = time.monotonic()
    api.deleted.add((558, message["message_id"]))  # the answer deleted since the press
    api.push(api.callback(first["More context [1]"], message))
    wait_until(
        lambda: [c for c in api.calls_to("editMessageText") if c.at >= start], 20, "the edit"
    )
    time.sleep(1.5)  # an apology would be out by now (1 message a second per chat)
    assert not [
        c
        for c in api.calls_to("sendMessage")
        if c.at >= start and c.params.get("chat_id") in (558, "558")
    ]


def test_buttons_work_only_in_the_chat_of_their_answer(world: World) -> None:
    """Another chat replaying a user's button data on its own message (or an inline message)
    is told the button expired, and nothing is edited, stored or revealed."""
    api, bot = world
    answer = ask(api, api.message("the Geneva talks ended with no agreement", chat_id=42))
    mine = buttons(answer)
    key = mine["More results"].split(":")[1]
    assert len(key) >= 16 and not key.isdigit()  # an unguessable token, not a walkable id
    theirs = api.sent_message(ask(api, api.message("/help", chat_id=66), chat_id=66))
    votes = query(bot.settings.data_dir, "SELECT COUNT(*) FROM feedback")[0][0]
    edits = len(api.calls_to("editMessageText"))
    forged = [*mine.values(), "more:1:3", "ctx:1:1", "fb:1:1", f"more:{key}x:3"]
    for data in forged:
        update = api.callback(data, theirs)
        update["callback_query"]["from"] = {"id": 66, "is_bot": False, "first_name": "Eve"}
        expired = ask(api, update, method="answerCallbackQuery")
        assert "expired" in expired.params.get("text", ""), data
    inline = {
        "id": "cq-inline",
        "from": {"id": 66, "is_bot": False, "first_name": "Eve"},
        "chat_instance": "x",
        "inline_message_id": "AAAA",
        "data": mine["More results"],
    }
    for data in (mine["More results"], mine["👍"], "unsub:1", "ex:0", "about:1"):
        update = {"callback_query": {**inline, "id": f"cq-inline-{data}", "data": data}}
        answered = ask(
            api, update, method="answerCallbackQuery", callback_query_id=f"cq-inline-{data}"
        )
        if not data.startswith(("ex:", "about:")):
            assert "expired" in answered.params.get("text", ""), data
    assert len(api.calls_to("editMessageText")) == edits
    assert query(bot.settings.data_dir, "SELECT COUNT(*) FROM feedback")[0][0] == votes
    # The owner's buttons still work.
    more = ask(
        api, api.callback(mine["More results"], api.sent_message(answer)), method="editMessageText"
    )
    assert "<b>[4]</b>" in more.params["text"]


def test_digest_minutes_and_button_numbers_take_ascii_digits_only(world: World) -> None:
    api, _ = world
    reply = ask(api, api.message("/digest on ²", chat_id=77), chat_id=77)
    assert "Usage: /digest on [MINUTES]" in reply.params["text"]
    start = api.sent_message(ask(api, api.message("/start", chat_id=77), chat_id=77))
    for data in ("more:²:3", "ex:²", "unsub:٣"):
        ask(api, api.callback(data, start), method="answerCallbackQuery")
    assert not [c for c in api.calls if "something went wrong" in str(c.params.get("text"))]


# -- groups --------------------------------------------------------------------------------
def test_group_ask_command_replies_to_the_asker(world: World) -> None:
    api, _ = world
    update = api.message(f"/ask {QUESTION}", chat_id=-100, chat_type="supergroup")
    call = ask(api, update, chat_id=-100)
    assert "two hours" in call.params["text"]
    assert call.params["reply_parameters"]["message_id"] == update["message"]["message_id"]
    update = api.message(f"/ask@{BOT['username']} {QUESTION}", chat_id=-100, chat_type="supergroup")
    assert "two hours" in ask(api, update, chat_id=-100).params["text"]


def test_a_question_deleted_before_its_answer_is_still_answered(world: World) -> None:
    """A group that deletes commands (or an asker who deletes the question) still gets the
    answer: Telegram refuses a reply to a deleted message unless asked to send it anyway."""
    api, _ = world
    update = api.message(f"/ask {QUESTION}", chat_id=-101, chat_type="supergroup")
    api.deleted.add((-101, update["message"]["message_id"]))
    call = ask(api, update, chat_id=-101)
    assert "two hours" in call.params["text"]
    assert not [c for c in api.refused(400) if str(c.params.get("chat_id")) == "-101"]


def test_group_ignores_other_traffic_but_answers_mentions_and_replies(world: World) -> None:
    api, _ = world
    start = time.monotonic()
    api.push(api.message(QUESTION, chat_id=-200, chat_type="supergroup"))  # not for the bot
    api.push(api.message("/ask@some_other_bot hello", chat_id=-200, chat_type="supergroup"))
    pasted = api.message(QUESTION, chat_id=-200, chat_type="supergroup", reply_to=BOT_MESSAGE)
    pasted["message"]["via_bot"] = BOT  # a passage picked from inline mode, as a reply
    api.push(pasted)
    mention = api.message(f"@{BOT['username']} {QUESTION}", chat_id=-200, chat_type="supergroup")
    call = ask(api, mention, chat_id=-200)
    assert call.params["reply_parameters"]["message_id"] == mention["message"]["message_id"]
    reply = api.message(
        "prisoners exchanged mediated by the Emirates",
        chat_id=-200,
        chat_type="supergroup",
        reply_to=api.sent_message(call),
    )
    second = ask(api, reply, chat_id=-200)
    assert "157 prisoners" in second.params["text"]
    # Updates are fetched in order, and the two before the mention need no work: by the time
    # the mention and the reply are answered, they have been handled (or ignored).
    to_group = [
        c
        for c in api.calls_to("sendMessage")
        if c.at >= start and str(c.params["chat_id"]) == "-200"
    ]
    # Nothing for the unaddressed message, the other bot's command or the inline passage.
    assert len(to_group) == 2


def test_an_edited_question_or_command_is_not_answered_again(world: World) -> None:
    api, _ = world
    start = time.monotonic()
    for chat_id, chat_type, text in (
        (-210, "supergroup", f"@{BOT['username']} {QUESTION}"),
        (-210, "supergroup", f"/ask {QUESTION}"),
        (43, "private", QUESTION),
        (43, "private", "/sources"),
    ):
        edited = api.message(text, chat_id=chat_id, chat_type=chat_type)["message"]
        api.push({"edited_message": {**edited, "edit_date": edited["date"] + 1}})
    # Then a new question in each chat: answered, and the only message either chat gets.
    ask(api, api.message(f"/ask {QUESTION}", chat_id=-210, chat_type="supergroup"), chat_id=-210)
    ask(api, api.message(QUESTION, chat_id=43), chat_id=43)
    # An answer to an edit would have been sent by now (answers here take well under a second,
    # and the edits came first); give a late one time to show before counting.
    time.sleep(2)
    for chat_id in (-210, 43):
        sent = [
            c
            for c in api.calls_to("sendMessage")
            if c.at >= start and str(c.params["chat_id"]) == str(chat_id)
        ]
        assert len(sent) == 1, [c.params["text"][:60] for c in sent]


PRISONERS = "How many prisoners did Russia and Ukraine exchange?"


def edit(update: dict, text: str, n: int = 1) -> dict:
    """The ``edited_message`` update of a message pushed earlier, now reading ``text``."""
    message = {**update["message"], "text": text, "edit_date": update["message"]["date"] + n}
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    return {"edited_message": message}


def settled(api: FakeBotAPI, start: float, chat_id: int) -> tuple[list, list]:
    """The chat's sendMessage and editMessageText calls since ``start``, once none has come
    for two seconds (a late extra answer or edit would show by then)."""

    def calls() -> tuple[list, list]:
        return tuple(  # type: ignore[return-value]
            [
                c
                for c in api.calls_to(m)
                if c.at >= start and str(c.params["chat_id"]) == str(chat_id)
            ]
            for m in ("sendMessage", "editMessageText")
        )

    while True:
        before = calls()
        time.sleep(2)
        after = calls()
        if [len(x) for x in before] == [len(x) for x in after]:
            return after


def test_an_answered_question_once_edited_has_its_answer_edited_not_posted_again(
    world: World,
) -> None:
    api, _ = world
    for chat_id, chat_type, template in (
        (45, "private", "{}"),
        (-211, "supergroup", f"@{BOT['username']} {{}}"),
        (-212, "supergroup", "/ask {}"),
        (-213, "supergroup", "/ask\n{}"),  # the question on the next line
    ):
        start = time.monotonic()
        asked = api.message(template.format(PRISONERS), chat_id=chat_id, chat_type=chat_type)
        first = ask(api, asked, chat_id=chat_id)
        assert "157 prisoners" in first.params["text"]
        # The typo fixed (here: another question): the same answer message now answers it.
        redone = ask(
            api, edit(asked, template.format(QUESTION)), "editMessageText", chat_id=chat_id
        )
        assert str(redone.params["message_id"]) == str(first.result["message_id"])
        assert QUESTION in redone.params["text"] and "How many" not in redone.params["text"]
        assert "two hours" in redone.params["text"]
        check_html(redone.params["text"])
        assert buttons(redone)  # its buttons are the new answer's
        # Edited again without changing the question (spacing, say): nothing more.
        api.push(edit(asked, template.format(QUESTION) + "  ", 2))
        sent, edits = settled(api, start, chat_id)
        assert (len(sent), len(edits)) == (1, 1), chat_id


def test_a_private_question_opening_with_a_slash_is_answered_and_redone_when_edited(
    world: World,
) -> None:
    api, _ = world
    # "/r/ukraine: …" is no command (Telegram marks none): a question, answered and, edited,
    # redone like any other.
    asked = api.message(f"/r/ukraine: {PRISONERS}", chat_id=47)
    asked["message"]["entities"] = []
    first = ask(api, asked, chat_id=47)
    assert "157 prisoners" in first.params["text"]
    edited = edit(asked, f"/r/ukraine: {QUESTION}")
    edited["edited_message"]["entities"] = []
    redone = ask(api, edited, "editMessageText", chat_id=47)
    assert str(redone.params["message_id"]) == str(first.result["message_id"])
    assert "two hours" in redone.params["text"]


def test_edits_in_quick_succession_or_before_the_answer_end_with_the_last_question(
    world: World,
) -> None:
    api, _ = world
    # Edited before its first answer is out: that answer is redone to the edit.
    start = time.monotonic()
    asked = api.message(f"/ask {PRISONERS}", chat_id=-214, chat_type="supergroup")
    api.push(asked)
    api.push(edit(asked, f"/ask {QUESTION}"))
    sent, edits = settled(api, start, -214)
    assert len(sent) == 1 and QUESTION in ([*sent, *edits][-1]).params["text"]
    # Five quick edits (more than the three answers one person may have going): the reply
    # ends up answering the last one, not whichever answer finished last.
    start = time.monotonic()
    versions = [PRISONERS, QUESTION, "Who mediated the prisoner swap?", PRISONERS, QUESTION]
    for n, version in enumerate(versions, 2):
        api.push(edit(asked, f"/ask {version}", n))
    sent, edits = settled(api, start, -214)
    assert not sent and edits and QUESTION in edits[-1].params["text"]
    assert len({str(e.params["message_id"]) for e in edits}) == 1


def test_edits_that_stop_asking_the_bot_are_left_alone_and_a_deleted_reply_is_sent_again(
    world: World,
) -> None:
    api, _ = world
    start = time.monotonic()
    mention = api.message(f"@{BOT['username']} {PRISONERS}", chat_id=-215, chat_type="supergroup")
    ask(api, mention, chat_id=-215)
    command = api.message(f"/ask {PRISONERS}", chat_id=-215, chat_type="supergroup")
    ask(api, command, chat_id=-215)
    api.push(edit(mention, f"{QUESTION} (no mention now)"))
    api.push(edit(command, f"/ask@some_other_bot {QUESTION}"))
    assert settled(api, start, -215) == (api.calls_to("sendMessage")[-2:], [])
    # The bot's reply was deleted meanwhile: the edited question gets a new one.
    start = time.monotonic()
    api.fail_next(
        "editMessageText",
        400,
        {"ok": False, "error_code": 400, "description": "Bad Request: message to edit not found"},
    )
    again = ask(api, edit(command, f"/ask {QUESTION}", 3), chat_id=-215)
    assert "two hours" in again.params["text"]
    assert [c.status for c in api.calls_to("editMessageText") if c.at >= start] == [400]
    # The next edit goes to that new reply.
    later = ask(api, edit(command, f"/ask {PRISONERS}", 4), "editMessageText", chat_id=-215)
    assert str(later.params["message_id"]) == str(again.result["message_id"])


def test_an_edit_waits_for_the_askers_turn_off_any_handler_and_old_answers_are_left_alone(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    api, bot = world
    from talksbot.telegram import questions

    extra = questions.MAX_ASKING + 1
    asked = [
        api.message(f"/ask {PRISONERS}", chat_id=-216, chat_type="supergroup") for _ in range(extra)
    ]
    for update in asked:
        ask(api, update, chat_id=-216)
        time.sleep(1.1)  # the group's pace: one message a second
    # The asker has three answers going: their edits wait, without a "still answering" notice
    # and without keeping a handler busy (a flood of such edits once held every place the
    # library has for updates, stalling the bot for everyone).
    svc = bot.app.bot_data["services"]
    asker = (-216, USER["id"])

    async def hold(n: int) -> None:
        svc.asking[asker] += n

    async def end_turn() -> None:
        questions._end_turn(svc, asker)

    def run(coroutine: object) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, bot._loop).result(timeout=10)

    run(hold(questions.MAX_ASKING))
    start = time.monotonic()
    for update in asked:
        api.push(edit(update, f"/ask {QUESTION}"))
    assert settled(api, start, -216) == ([], [])
    assert bot.app.update_processor.current_concurrent_updates == 0
    # Their answers end: the first three edits go out, one per freed turn; a fourth edit
    # waiting is ignored, as a fourth question would be.
    for _ in range(questions.MAX_ASKING):
        run(end_turn())
    sent, edits = settled(api, start, -216)
    assert not sent and len(edits) == questions.MAX_ASKING
    assert all(QUESTION in e.params["text"] for e in edits)
    assert not svc.asking[asker] and not svc.deferred
    # An answer older than the window is not redone.
    monkeypatch.setattr(questions, "REDO_WINDOW", 0.0)
    start = time.monotonic()
    api.push(edit(asked[0], f"/ask {PRISONERS}", 2))
    assert settled(api, start, -216) == ([], [])


def test_an_edit_waiting_when_the_bot_stops_is_dropped_not_left_running() -> None:
    """Stopping, the library no longer awaits new tasks: an edit waiting for a turn then gets
    nothing (as an edit of an answer made before a restart), and no turn stays taken."""
    from types import SimpleNamespace

    from talksbot.telegram import questions

    started: list[object] = []
    application = SimpleNamespace(running=False, create_task=started.append)
    context = SimpleNamespace(application=application)
    asker = (-400, 42)
    svc = SimpleNamespace(
        asking=collections.Counter({asker: 1}),
        told_to_wait=set(),
        deferred={asker: {7: (object(), object(), context)}},
    )
    questions._end_turn(svc, asker)  # type: ignore[arg-type]
    assert not started and not svc.deferred and not svc.asking
    application.running = True  # running: the waiting edit is started
    svc.asking[asker] = 1
    svc.deferred = {asker: {7: (object(), object(), context)}}
    questions._end_turn(svc, asker)  # type: ignore[arg-type]
    assert len(started) == 1 and not svc.deferred
    started[0].close()  # the coroutine, never run here


def test_forum_topic_reply_stays_in_the_topic(world: World) -> None:
    api, _ = world
    update = api.message(f"/ask {QUESTION}", chat_id=-300, chat_type="supergroup", thread_id=77)
    call = ask(api, update, chat_id=-300)
    assert str(call.params["message_thread_id"]) == "77"


# -- inline mode ---------------------------------------------------------------------------
def test_inline_query_offers_cited_passages(world: World) -> None:
    api, _ = world
    call = ask(api, api.inline("second day of talks in Geneva"), method="answerInlineQuery")
    results = call.params["results"]
    assert 1 <= len(results) <= 5
    first = results[0]["input_message_content"]
    assert first["parse_mode"] == "HTML" and "<blockquote>" in first["message_text"]
    assert "two hours" in results[0]["title"] + first["message_text"]
    check_html(first["message_text"])


def test_one_persons_inline_queries_are_answered_one_at_a_time_the_latest_winning(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Telegram sends an inline query per keystroke. One person's typing must not queue an
    answer per keystroke ahead of everyone else: while one of theirs is answered, only their
    latest query waits; someone else's is answered meanwhile."""
    api, bot = world
    svc = bot.app.bot_data["services"]
    # The server records an answer before the bot has its response: an earlier test's handler
    # may still hold this person's turn, and would take the first query below as its next.
    wait_until(lambda: not svc.inline_waiting, 10, "earlier inline answers to finish")
    answer = svc.answer

    async def slow(question: str, k: int, offset: int = 0) -> object:
        await asyncio.sleep(1.0)
        return await answer(question, k, offset)

    monkeypatch.setattr(svc, "answer", slow)
    start = time.monotonic()
    typed = [api.inline("second day of talks in Geneva"[:n]) for n in range(8, 30, 4)]
    for update in typed:
        api.push(update)
    other = api.inline("prisoners exchanged")
    other["inline_query"]["from"] = {**USER, "id": USER["id"] + 1}
    api.push(other)
    wait_until(lambda: len([c for c in api.calls_to("answerInlineQuery") if c.at >= start]) >= 3)
    time.sleep(2.5)  # a third answer for the typist would show by now
    answered = [
        c.params["inline_query_id"] for c in api.calls_to("answerInlineQuery") if c.at >= start
    ]
    ids = [u["inline_query"]["id"] for u in typed]
    assert sorted(answered) == sorted([ids[0], ids[-1], other["inline_query"]["id"]])
    assert not svc.inline_waiting
    # A query Telegram refuses to take an answer for (too old by now) does not cost the
    # person their latest one.
    too_old = {"ok": False, "error_code": 400, "description": "Bad Request: query is too old"}
    api.fail_next("answerInlineQuery", 400, too_old)
    start = time.monotonic()
    typed = [api.inline("prisoners exchanged"[:n]) for n in (10, 14, 19)]
    for update in typed:
        api.push(update)
    wait_until(
        lambda: [c for c in api.calls_to("answerInlineQuery") if c.at >= start and c.status == 200]
    )
    time.sleep(2.5)
    calls = [c for c in api.calls_to("answerInlineQuery") if c.at >= start]
    assert [(c.params["inline_query_id"], c.status) for c in calls] == [
        (typed[0]["inline_query"]["id"], 400),
        (typed[-1]["inline_query"]["id"], 200),
    ]
    assert not svc.inline_waiting


# -- failures ------------------------------------------------------------------------------
def test_retry_after_is_waited_out_not_dropped(world: World) -> None:
    api, _ = world
    api.flood_next("sendMessage", retry_after=1)
    start = time.monotonic()
    call = ask(api, api.message(QUESTION, chat_id=43))
    attempts = [
        c for c in api.calls_to("sendMessage") if c.at >= start and str(c.params["chat_id"]) == "43"
    ]
    assert [c.status for c in attempts] == [429, 200]
    assert attempts[1].at - attempts[0].at >= 1.0
    assert "two hours" in call.params["text"]


def test_server_error_is_caught_and_the_user_told(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    api, _ = world
    api.fail_next(
        "sendMessage", 500, {"ok": False, "error_code": 500, "description": "Internal Server Error"}
    )
    update = api.message(QUESTION, chat_id=44)
    apology = ask(api, update, chat_id=44)
    assert "something went wrong" in apology.params["text"]
    # The operator can tell which update failed, where (never what it said).
    logged = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any(line.startswith("error while handling message ") for line in logged)
    assert any(line.endswith(" in chat 44") for line in logged)
    assert not any("Geneva" in line for line in logged)
    # The bot lives on.
    assert "two hours" in ask(api, api.message(QUESTION, chat_id=44), chat_id=44).params["text"]


# -- the real entry point, `python bot.py` ---------------------------------------------------
def test_buttons_work_after_a_restart_and_shutdown_is_clean(data_dir: Path) -> None:
    ingest(data_dir, CORPUS)
    with running_bot(data_dir) as (api, bot):
        answer = ask(api, api.message("the second day of talks in Geneva ended with no agreement"))
        first = buttons(answer)
        assert bot.stop(signal.SIGTERM) == 0
        bot.start()
        more = ask(
            api,
            api.callback(first["More results"], api.sent_message(answer)),
            method="editMessageText",
        )
        assert "<b>[4]</b>" in more.params["text"]
        assert bot.stop(signal.SIGINT) == 0
    log = bot.log.read_text()
    assert api.token not in log and "Traceback" not in log
    assert "talksbot ready as @talks_test_bot" in log  # startup is reported without -v


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_telegram_refusing_the_command_menu_at_start_does_not_stop_the_bot(
    data_dir: Path,
) -> None:
    """A 502 from setMyCommands (Telegram having a bad minute) costs the menu, not the bot:
    before, the bot exited and the push task it had started left tracebacks behind."""
    from tests.harness.bot_process import BotProcess

    ingest(data_dir, CORPUS)
    api = FakeBotAPI()
    bad_gateway = {"ok": False, "error_code": 502, "description": "Bad Gateway"}
    for _ in range(2):
        api.fail_next("setMyCommands", 502, bad_gateway)
    bot = BotProcess(data_dir, api, api.start(), "hash")
    try:
        bot.start()
        assert "two hours" in ask(api, api.message(QUESTION, chat_id=57)).params["text"]
        assert bot.stop(signal.SIGTERM) == 0
    finally:
        if bot.proc and bot.proc.poll() is None:
            bot.stop()
        api.stop()
    log = bot.log.read_text()
    assert "could not register the private command menu" in log
    assert "Traceback" not in log and "was destroyed" not in log


@pytest.mark.parametrize("configured", ["s3cret-token", None])
def test_typing_indicator_and_webhook_mode_with_secret(
    tmp_path: Path, data_dir: Path, configured: str | None
) -> None:
    """With a configured secret, and without one (a random secret is made and registered):
    either way a request without the secret Telegram was given gets 403 and is not handled."""
    ingest(data_dir, CORPUS)
    api = FakeBotAPI()
    base_url = api.start()
    port = free_port()
    env = cli_env(
        data_dir,
        TELEGRAM_BOT_TOKEN=api.token,
        TELEGRAM_API_BASE_URL=base_url,
        TELEGRAM_WEBHOOK_URL=f"http://127.0.0.1:{port}/telegram",
        TELEGRAM_WEBHOOK_LISTEN="127.0.0.1",
        TELEGRAM_WEBHOOK_PORT=str(port),
        TELEGRAM_TYPING_AFTER="0",
        TELEGRAM_WEBHOOK_MAX_CONNECTIONS="20",
        **({"TELEGRAM_WEBHOOK_SECRET": configured} if configured else {}),
    )
    log = tmp_path / "bot.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "bot.py")], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        hook = api.wait_for("setWebhook")
        assert hook.params["url"] == f"http://127.0.0.1:{port}/telegram"
        secret = hook.params.get("secret_token")
        if configured:
            assert secret == configured
        else:
            assert secret and len(secret) >= 32  # random, registered with Telegram
        update = {"update_id": 1, **api.message(QUESTION, chat_id=55)}

        def post(secret: str | None, body: bytes | None = None) -> int:
            headers = {"Content-Type": "application/json"}
            if secret is not None:
                headers["X-Telegram-Bot-Api-Secret-Token"] = secret
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/telegram",
                data=body or json.dumps(update).encode(),
                headers=headers,
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return response.status
            except urllib.error.HTTPError as exc:
                return exc.code

        for _ in range(100):  # the webhook server starts just after setWebhook
            try:
                status = post("wrong")
                break
            except urllib.error.URLError:
                time.sleep(0.1)
        assert status == 403
        assert post(None) == 403
        assert post(secret) == 200
        reply = api.wait_for("sendMessage", lambda c: str(c.params["chat_id"]) == "55")
        assert "two hours" in reply.params["text"]
        typing = api.calls_to("sendChatAction")
        assert typing and typing[0].params["action"] == "typing"
        assert typing[0].at <= reply.at
        assert [c for c in api.calls_to("sendMessage") if str(c.params["chat_id"]) == "55"] == [
            reply
        ]  # the update with the wrong secret was not handled

        def raw(head: str) -> str:
            """The status line answered to a request whose body is never sent: a refusal must
            come from the headers alone, the body unread."""
            with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                conn.sendall(f"{head}\r\nHost: 127.0.0.1\r\n\r\n".encode())
                return conn.recv(200).decode().split("\r\n")[0]

        huge = "POST /telegram HTTP/1.1\r\nContent-Length: 100000000"
        assert raw(huge).endswith("403 Forbidden")  # unsigned: 100 MB not waited for
        signed = f"\r\nX-Telegram-Bot-Api-Secret-Token: {secret}"
        assert raw(huge + signed).endswith("413 Request Entity Too Large")
        chunked = "POST /telegram HTTP/1.1\r\nTransfer-Encoding: chunked"
        assert " 411 " in raw(chunked + signed)
        assert " 405 " in raw("GET /telegram HTTP/1.1" + signed)
        update = {"update_id": 2, "message": "not a message"}
        assert post(secret) == 400
        nested = b'{"update_id": 3, "message": ' + b"[" * 5000 + b"]" * 5000 + b"}"
        assert post(secret, nested) == 400  # however malformed: refused, not an error
        assert " 413 " in raw("POST /telegram HTTP/1.1\r\nContent-Length: \u00b2" + signed)
        # Any other path too is refused from its headers, its body unread.
        assert " 404 " in raw("POST /elsewhere HTTP/1.1\r\nContent-Length: 1000000")
        # Refusals write nothing to the log: a request line is the sender's to fill.
        for _ in range(20):
            assert " 403 " in raw("POST /telegram?" + "Q" * 8000 + " HTTP/1.1")

        # Idle connections cannot use up the bot's file descriptors: beyond the cap a new one
        # is closed unanswered, and once they go the bot serves again.
        def answered() -> bool:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as extra:
                extra.sendall(b"GET /telegram HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                try:
                    return extra.recv(100) != b""
                except ConnectionResetError:
                    return False

        idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(20)]
        try:  # the bot accepts them as its loop gets to them
            assert wait_until(lambda: not answered(), timeout=10)
        finally:
            for conn in idle:
                conn.close()
        time.sleep(0.5)
        update = {"update_id": 4, **api.message(QUESTION, chat_id=56)}
        assert post(secret) == 200
        assert api.wait_for("sendMessage", lambda c: str(c.params["chat_id"]) == "56")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        api.stop()
    assert api.token not in log.read_text()
    assert secret not in log.read_text()
    assert "QQQQQQQQ" not in log.read_text()


def test_a_rejected_token_is_one_line_without_the_token(data_dir: Path) -> None:
    ingest(data_dir, CORPUS)
    api = FakeBotAPI()
    base_url = api.start()
    api.fail_next("getMe", 401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
    try:
        result = subprocess.run(
            [sys.executable, str(ROOT / "bot.py")],
            env=cli_env(data_dir, TELEGRAM_BOT_TOKEN=api.token, TELEGRAM_API_BASE_URL=base_url),
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        api.stop()
    assert result.returncode == 1
    assert "Telegram rejected the bot token" in result.stderr
    assert api.token not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_the_log_has_events_not_a_line_per_scheduled_job(data_dir: Path) -> None:
    """An operator reads the log for events; the scheduler's "Running job …" lines for the
    index check (every 2 s) and fan-out (every 5 s) would bury them (about 100 lines a minute)."""
    ingest(data_dir, CORPUS)
    with running_bot(data_dir, TALKSBOT_INDEX_POLL="0.2", TALKSBOT_FANOUT_INTERVAL="0.2") as (
        api,
        bot,
    ):
        ask(api, api.message("How long did the second day of talks in Geneva last?"))
        time.sleep(1.5)
        bot.stop()
    log = bot.log.read_text()
    assert "talksbot ready" in log
    assert "Running job" not in log and "executed successfully" not in log
    assert api.token not in log


def test_one_vote_per_person_and_answer(world: World) -> None:
    """Pressing 👍 again and again (a script can press hundreds of times) is one vote, and
    changing one's mind replaces it; another person's vote counts on its own."""
    api, bot = world
    question = "Who leads the Ukrainian delegation in Geneva?"
    update = api.message(f"/ask {question}", chat_id=-880, chat_type="supergroup")
    answer = ask(api, update, chat_id=-880)
    message, votes = api.sent_message(answer), buttons(answer)
    other = {"id": 43, "is_bot": False, "first_name": "Taras"}
    presses = [("👍", None)] * 5 + [("👎", None), ("👍", other)]
    for label, user in presses:
        update = api.callback(votes[label], message)
        if user:
            update["callback_query"]["from"] = user
        ask(api, update, method="answerCallbackQuery", text="Thanks for the feedback!")
    rows = query(
        bot.settings.data_dir,
        "SELECT user_id, vote FROM feedback WHERE question=? ORDER BY user_id",
        question,
    )
    assert rows == [(42, -1), (43, 1)]


def test_a_forged_page_on_a_context_button_is_expired_not_searched(world: World) -> None:
    """Real "More context" buttons carry the page that shows their citation; a page out of range
    (forged) once made the bot rank the question again for every page (ten answers' work per
    press). Only old three-part buttons search; a forged page just expires."""
    api, _ = world
    answer = ask(api, api.message("Who monitors the ceasefire line after the Geneva talks?"))
    message, real = api.sent_message(answer), buttons(answer)["More context [1]"]
    prefix, key, sentence, _page = real.split(":")
    for page in ("-1", "999"):
        forged = f"{prefix}:{key}:{sentence}:{page}"
        reply = ask(api, api.callback(forged, message), method="answerCallbackQuery")
        assert reply.params.get("text") == "This button has expired; please ask again."
    time.sleep(0.5)
    edits = [c for c in api.calls_to("editMessageText") if c.at >= answer.at]
    assert edits == []
