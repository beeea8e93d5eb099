"""Pushes under faults, floods and concurrency (issue 8, items 5-7 and 9): each test drives the
real deliverer or the real bot against the test Bot API server, which refuses with 429 whatever
exceeds Telegram's windows."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import os
import signal
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from telegram.ext import ExtBot
from telegram.request import HTTPXRequest

from index.store import Store
from talksbot.pushes.deliver import Deliverer
from talksbot.pushes.fanout import fan_out
from talksbot.telegram.pacer import Pacer
from tests.harness.bot_api import FakeBotAPI
from tests.harness.bot_process import BotProcess, running_bot
from tests.harness.chat import ask, buttons, query, wait_until
from tests.harness.data import CORPUS, ingest, run_cli
from tests.harness.in_process import app_bot
from tests.harness.stories import POWER

TODAY = dt.date.today().isoformat()


def story(
    folder: Path, name: str, published: str = TODAY, paragraphs: list[str] | None = None
) -> Path:
    """A story file: ``published`` '' for an undated one."""
    folder.mkdir(exist_ok=True)
    title = f"{name} - " + POWER[0]
    path = folder / f"{name}.md"
    path.write_text(
        f"---\ntitle: {title}\nurl: https://wire.example/{name}\n"
        + (f"published: {published}\n" if published else "")
        + "outlet: Wire Daily\n---\n\n"
        + "\n\n".join(paragraphs or [f"{name} reports: {p}" for p in POWER[1]])
        + "\n"
    )
    return path


@pytest.fixture
def api() -> FakeBotAPI:
    server = FakeBotAPI()
    server.base = server.start()
    yield server
    server.stop()


@pytest.fixture
async def bot(api: FakeBotAPI) -> AsyncIterator[ExtBot]:
    """The bot as the Application has it: one Bot, paced by the one pacer."""
    bot = ExtBot(
        api.token,
        base_url=api.base,
        rate_limiter=Pacer(),
        request=HTTPXRequest(connection_pool_size=64),
    )
    await bot.initialize()
    yield bot
    await bot.shutdown()


async def on_thread(fn, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN201
    return fn(*args, **kwargs)


async def until(predicate: Callable[[], object], timeout: float = 30.0, what: str = "") -> None:
    """Wait (without blocking the event loop) for a state, failing after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
def queued(data_dir: Path, tmp_path: Path) -> Callable[..., Store]:
    """A store with the fixture corpus, ``chats`` subscribed to all coverage and ``stories`` new
    stories fanned out to them."""
    opened: list[Store] = []

    def make(chats: list[int], stories: int = 1) -> Store:
        ingest(data_dir, CORPUS)
        store = Store(data_dir)
        opened.append(store)
        fan_out(store)
        for chat in chats:
            store.pushes.subscribe(chat, "", None)
        ingest(data_dir, *(story(tmp_path / "new", f"s{n}") for n in range(stories)))
        assert fan_out(store) == len(chats) * stories
        return store

    yield make
    for store in opened:
        store.close()


def migrated(old: int, new: int) -> dict:
    """Telegram's service message in a group upgraded to the supergroup ``new``."""
    return {
        "message": {
            "message_id": 1,
            "date": int(time.time()),
            "chat": {"id": old, "type": "group", "title": "Talks"},
            "from": {"id": 42, "is_bot": False, "first_name": "Olena"},
            "migrate_to_chat_id": new,
        }
    }


def accepted(api: FakeBotAPI, chat: int | None = None) -> list:
    return [
        c
        for c in api.calls_to("sendMessage")
        if c.status == 200 and (chat is None or int(c.params["chat_id"]) == chat)
    ]


async def deliver_until(deliverer: Deliverer, done: Callable[[], object], what: str) -> None:
    task = asyncio.create_task(deliverer.run_forever())
    try:
        await until(done, 60, what)
    finally:
        deliverer.stop()
        await task


# -- "one mark fails" ----------------------------------------------------------------------
async def test_one_failed_mark_or_send_never_stops_the_others_nor_resends(
    queued, api: FakeBotAPI, bot: ExtBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    chats = list(range(5000, 5040))
    store = queued(chats)
    victim = store.db.execute("SELECT id FROM deliveries WHERE chat_id=5007").fetchone()[0]
    real_mark, failures = store.pushes.mark, []

    def mark(delivery_id: int, status: str, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        if delivery_id == victim and status == "sent" and not failures:
            failures.append(delivery_id)
            raise sqlite3.OperationalError("database is locked")
        return real_mark(delivery_id, status, *args, **kwargs)

    monkeypatch.setattr(store.pushes, "mark", mark)
    api.blocked.add(5011)  # one send refused for good
    api.fail_next(
        "sendMessage", 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}
    )
    deliverer = Deliverer(bot, store, on_thread)
    await deliver_until(
        deliverer,
        lambda: store.pushes.counts() == {"sent": 39, "failed": 1},
        "every row recorded",
    )
    assert failures == [victim]  # the write did fail once, and was written again
    delivered = [int(c.params["chat_id"]) for c in accepted(api)]
    assert sorted(delivered) == [c for c in chats if c != 5011]  # each once, none lost
    assert api.refused() == []


# -- "six stories for one group" -----------------------------------------------------------
async def test_six_stories_for_one_group_keep_its_windows(
    queued, api: FakeBotAPI, bot: ExtBot
) -> None:
    store = queued([-300, 301], stories=6)
    deliverer = Deliverer(bot, store, on_thread)
    await deliver_until(deliverer, lambda: store.pushes.counts() == {"sent": 12}, "12 pushes")
    assert api.refused() == []  # no 429: nothing paused the other chats
    to_group = accepted(api, -300)
    assert len(to_group) == 6
    assert all(b.at - a.at >= 1.0 for a, b in itertools.pairwise(to_group))
    titles = [c.params["text"].split(" - ")[0][-2:] for c in to_group]
    assert titles == [f"s{n}" for n in range(6)]  # oldest first


# -- "ChatMigrated" ------------------------------------------------------------------------
async def test_chat_migrated_moves_subscriptions_and_queue(
    queued, api: FakeBotAPI, bot: ExtBot, data_dir: Path, tmp_path: Path
) -> None:
    store = queued([-400], stories=2)
    api.migrated[-400] = -100400
    deliverer = Deliverer(bot, store, on_thread)
    await deliver_until(deliverer, lambda: len(accepted(api, -100400)) == 2, "both at the new id")
    assert [c.status for c in api.calls_to("sendMessage")].count(400) == 1
    assert store.pushes.chat_subscriptions(-100400) and not store.pushes.chat_subscriptions(-400)
    assert store.pushes.counts() == {"sent": 2}
    ingest(data_dir, story(tmp_path / "new", "later"))
    assert fan_out(store) == 1
    pending = store.db.execute("SELECT chat_id FROM deliveries WHERE status='pending'")
    assert [r[0] for r in pending] == [-100400]  # later pushes go to the new id directly


# -- "backfilling 5,000 old articles" ------------------------------------------------------
def test_backfill_of_old_articles_pushes_nothing(
    data_dir: Path, tmp_path: Path, store: Store
) -> None:
    ingest(data_dir, CORPUS)
    fan_out(store)
    store.pushes.subscribe(1, "", None)
    old = [
        story(tmp_path / "old", f"old{n}", f"2019-{1 + n % 12:02d}-{1 + n % 28:02d}")
        for n in range(300)
    ]
    undated = story(tmp_path / "new", "undated", "")
    fresh = story(tmp_path / "new", "fresh", TODAY)
    ingest(data_dir, *old, undated, fresh)
    assert fan_out(store) == 2  # today's story and the undated one first seen now
    titles = sorted(r[0] for r in store.db.execute("SELECT body FROM deliveries"))
    assert any("fresh - " in t for t in titles) and any("undated - " in t for t in titles)
    # The window is configurable: a week-old story is in a 10-day window, not in the default.
    week_old = (dt.date.today() - dt.timedelta(days=7)).isoformat()
    ingest(data_dir, story(tmp_path / "new", "week", week_old))
    assert fan_out(store) == 0
    ingest(data_dir, story(tmp_path / "new", "week2", week_old))
    assert fan_out(store, max_age=10 * 86400) == 1


def test_unsubscribing_cancels_the_chats_queued_rows(queued) -> None:
    store = queued([71, 72], stories=2)
    assert store.pushes.unsubscribe(71) == 1
    assert store.pushes.counts() == {"cancelled": 2, "pending": 2}
    claimed = store.pushes.claim("me", 10)
    assert [d.chat_id for d in claimed] == [72]  # one row per chat at a time


# -- "two bot processes" -------------------------------------------------------------------
def test_two_bot_processes_one_sender_taken_over_after_kill_9(
    data_dir: Path, tmp_path: Path
) -> None:
    ingest(data_dir, CORPUS)
    chats = list(range(7000, 7030))
    query(data_dir, "SELECT 1")
    store = Store(data_dir)
    for chat in chats:
        store.pushes.subscribe(chat, "", None)
    store.close()
    env = {"TALKSBOT_FANOUT_INTERVAL": "0.3", "TALKSBOT_PUSH_LEASE_SECONDS": "2"}
    apis = [FakeBotAPI(), FakeBotAPI()]
    bots = [BotProcess(data_dir, api, api.start(), "hash", **env) for api in apis]
    bots[1].log = tmp_path / "bot2.log"

    def pushes_of(name: str) -> list[int]:
        return sorted(
            int(c.params["chat_id"])
            for api in apis
            for c in accepted(api)
            if c.params["text"].startswith("🆕") and f"{name} - " in c.params["text"]
        )

    try:
        for b in bots:
            b.start()
        assert run_cli(data_dir, "ingest", str(story(tmp_path / "new", "first"))).returncode == 0
        wait_until(lambda: len(pushes_of("first")) >= len(chats), 60, "first story everywhere")
        wait_until(lambda: query(data_dir, "SELECT DISTINCT status FROM deliveries") == [("sent",)])
        assert pushes_of("first") == chats  # once each, from one of the two processes
        holder = query(data_dir, "SELECT holder FROM leases WHERE name='pushes'")[0][0]
        pid = int(holder.split(":")[1])
        sender = next(b for b in bots if b.proc.pid == pid)
        other = next(b for b in bots if b is not sender)
        os.kill(pid, signal.SIGKILL)
        sender.proc.wait(10)
        assert run_cli(data_dir, "ingest", str(story(tmp_path / "new", "second"))).returncode == 0
        wait_until(lambda: len(pushes_of("second")) >= len(chats), 60, "second story everywhere")
        # Both stories reached every chat exactly once (the queue says so too, once the last
        # accepted send is marked: nothing left).
        assert pushes_of("first") == chats and pushes_of("second") == chats
        all_sent = [("sent", 2 * len(chats))]
        statuses = "SELECT status, COUNT(*) FROM deliveries GROUP BY status"
        wait_until(lambda: query(data_dir, statuses) == all_sent, 20, "every row marked sent")
        assert pushes_of("first") == chats and pushes_of("second") == chats
        new_holder = query(data_dir, "SELECT holder FROM leases WHERE name='pushes'")[0][0]
        assert int(new_holder.split(":")[1]) == other.proc.pid
        # The process that did not send answered questions all along.
        reply = ask(other.api, other.api.message("/sources", chat_id=42), chat_id=42)
        assert "articles" in reply.params["text"]
    finally:
        for b in bots:
            if b.proc and b.proc.poll() is None:
                b.stop()
        for api in apis:
            api.stop()


# -- "600 questions at 30/s" ---------------------------------------------------------------
def test_questions_during_a_fan_out_all_answered_without_a_429(
    data_dir: Path, tmp_path: Path
) -> None:
    ingest(data_dir, CORPUS)
    subscribers = list(range(8000, 8120))
    store = Store(data_dir)
    for chat in subscribers:
        store.pushes.subscribe(chat, "", None)
    store.close()
    askers = list(range(9000, 9060))
    with running_bot(data_dir, TALKSBOT_FANOUT_INTERVAL="0.3") as (api, _):
        assert run_cli(data_dir, "ingest", str(story(tmp_path / "new", "fanned"))).returncode == 0
        api.wait_for("sendMessage", lambda c: c.params.get("text", "").startswith("🆕"))
        for chat in askers:  # 60 people's questions at once, in the middle of the fan-out
            person = {"id": chat, "is_bot": False, "first_name": f"Asker {chat}"}
            api.push(api.message("How long did the second day of talks last?", chat, user=person))

        def sent_to(chats: list[int]) -> list[int]:
            return sorted(
                int(c.params["chat_id"]) for c in accepted(api) if int(c.params["chat_id"]) in chats
            )

        wait_until(lambda: len(sent_to(askers)) >= len(askers), 60, "every question answered")
        wait_until(lambda: len(sent_to(subscribers)) >= len(subscribers), 60, "every push")
        assert api.refused() == []  # no 429: answers and pushes share one pacer
        assert sent_to(askers) == askers and sent_to(subscribers) == subscribers  # each once


# -- forum topics ---------------------------------------------------------------------------
def test_a_forum_topic_subscription_is_pushed_to_its_topic(data_dir: Path, tmp_path: Path) -> None:
    ingest(data_dir, CORPUS)
    with running_bot(data_dir, TALKSBOT_FANOUT_INTERVAL="0.3") as (api, _):
        update = api.message("/subscribe", chat_id=-600, chat_type="supergroup", thread_id=7)
        assert "Subscribed" in ask(api, update, chat_id=-600).params["text"]
        assert run_cli(data_dir, "ingest", str(story(tmp_path / "new", "topic"))).returncode == 0
        push = api.wait_for("sendMessage", lambda c: c.params.get("text", "").startswith("🆕"))
        assert int(push.params["chat_id"]) == -600
        assert int(push.params["message_thread_id"]) == 7


@pytest.mark.parametrize(
    ("refusal", "kept"), [("message thread not found", None), ("TOPIC_CLOSED", 7)]
)
def test_a_deleted_or_closed_forum_topics_pushes_go_to_the_general_topic(
    data_dir: Path, tmp_path: Path, refusal: str, kept: int | None
) -> None:
    """Subscribed in a forum topic the group deleted (or closed) since: Telegram refuses
    every push there, so they go to the chat's general topic instead of each story failing
    for good, unseen. A deleted topic's subscription moves there; a closed one, which can be
    reopened, keeps its topic (each story tries it first)."""
    ingest(data_dir, CORPUS)
    with app_bot(data_dir, talksbot_fanout_interval=0.3) as (api, _):
        update = api.message("/subscribe", chat_id=-601, chat_type="supergroup", thread_id=7)
        assert "Subscribed" in ask(api, update, chat_id=-601).params["text"]
        api.refused_topics[-601, 7] = refusal
        for name in ("topic-one", "topic-two"):
            start = time.monotonic()
            ingest(data_dir, story(tmp_path / "new", name))
            push = api.wait_for(
                "sendMessage",
                lambda c, start=start: c.at >= start and c.params["text"].startswith("🆕"),
            )
            assert int(push.params["chat_id"]) == -601
            assert not push.params.get("message_thread_id")
        tries = [c for c in api.calls_to("sendMessage") if c.params["text"].startswith("🆕")]
        topic_tries = 1 if kept is None else 2  # a deleted topic is tried once
        assert sorted(c.status for c in tries) == [200, 200] + [400] * topic_tries
        assert query(data_dir, "SELECT thread_id FROM subscriptions") == [(kept,)]
        sent = "SELECT COUNT(*) FROM deliveries WHERE status='sent'"
        wait_until(lambda: query(data_dir, sent) == [(2,)], 10, "both pushes recorded as sent")


async def test_a_failed_move_out_of_a_deleted_topic_never_loses_the_push(
    data_dir: Path, tmp_path: Path, api: FakeBotAPI, bot: ExtBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest(data_dir, CORPUS)
    store = Store(data_dir)
    try:
        fan_out(store)
        store.pushes.subscribe(-602, "", None, thread_id=7)
        ingest(data_dir, story(tmp_path / "new", "locked"))
        assert fan_out(store) == 1
        api.refused_topics[-602, 7] = "message thread not found"

        def locked(*_args: object) -> int:
            raise sqlite3.OperationalError("database is locked")

        monkeypatch.setattr(store.pushes, "leave_thread", locked)
        deliverer = Deliverer(bot, store, on_thread)
        await deliver_until(deliverer, lambda: store.pushes.counts() == {"sent": 1}, "sent")
        assert [c.params.get("message_thread_id") for c in accepted(api, -602)] == [None]
        assert store.pushes.chat_subscriptions(-602)  # still there, still in its topic
        thread = store.db.execute("SELECT thread_id FROM subscriptions").fetchone()[0]
        assert thread == 7
    finally:
        store.close()


# -- retention ------------------------------------------------------------------------------
def test_old_answers_feedback_and_finished_pushes_are_pruned(data_dir: Path) -> None:
    ingest(data_dir, CORPUS)
    store = Store(data_dir)
    old, recent = time.time() - 31 * 86400, time.time() - 29 * 86400
    for when in (old, recent):
        answer = store.answers.save(1, f"asked at {when}", [1])
        store.answers.add_feedback(1, 42, f"asked at {when}", [1], 1)
        with store.db:
            store.db.execute("UPDATE answers SET created_at=? WHERE token=?", (when, answer))
            store.db.execute(
                "UPDATE feedback SET created_at=? WHERE question=?", (when, f"asked at {when}")
            )
            for article, status in enumerate(("sent", "failed", "cancelled", "digest"), 1):
                store.db.execute(
                    "INSERT INTO deliveries(chat_id, article_id, body, created_at, sent_at, "
                    "status) VALUES (?, ?, '{}', ?, ?, ?)",
                    (int(when), article, when, when, status),
                )
    store.close()
    with running_bot(data_dir, TALKSBOT_RETENTION_DAYS="30"):
        wait_until(
            lambda: query(data_dir, "SELECT COUNT(*) FROM answers") == [(1,)], 30, "old answer gone"
        )
        wait_until(lambda: query(data_dir, "SELECT COUNT(*) FROM deliveries") == [(5,)], 30, "rows")
    assert query(data_dir, "SELECT created_at FROM answers") == [(recent,)]
    assert query(data_dir, "SELECT created_at FROM feedback") == [(recent,)]
    # Finished rows go when old; a row still queued stays, whatever its age.
    assert sorted(query(data_dir, "SELECT status, created_at FROM deliveries")) == [
        ("cancelled", recent),
        ("digest", old),
        ("digest", recent),
        ("failed", recent),
        ("sent", recent),
    ]


def test_an_existing_store_gains_the_lease_table_and_claim_columns(data_dir: Path) -> None:
    from index.schema import MIGRATIONS, _statements

    data_dir.mkdir(parents=True)
    db = sqlite3.connect(data_dir / "talksbot.db")
    for script in MIGRATIONS[:2]:  # a store made before pushes had leases
        for statement in _statements(script):
            db.execute(statement)
    db.execute("PRAGMA user_version = 2")
    db.commit()
    db.close()
    with Store(data_dir) as store:
        assert store.leases.acquire("pushes", "a", 10)
        assert not store.leases.acquire("pushes", "b", 10)  # held by a
        assert store.leases.acquire("pushes", "b", 10, now=time.time() + 11)  # a stopped renewing
        columns = {r[1] for r in store.db.execute("PRAGMA table_info(deliveries)")}
        assert {"lease_holder", "lease_until"} <= columns


async def test_a_long_digest_goes_out_in_several_messages_each_story_once(
    data_dir: Path, tmp_path: Path, store: Store, api: FakeBotAPI, bot: ExtBot
) -> None:
    ingest(data_dir, CORPUS)
    fan_out(store)
    store.pushes.subscribe(77, "", None)
    store.pushes.set_digest(77, 30)
    names = [f"d{n:02d}-{'long-path-segment-' * 10}" for n in range(20)]  # a full digest
    ingest(data_dir, *(story(tmp_path / "digest", name) for name in names))
    assert fan_out(store) == 20
    with store.db:  # the interval passes
        store.db.execute("UPDATE chat_settings SET last_digest_at = 0 WHERE chat_id = 77")
    assert await Deliverer(bot, store, on_thread).deliver_due() == 1
    messages = [c.params["text"] for c in accepted(api, 77)]
    assert len(messages) >= 2 and api.refused(400) == []  # each one Telegram accepts
    listed = [name[:3] for text in messages for name in names if f"/{name}" in text]
    assert sorted(listed) == sorted(n[:3] for n in names)  # every story once
    assert store.pushes.counts() == {"sent": 20}


def test_a_group_upgraded_to_a_supergroup_takes_its_subscriptions_along(data_dir: Path) -> None:
    ingest(data_dir, CORPUS)
    with Store(data_dir) as store:
        store.pushes.subscribe(-700, "", None)
        store.pushes.subscribe(-700, "ceasefire terms", None)
    with app_bot(data_dir) as (api, _):
        api.push(migrated(-700, -100700))
        wait_until(
            lambda: (
                query(data_dir, "SELECT DISTINCT chat_id FROM subscriptions WHERE active=1")
                == [(-100700,)]
            ),
            what="subscriptions at the new id",
        )


def test_answer_buttons_keep_working_in_the_upgraded_group(data_dir: Path) -> None:
    """Telegram moves a group's history into its supergroup: buttons under answers given in the
    group arrive from the new chat id, and must not then say they have expired."""
    ingest(data_dir, CORPUS)
    with app_bot(data_dir) as (api, _):
        question = "/ask How long did the second day of talks in Geneva last?"
        answer = ask(api, api.message(question, chat_id=-701, chat_type="group"), chat_id=-701)
        api.push(migrated(-701, -100701))
        wait_until(
            lambda: query(data_dir, "SELECT chat_id FROM answers") == [(-100701,)],
            what="the answer at the new id",
        )
        moved = {**api.sent_message(answer), "chat": {"id": -100701, "type": "supergroup"}}
        vote = next(d for d in buttons(answer).values() if d.startswith("fb:") and d.endswith(":1"))
        reply = ask(api, api.callback(vote, moved), "answerCallbackQuery")
        assert reply.params.get("text") == "Thanks for the feedback!"


# -- digests that Telegram refuses ---------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "payload", "left"),
    [
        # refused for good (say the forum topic was deleted): given up, not resent every second
        (
            400,
            {
                "ok": False,
                "error_code": 400,
                "description": "Bad Request: message thread not found",
            },
            "failed",
        ),  # noqa: E501
        # a server error: tried again after a backoff, not at once
        (502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}, "digest"),
    ],
)
async def test_a_refused_digest_is_not_resent_in_a_loop(
    data_dir: Path,
    tmp_path: Path,
    api: FakeBotAPI,
    bot: ExtBot,
    status: int,
    payload: dict,
    left: str,
) -> None:
    ingest(data_dir, CORPUS)
    store = Store(data_dir)
    try:
        fan_out(store)
        store.pushes.subscribe(6100, "", None)
        store.pushes.set_digest(6100, 5)
        with store.db:  # its interval has passed
            store.db.execute("UPDATE chat_settings SET last_digest_at=0")
        ingest(data_dir, *(story(tmp_path / "new", f"d{n}") for n in range(3)))
        assert fan_out(store) == 3
        for _ in range(20):
            api.fail_next("sendMessage", status, payload)
        deliverer = Deliverer(bot, store, on_thread)
        task = asyncio.create_task(deliverer.run_forever())
        await until(lambda: api.calls_to("sendMessage"), 10, "the digest tried")
        await asyncio.sleep(4)  # several delivery rounds
        deliverer.stop()
        await task
        tries = [c.at for c in api.calls_to("sendMessage")]
        if left == "failed":
            assert len(tries) == 1
        else:  # 2 s, then 4 s …: at most twice in these 4 s, never back to back
            assert len(tries) <= 2 and all(b - a >= 1.9 for a, b in itertools.pairwise(tries))
        assert store.pushes.counts() == {left: 3}
    finally:
        store.close()
