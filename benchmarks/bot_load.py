"""Answered questions per second and update-to-reply latency of the real bot process against a
local Bot API server that refuses (429) what exceeds Telegram's windows (30 messages/s overall,
1/s per chat, 20/min per group), with a corpus ingested (default ../shared/corpus).

    python benchmarks/bot_load.py [--corpus DIR] [--rates 27,30] [--seconds 20]

Each question comes from its own private chat, delivered through getUpdates at a steady rate;
latency runs from the moment the update is queued at the server (a waiting getUpdates hands it
out at once) to the moment the server accepts the reply. One run per offered rate: 27/s (90% of
Telegram's ceiling; target p95 <= 250 ms) and 30/s (the ceiling; target all answered at >= 27/s),
both with no 429.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from index.embed import DEFAULT_BACKEND, HashEmbedder, load_embedder  # noqa: E402
from index.ingest import Ingester  # noqa: E402
from index.store import Store  # noqa: E402
from retrieval.evaluate import load_questions  # noqa: E402
from tests.harness.bot_api import FakeBotAPI  # noqa: E402
from tests.harness.bot_process import BotProcess  # noqa: E402


def run_load(
    data_dir: Path,
    models: Path,
    questions: list[str],
    rate: float,
    seconds: float,
    backend: str,
    env: dict[str, str],
) -> dict:
    api = FakeBotAPI()
    bot = BotProcess(data_dir, api, api.start(), backend, TALKSBOT_MODEL_CACHE=str(models), **env)
    try:
        bot.start()
        # Warm up.
        for i in range(5):
            api.push(api.message(questions[i], chat_id=10_000_000 + i))
        api.wait_for("sendMessage", lambda c: str(c.params["chat_id"]) == "10000004", timeout=60)
        total = int(rate * seconds)
        pushed: dict[int, float] = {}
        start = time.monotonic()
        for i in range(total):
            target = start + i / rate
            delay = target - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            chat_id = 1_000 + i
            api.push(api.message(questions[i % len(questions)], chat_id=chat_id))
            pushed[chat_id] = time.monotonic()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = {
                int(c.params["chat_id"]) for c in api.calls_to("sendMessage") if c.status == 200
            }
            if all(c in done for c in pushed):
                break
            time.sleep(0.05)
        # Latency from the push (a waiting getUpdates hands the update out at once) to the reply.
        replies: dict[int, float] = {}
        for c in api.calls_to("sendMessage"):
            chat = int(c.params["chat_id"])
            if c.status != 200:
                continue
            if chat in pushed and chat not in replies:
                replies[chat] = c.at
        latencies = [(replies[c] - t) * 1000 for c, t in pushed.items() if c in replies]
        end = max(replies.values()) if replies else time.monotonic()
        return {
            "offered": rate,
            "refused": len(api.refused()),
            "sent": total,
            "answered": len(replies),
            "throughput": len(replies) / (end - start),
            "p50": float(np.percentile(latencies, 50)) if latencies else float("nan"),
            "p95": float(np.percentile(latencies, 95)) if latencies else float("nan"),
        }
    finally:
        bot.stop()
        api.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    parser.add_argument(
        "--questions", type=Path, default=ROOT.parent / "shared" / "eval" / "questions-dev.jsonl"
    )
    parser.add_argument("--rates", default="27,30", help="offered questions per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--backend",
        default=DEFAULT_BACKEND,
        help="the bundled model (default), or 'hash' (a fake embedder) to isolate the pacing",
    )
    parser.add_argument(
        "--answer-processes",
        default=None,
        help="TALKSBOT_ANSWER_PROCESSES for the bot (default: the bot's own default)",
    )
    args = parser.parse_args()
    env = {}
    if args.answer_processes is not None:
        env["TALKSBOT_ANSWER_PROCESSES"] = args.answer_processes
    questions = [q.question for q in load_questions(args.questions)]
    with tempfile.TemporaryDirectory(prefix="talksbot-botload-") as tmp:
        data_dir, models = Path(tmp) / "data", Path(tmp) / "models"
        store = Store(data_dir)
        embedder = HashEmbedder() if args.backend == "hash" else load_embedder(args.backend, models)
        Ingester(store, embedder).ingest_paths([args.corpus], progress=False)
        store.close()
        runs = [
            run_load(data_dir, models, questions, float(rate), args.seconds, args.backend, env)
            for rate in args.rates.split(",")
        ]
    processes = args.answer_processes or "default"
    print(
        f"backend {args.backend}; answer processes {processes}; server: 429 beyond 30 "
        "messages/s overall, 1/s per chat, 20/min per group"
    )
    print(
        f"{'offered/s':>9} {'sent':>5} {'answered':>8} {'answered/s':>10} "
        f"{'p50 ms':>7} {'p95 ms':>7} {'429s':>5}"
    )
    for r in runs:
        print(
            f"{r['offered']:>9.0f} {r['sent']:>5} {r['answered']:>8} "
            f"{r['throughput']:>10.1f} {r['p50']:>7.1f} {r['p95']:>7.1f} {r['refused']:>5}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
