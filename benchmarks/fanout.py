"""One new story fanned out to many subscribed chats by the real bot while questions keep
arriving, against a local Bot API server that refuses (429) what exceeds Telegram's windows
(30 messages/s overall, 1/s per chat, 20/min per group) and can inject extra 429s.

    python benchmarks/fanout.py [--chats 1000] [--ask-rate 5] [--inject 0]

Prints the push rate against the allowed one, lost and duplicated pushes, 429s, and the
update-to-reply latency of the questions asked during the fan-out (target p95 <= 1 s, every
chat reached exactly once, no 429 but the injected ones).
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from index.embed import HashEmbedder  # noqa: E402
from index.ingest import Ingester  # noqa: E402
from index.store import Store  # noqa: E402
from tests.harness.bot_api import FakeBotAPI  # noqa: E402
from tests.harness.bot_process import BotProcess  # noqa: E402

ALLOWED = 30.0
QUESTION = "How long did the second day of talks in Geneva last?"
STORY = """---
title: Negotiators agree on a ceasefire monitoring mechanism
url: https://example.org/monitoring
published: {today}
outlet: example.org
---

Negotiators in Abu Dhabi agreed on Friday that a future ceasefire would be monitored
jointly, officials said.

The mechanism would combine satellite imagery with observers on the ground, according to a draft.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=1_000)
    parser.add_argument("--ask-rate", type=float, default=5.0, help="questions/s during it")
    parser.add_argument("--inject", type=int, default=0, help="extra 429s injected at random")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="talksbot-fanout-") as tmp:
        data_dir = Path(tmp) / "data"
        store = Store(data_dir)
        ingester = Ingester(store, HashEmbedder())
        ingester.ingest_paths([ROOT / "tests" / "fixtures" / "corpus"], progress=False)
        chats = list(range(100_000, 100_000 + args.chats))
        for chat in chats:
            store.pushes.subscribe(chat, "", None)
        api = FakeBotAPI()
        bot = BotProcess(data_dir, api, api.start(), "hash", TALKSBOT_FANOUT_INTERVAL="0.5")
        asked: dict[int, float] = {}
        try:
            bot.start()
            story = Path(tmp) / "story.md"
            story.write_text(STORY.format(today=dt.date.today().isoformat()))
            ingester.ingest_paths([story], progress=False)  # "another process" adds a story
            store.close()
            first = api.wait_for("sendMessage", lambda c: c.status == 200, timeout=60).at
            injected, next_question = 0, time.monotonic()
            checked = 0.0
            while True:
                now = time.monotonic()
                if now >= next_question:  # a question from a chat of its own, on time
                    chat = 1_000 + len(asked)
                    api.push(api.message(QUESTION, chat_id=chat))
                    asked[chat] = now
                    next_question += 1 / args.ask_rate
                if injected < args.inject and random.random() < 0.05:
                    api.flood_next("sendMessage", retry_after=1)
                    injected += 1
                if now - checked >= 0.25:  # counting takes the server's lock: not too often
                    checked = now
                    pushed = {
                        int(c.params["chat_id"])
                        for c in api.calls_to("sendMessage")
                        if c.status == 200 and int(c.params["chat_id"]) >= 100_000
                    }
                    if len(pushed) >= len(chats) or now - first > len(chats) / 10 + 60:
                        break
                time.sleep(max(0.0, min(next_question, checked + 0.25) - time.monotonic()))
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                answered = {
                    int(c.params["chat_id"]) for c in api.calls_to("sendMessage") if c.status == 200
                }
                if set(asked) <= answered:
                    break
                time.sleep(0.1)
        finally:
            bot.stop()
            api.stop()
        calls = api.calls_to("sendMessage")
        ok = [c for c in calls if c.status == 200]
        delivered = [int(c.params["chat_id"]) for c in ok if int(c.params["chat_id"]) >= 100_000]
        push_times = [c.at for c in ok if int(c.params["chat_id"]) >= 100_000]
        seconds = max(push_times) - first
        rate = (len(delivered) - 1) / seconds if seconds > 0 else float("nan")
        replies: dict[int, float] = {}
        for c in ok:
            chat = int(c.params["chat_id"])
            if chat in asked and chat not in replies:
                replies[chat] = c.at
        latencies = [(replies[q] - t) * 1000 for q, t in asked.items() if q in replies]
        final = Store(data_dir)
        counts = final.pushes.counts()
        final.close()
        refused = sum(1 for c in calls if c.status == 429)
        print(
            f"chats {len(chats)}, allowed {ALLOWED:.0f}/s, 429s {refused} "
            f"({injected} injected, {refused - injected} caused by the bot)"
        )
        print(
            f"pushed {len(set(delivered))} in {seconds:.1f} s = {rate:.2f} msg/s "
            f"({rate / ALLOWED:.1%} of allowed); lost {len(set(chats) - set(delivered))}, "
            f"duplicated {len(delivered) - len(set(delivered))}, queue {counts}"
        )
        if latencies:
            p50, p95 = np.percentile(latencies, 50), np.percentile(latencies, 95)
            print(
                f"questions during the fan-out: {len(asked)} asked, {len(replies)} answered, "
                f"p50 {p50:.0f} ms, p95 {p95:.0f} ms, max {max(latencies):.0f} ms"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
