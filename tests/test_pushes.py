"""Subscriptions and pushes: fan-out rules, and the running bot delivering them."""

from __future__ import annotations

import datetime as dt
import json
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from index.embed import DEFAULT_BACKEND, HashEmbedder
from index.store import Store
from talksbot.pushes.deliver import Deliverer
from talksbot.pushes.fanout import fan_out
from talksbot.pushes.subscriptions import (
    MAX_SUBSCRIPTIONS,
    SubscriptionError,
    check_digest_minutes,
    normalise_topic,
)
from talksbot.render import push_html
from tests.harness.bot_api import FakeBotAPI
from tests.harness.bot_process import running_bot
from tests.harness.chat import ask, query, wait_until
from tests.harness.data import CORPUS, ingest, run_cli
from tests.harness.in_process import app_bot
from tests.harness.stories import POWER, SANCTIONS
from tests.harness.web import FakeWeb, article_html, rss

TODAY = dt.date.today().isoformat()  # pushes are for fresh stories only


def write_story(folder: Path, name: str, story: tuple, outlet: str = "Atomic Watch") -> Path:
    title, paragraphs = story
    path = folder / f"{name}.md"
    path.write_text(
        f"---\ntitle: {title}\nurl: https://{outlet.replace(' ', '').lower()}.example/{name}\n"
        f"published: {TODAY}\noutlet: {outlet}\n---\n\n" + "\n\n".join(paragraphs) + "\n"
    )
    return path


@pytest.mark.parametrize(
    ("topic", "ok"),
    [("", True), ("x", False), ("ab", False), ("ceasefire terms", True), ("y" * 500, False)],
)
def test_topic_bounds(topic: str, ok: bool) -> None:
    if ok:
        assert normalise_topic(topic) == topic
    else:
        with pytest.raises(SubscriptionError, match="at least 3|under 100"):
            normalise_topic(topic)


@pytest.mark.parametrize(
    "topic",
    [
        "\u200b\u200b\u200b",
        "???",
        "— – —",
        "\u202e\u202e\u202e _",
        "\u3164\u3164\u3164",
        "\u115f\u1160\uffa0",
    ],
)
def test_a_topic_without_words_is_refused_not_taken_for_all_coverage(topic: str) -> None:
    with pytest.raises(SubscriptionError, match="needs words"):
        normalise_topic(topic)


def test_a_topics_invisible_characters_are_dropped() -> None:
    assert normalise_topic("cease\u200bfire\u2060 \u202eterms") == "ceasefire terms"


def test_a_topic_is_one_subscription_whatever_its_case(store: Store) -> None:
    assert store.pushes.subscribe(1, "Ceasefire terms", None)
    assert not store.pushes.subscribe(1, "CEASEFIRE TERMS", None)
    assert store.pushes.chat_subscriptions(1) == [(1, "Ceasefire terms")]
    assert store.pushes.unsubscribe(1, "ceasefire Terms") == 1
    assert store.pushes.chat_subscriptions(1) == []
    assert store.pushes.subscribe(1, "ceasefire terms", None)  # re-activated, as typed before
    assert [t for _, t in store.pushes.chat_subscriptions(1)] == ["Ceasefire terms"]


def test_topics_stored_before_they_were_cleaned_are_found(store: Store) -> None:
    """Rows from before topics were cleaned and compared whatever their case: two active
    subscriptions that read the same are both moved, and both retired, by what is typed."""
    with store.db:
        for topic in ("cease\u200bfire", "Ceasefire"):
            store.db.execute(
                "INSERT INTO subscriptions(chat_id, topic, created_at) VALUES (2, ?, 0)", (topic,)
            )
    assert not store.pushes.subscribe(2, "CEASEFIRE", None, thread_id=9)
    threads = "SELECT thread_id FROM subscriptions WHERE chat_id=2"
    assert [tuple(r) for r in store.db.execute(threads)] == [(9,), (9,)]
    assert store.pushes.unsubscribe(2, "ceasefire") == 2


def test_fan_out_rules(data_dir: Path, tmp_path: Path, store: Store) -> None:
    ingest(data_dir, CORPUS)
    assert fan_out(store) == 0  # the first run only sets the watermark: no backlog
    embedder = HashEmbedder()
    power_sentence = POWER[1][1]
    assert store.pushes.subscribe(1, "", None)
    assert not store.pushes.subscribe(1, "", None)  # already active
    store.pushes.subscribe(2, "repairs during ceasefire", embedder.embed([power_sentence])[0])
    store.pushes.subscribe(3, "tanker sanctions", embedder.embed([SANCTIONS[1][0]])[0])
    store.pushes.subscribe(4, "", None)
    assert store.pushes.unsubscribe(4) == 1
    folder = tmp_path / "new"
    folder.mkdir()
    ingest(data_dir, write_story(folder, "power", POWER))
    assert fan_out(store) == 2  # chat 1 (all) and chat 2 (topic); 3 off topic; 4 gone
    assert fan_out(store) == 0  # nothing twice
    rows = store.db.execute("SELECT chat_id, body FROM deliveries ORDER BY chat_id").fetchall()
    assert [r[0] for r in rows] == [1, 2]
    body = json.loads(rows[1][1])
    assert body["topic"] == "repairs during ceasefire"
    assert power_sentence in [p["text"] for p in body["passages"]]
    assert len(body["passages"]) <= 2
    html = push_html(body)
    assert html.startswith("🆕 <b><a href=") and "<blockquote>" in html
    # A subscription made after a story arrived does not get that story.
    store.pushes.subscribe(5, "", None)
    ingest(data_dir, write_story(folder, "sanctions", SANCTIONS, outlet="Brussels Desk"))
    assert fan_out(store) == 3  # chats 1, 3 and 5, not 2 (off topic)


def fanned_out_and_sent(data_dir: Path) -> bool:
    """Every stored story fanned out and no push waiting."""
    mark = query(data_dir, "SELECT value FROM meta WHERE key='fanout_article_id'")
    latest = query(data_dir, "SELECT MAX(id) FROM articles")[0][0]
    pending = query(data_dir, "SELECT COUNT(*) FROM deliveries WHERE status='pending'")[0][0]
    return bool(mark) and int(mark[0][0]) == latest and pending == 0


def subscriptions(data_dir: Path) -> dict[int, int]:
    return dict(query(data_dir, "SELECT chat_id, active FROM subscriptions"))


@pytest.mark.model
def test_subscribe_new_feed_entry_one_push_per_chat(
    data_dir: Path, model_cache: Path, web: FakeWeb
) -> None:
    env = {"TALKSBOT_MODEL_CACHE": str(model_cache), "TALKSBOT_FETCH_ALLOW_HOSTS": "127.0.0.1"}
    assert run_cli(data_dir, "ingest", str(CORPUS), backend=DEFAULT_BACKEND, **env).returncode == 0
    feed = web.put("/feed.xml", rss([]), content_type="application/rss+xml")
    assert run_cli(data_dir, "feeds", "add", feed, backend=DEFAULT_BACKEND, **env).returncode == 0
    with running_bot(
        data_dir, DEFAULT_BACKEND, TALKSBOT_FEED_INTERVAL="1", TALKSBOT_FANOUT_INTERVAL="0.5", **env
    ) as (api, _):
        for chat, command in [
            (101, "/subscribe"),
            (102, "/subscribe nuclear plant repairs"),
            (103, "/subscribe oil tanker sanctions"),
            (104, "/subscribe"),
        ]:
            assert (
                "Subscribed"
                in ask(api, api.message(command, chat_id=chat), chat_id=chat).params["text"]
            )
        too_short = ask(api, api.message("/subscribe x", chat_id=105), chat_id=105)
        assert "at least 3" in too_short.params["text"]
        api.blocked.add(104)
        # A new story appears in the feed, then copies of it under other URLs and outlets.
        title, paragraphs = POWER
        page = web.put("/world/power", article_html(title, "Atomic Watch", TODAY, paragraphs))
        web.put("/feed.xml", rss([("Power", page)]), content_type="application/rss+xml")
        first = api.wait_for(
            "sendMessage",
            lambda c: str(c.params["chat_id"]) == "101" and "🆕" in c.params["text"],
            timeout=60,
        )
        api.wait_for(
            "sendMessage",
            lambda c: str(c.params["chat_id"]) == "102" and "🆕" in c.params["text"],
            timeout=30,
        )
        reprint = web.put("/wire/9", article_html(title, "Wire Daily", TODAY, paragraphs))
        web.put(
            "/feed.xml",
            rss([("Power", page), ("Again", page + "?utm_source=rss"), ("Reprint", reprint)]),
            content_type="application/rss+xml",
        )
        # Wait on the store, not the clock: every entry of the feed taken, every stored story
        # fanned out, and nothing left to send.
        wait_until(
            lambda: query(data_dir, "SELECT COUNT(*) FROM feed_entries") == [(3,)],
            60,
            "the feed's three entries taken",
        )
        wait_until(lambda: fanned_out_and_sent(data_dir), 30, "fan-out and delivery done")
        pushes_sent = [
            c
            for c in api.calls_to("sendMessage")
            if c.status == 200 and "🆕" in c.params.get("text", "")
        ]
        assert sorted(int(c.params["chat_id"]) for c in pushes_sent) == [101, 102]
        text = first.params["text"]
        host = web.base.removeprefix("http://")
        assert title in text and f"{host} · {TODAY}" in text and "<blockquote>" in text
        buttons = [
            b["text"] for row in first.params["reply_markup"]["inline_keyboard"] for b in row
        ]
        assert buttons == ["Ask about this", "Unsubscribe"]
        # The chat that blocked the bot is retired, not retried.
        assert subscriptions(data_dir)[104] == 0
        assert (
            len(
                [
                    c
                    for c in api.calls_to("sendMessage")
                    if str(c.params["chat_id"]) == "104" and c.status == 403
                ]
            )
            == 1
        )
        # "Ask about this" answers about the story; "Unsubscribe" ends the subscription.
        message = api.sent_message(first)
        about = ask(
            api,
            api.callback(
                first.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"], message
            ),
            chat_id=101,
        )
        assert "nuclear" in about.params["text"].lower()
        unsub = first.params["reply_markup"]["inline_keyboard"][0][1]["callback_data"]
        ask(api, api.callback(unsub, message), method="answerCallbackQuery", text="Unsubscribed.")
        assert subscriptions(data_dir)[101] == 0
        listing = ask(api, api.message("/subscriptions", chat_id=102), chat_id=102)
        assert "nuclear plant repairs" in listing.params["text"]


def delivered_to(api: FakeBotAPI) -> list[int]:
    return [int(c.params["chat_id"]) for c in api.calls_to("sendMessage") if c.status == 200]


def test_restart_mid_delivery_and_429_storm(data_dir: Path, tmp_path: Path) -> None:
    ingest(data_dir, CORPUS)
    chats = list(range(5000, 5040))
    with Store(data_dir) as store:
        for chat in chats:
            store.pushes.subscribe(chat, "", None)
    folder = tmp_path / "new"
    folder.mkdir()
    with running_bot(data_dir, TALKSBOT_FANOUT_INTERVAL="0.3", TELEGRAM_PUSH_RATE="10") as (
        api,
        bot,
    ):
        for _ in range(4):  # a 429 storm in the middle of the run
            api.flood_next("sendMessage", retry_after=1)
        # A story ingested by another process while the bot runs.
        assert run_cli(data_dir, "ingest", str(write_story(folder, "s", SANCTIONS))).returncode == 0
        api.wait_for(
            "sendMessage", lambda c: c.status == 200 and "🆕" in c.params["text"], timeout=30
        )
        wait_until(lambda: len(delivered_to(api)) >= 5, 30, "some pushes delivered")
        assert bot.stop(signal.SIGTERM) == 0  # mid-delivery
        delivered = {
            int(c.params["chat_id"]) for c in api.calls_to("sendMessage") if c.status == 200
        }
        assert 0 < len(delivered) < len(chats)
        bot.start()
        wait_until(lambda: set(delivered_to(api)) >= set(chats), 60, "every chat reached")
        ok = delivered_to(api)
        assert sorted(ok) == chats  # every chat exactly once: nothing lost, nothing twice
        assert len([c for c in api.calls_to("sendMessage") if c.status == 429]) == 4
        # Each row is marked just after Telegram accepted its message: wait for the last marks.
        wait_until(
            lambda: (
                not query(
                    data_dir,
                    "SELECT 1 FROM deliveries WHERE status IN ('pending', 'claimed', 'sending')",
                )
            ),
            10,
            "the last sends marked",
        )
        assert query(data_dir, "SELECT status, COUNT(*) FROM deliveries GROUP BY status") == [
            ("sent", len(chats))
        ]


def test_group_subscriptions_need_an_admin(data_dir: Path) -> None:
    ingest(data_dir, CORPUS)
    with app_bot(data_dir) as (api, _):
        for status, expected in [
            ("member", "Only this group's administrators"),
            ("administrator", "Subscribed"),
        ]:
            api.member_status = status
            reply = ask(
                api,
                api.message("/subscribe ceasefire terms", chat_id=-900, chat_type="supergroup"),
                chat_id=-900,
            )
            assert expected in reply.params["text"]
        assert subscriptions(data_dir) == {-900: 1}


def test_topic_vectors_are_stored(data_dir: Path, store: Store) -> None:
    vector = np.arange(4, dtype=np.float32)
    store.pushes.subscribe(1, "abc", vector)
    blob = query(data_dir, "SELECT vector FROM subscriptions")[0][0]
    assert np.array_equal(np.frombuffer(blob, dtype=np.float32), vector)
    assert np.array_equal(store.pushes.subscription_vector(1), vector)


def test_admin_ingest_and_feeds_from_telegram(data_dir: Path, web: FakeWeb) -> None:
    ingest(data_dir, CORPUS)
    outsider = {"id": 7, "is_bot": False, "first_name": "Eve"}
    with app_bot(
        data_dir,
        telegram_admin_ids=[42],
        talksbot_fanout_interval=0.3,
        talksbot_fetch_allow_hosts="127.0.0.1",
    ) as (api, _):
        title, paragraphs = SANCTIONS
        page = web.put("/s", article_html(title, "Brussels Desk", TODAY, paragraphs))
        refused = ask(api, api.message(f"/ingest {page}", chat_id=7, user=outsider), chat_id=7)
        assert "Only the bot's administrators" in refused.params["text"]
        assert (
            "Subscribed"
            in ask(api, api.message("/subscribe", chat_id=42), chat_id=42).params["text"]
        )
        start = time.monotonic()
        api.push(api.message(f"/ingest {page}"))
        summary = api.wait_for(
            "sendMessage", lambda c: c.at >= start and " added, " in c.params.get("text", "")
        )
        assert summary.params["text"].startswith("1 article added")
        push = api.wait_for(
            "sendMessage", lambda c: c.at >= start and c.params.get("text", "").startswith("🆕")
        )
        assert title in push.params["text"]
        bad = ask(api, api.message(f"/ingest {web.base}/missing"), chat_id=42)
        assert "HTTP 404" in bad.params["text"]
        feed = web.put("/f.xml", rss([("S", page)]), content_type="application/rss+xml")
        added = ask(api, api.message(f"/feeds add {feed}"), chat_id=42)
        assert "Added feed 1" in added.params["text"]
        not_feed = ask(api, api.message(f"/feeds add {page}"), chat_id=42)
        assert "not an RSS or Atom feed" in not_feed.params["text"]
        listed = ask(api, api.message("/feeds"), chat_id=42)
        assert feed in listed.params["text"]
        removed = ask(api, api.message("/feeds remove 1"), chat_id=42)
        assert "Removed" in removed.params["text"]


async def test_digest_mode_sends_one_message_listing_new_stories(
    data_dir: Path, tmp_path: Path, store: Store
) -> None:
    from telegram.ext import ExtBot

    from talksbot.telegram.pacer import Pacer

    ingest(data_dir, CORPUS)
    fan_out(store)
    store.pushes.subscribe(11, "", None)
    store.pushes.subscribe(12, "", None)
    store.pushes.set_digest(11, check_digest_minutes(30))
    with pytest.raises(SubscriptionError, match="5 to 1440 minutes"):
        check_digest_minutes(2)
    folder = tmp_path / "new"
    folder.mkdir()
    ingest(data_dir, write_story(folder, "power", POWER), write_story(folder, "s", SANCTIONS))
    assert fan_out(store) == 4
    assert store.pushes.counts() == {"digest": 2, "pending": 2}
    api = FakeBotAPI()
    bot = ExtBot(api.token, base_url=api.start(), rate_limiter=Pacer())
    await bot.initialize()

    async def run(fn, *args, **kwargs):
        return fn(*args, **kwargs)

    try:
        deliverer = Deliverer(bot, store, run)
        assert await deliverer.deliver_due() == 2  # chat 12's two single pushes
        assert await deliverer.deliver_due() == 0  # chat 11's digest is not due yet
        query(data_dir, "UPDATE chat_settings SET last_digest_at = 0 WHERE chat_id = 11")
        assert await deliverer.deliver_due() == 1
        to_11 = [c for c in api.calls_to("sendMessage") if str(c.params["chat_id"]) == "11"]
        assert len(to_11) == 1
        text = to_11[0].params["text"]
        assert text.startswith("🗞 <b>2 new stories</b>")
        assert POWER[0] in text and SANCTIONS[0] in text
        assert store.pushes.counts() == {"sent": 4}
        # Turning digests off sends what waits one by one.
        store.pushes.set_digest(11, 0)
        assert store.pushes.digest_minutes(11) == 0
    finally:
        await bot.shutdown()
        api.stop()


def test_digest_command(data_dir: Path) -> None:
    ingest(data_dir, CORPUS)
    with app_bot(data_dir) as (api, _):
        assert "off" in ask(api, api.message("/digest", chat_id=31), chat_id=31).params["text"]
        on = ask(api, api.message("/digest on 30", chat_id=31), chat_id=31)
        assert "every 30 minutes" in on.params["text"]
        status = ask(api, api.message("/digest", chat_id=31), chat_id=31)
        assert "on, every 30 minutes" in status.params["text"]
        bad = ask(api, api.message("/digest on 1", chat_id=31), chat_id=31)
        assert "5 to 1440 minutes" in bad.params["text"]
        off = ask(api, api.message("/digest off", chat_id=31), chat_id=31)
        assert "Digest off" in off.params["text"]


def test_a_chat_has_a_bounded_number_of_subscriptions(data_dir: Path) -> None:
    """A stranger cannot make fan-out (one vector comparison per topic and story) and the
    /subscriptions keyboard (one button each) grow without end from one chat."""
    ingest(data_dir, CORPUS)
    store = Store(data_dir)
    try:
        for n in range(MAX_SUBSCRIPTIONS):
            assert store.pushes.subscribe(42, f"topic number {n}", None)
    finally:
        store.close()
    with app_bot(data_dir) as (api, _):
        reply = ask(api, api.message("/subscribe one topic too many"), chat_id=42)
        assert f"{MAX_SUBSCRIPTIONS} subscriptions" in reply.params["text"]
        active = "SELECT COUNT(*) FROM subscriptions WHERE chat_id=42 AND active=1"
        assert query(data_dir, active) == [(MAX_SUBSCRIPTIONS,)]
        time.sleep(1.1)  # Telegram's one message a second per chat
        again = ask(api, api.message("/subscribe Topic Number 3"), chat_id=42)
        assert "Already subscribed" in again.params["text"]  # one it has is no new one
        time.sleep(1.1)
        gone = ask(api, api.message("/unsubscribe TOPIC NUMBER 3"), chat_id=42)
        assert "Unsubscribed (1 subscription)" in gone.params["text"]
        time.sleep(1.1)
        wordless = ask(api, api.message("/unsubscribe ???"), chat_id=42)
        assert "no such subscription" in wordless.params["text"]
        assert query(data_dir, active) == [(MAX_SUBSCRIPTIONS - 1,)]
