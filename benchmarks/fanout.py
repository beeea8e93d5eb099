"""One new story fanned out to many subscribed chats by the real bot, against a local Bot API
server that allows 30 sendMessage calls a second (429 beyond that) and injects extra 429s.

    python benchmarks/fanout.py [--chats 10000] [--inject 10]

Prints the delivery rate against the allowed one, and lost / duplicated counts.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from index.embed import HashEmbedder  # noqa: E402
from index.ingest import Ingester  # noqa: E402
from index.store import Store  # noqa: E402
from tests.harness.bot_api import FakeBotAPI  # noqa: E402
from tests.harness.bot_process import BotProcess  # noqa: E402

ALLOWED = 30.0
STORY = """---
title: Negotiators agree on a ceasefire monitoring mechanism
url: https://example.org/monitoring
published: 2026-02-27
outlet: example.org
---

Negotiators in Abu Dhabi agreed on Friday that a future ceasefire would be monitored
jointly, officials said.

The mechanism would combine satellite imagery with observers on the ground, according to a draft.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=10_000)
    parser.add_argument("--inject", type=int, default=10, help="extra 429s injected at random")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="talksbot-fanout-") as tmp:
        data_dir = Path(tmp) / "data"
        store = Store(data_dir)
        ingester = Ingester(store, HashEmbedder())
        ingester.ingest_paths([ROOT / "tests" / "fixtures" / "corpus"], progress=False)
        chats = list(range(100_000, 100_000 + args.chats))
        for chat in chats:
            store.pushes.subscribe(chat, "", None)
        api = FakeBotAPI(rate_limit=ALLOWED)
        bot = BotProcess(data_dir, api, api.start(), "hash", TALKSBOT_FANOUT_INTERVAL="0.5")
        try:
            bot.start()
            story = Path(tmp) / "story.md"
            story.write_text(STORY)
            ingester.ingest_paths([story], progress=False)  # "another process" adds a story
            store.close()
            first = api.wait_for("sendMessage", lambda c: c.status == 200, timeout=60).at
            injected = 0
            while True:
                ok = [c for c in api.calls_to("sendMessage") if c.status == 200]
                if len(ok) >= len(chats):
                    break
                if injected < args.inject and random.random() < 0.05:
                    api.flood_next("sendMessage", retry_after=1)
                    injected += 1
                if time.monotonic() - first > len(chats) / ALLOWED * 2 + 60:
                    break
                time.sleep(0.5)
            time.sleep(3)  # anything sent twice would show up now
        finally:
            bot.stop()
            api.stop()
        calls = api.calls_to("sendMessage")
        if os.environ.get("FANOUT_TRACE"):
            for i, c in enumerate(calls):
                if c.status == 429:
                    window = [x for x in calls[max(0, i - 40) : i] if c.at - x.at < 1.0]
                    print(f"429 at {c.at - first:.2f}s, {len(window)} sends in the second before")
        ok = [c for c in calls if c.status == 200]
        delivered = [int(c.params["chat_id"]) for c in ok]
        seconds = max(c.at for c in ok) - first
        rate = (len(ok) - 1) / seconds if seconds > 0 else float("nan")
        with Store(data_dir) as final:
            counts = final.pushes.counts()
        print(
            f"chats {len(chats)}, allowed {ALLOWED:.0f}/s, injected 429s {injected}, "
            f"429s answered {sum(1 for c in calls if c.status == 429)}"
        )
        print(
            f"delivered {len(set(delivered))} in {seconds:.1f} s = {rate:.2f} msg/s "
            f"({rate / ALLOWED:.1%} of allowed)"
        )
        print(
            f"lost {len(set(chats) - set(delivered))}, duplicated "
            f"{len(delivered) - len(set(delivered))}, queue {counts}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
