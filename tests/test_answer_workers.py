"""The bot answers questions on worker processes (``talksbot.answering``): they see what other
processes store, and a worker that dies is replaced without losing the question."""

from __future__ import annotations

import gc
import os
import signal
import time
from pathlib import Path

from retrieval.search import YOUNG_COLLECTION_THRESHOLD
from tests.harness.bot_process import running_bot
from tests.harness.chat import ask
from tests.harness.data import CORPUS, answering, ingest, run_cli
from tests.test_live_index import QUOKKA, quokka_folder


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (Linux /proc)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def maps_the_index(pid: int) -> bool:
    """Whether the process has a snapshot's files mapped (``ids.npy`` always is)."""
    return "ids.npy" in Path(f"/proc/{pid}/maps").read_text()


def answer_text(api, chat_id: int, question: str) -> str:  # noqa: ANN001
    return ask(api, api.message(question, chat_id=chat_id), chat_id=chat_id).params["text"]


CITED = "quokka sanctuary as a confidence-building gesture"  # quoted only once it is stored


def test_workers_answer_new_articles_and_survive_a_killed_worker(
    data_dir: Path, tmp_path: Path
) -> None:
    ingest(data_dir, CORPUS)
    folder = quokka_folder(tmp_path)
    env = {"TALKSBOT_ANSWER_PROCESSES": "2", "TALKSBOT_INDEX_POLL": "0.5"}
    with running_bot(data_dir, **env) as (api, bot):
        workers = children(bot.proc.pid)
        assert len(workers) >= 2  # the pool is up before the bot polls
        assert CITED not in answer_text(api, 1, QUOKKA[0])
        # The workers search; the bot's own process serves the store and never loads an index.
        assert any(maps_the_index(pid) for pid in workers)
        assert not maps_the_index(bot.proc.pid)
        # Stored by another process: the workers pick it up from the change log, no restart.
        done = run_cli(data_dir, "ingest", str(folder))
        assert done.returncode == 0, done.stderr
        deadline = time.monotonic() + 5
        while CITED not in (text := answer_text(api, 2, QUOKKA[0])):
            assert time.monotonic() < deadline, text
        # A worker killed outright: the question in hand is answered by a fresh pool.
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        assert CITED in answer_text(api, 3, QUOKKA[0])
        assert "went wrong" not in answer_text(api, 4, "Where were the Geneva talks held?")
        assert len(set(children(bot.proc.pid)) - set(workers)) >= 2


def test_workers_leave_when_the_bot_is_killed_outright(data_dir: Path) -> None:
    ingest(data_dir, CORPUS)
    with running_bot(data_dir, TALKSBOT_ANSWER_PROCESSES="2") as (api, bot):
        workers = children(bot.proc.pid)
        assert len(workers) >= 2
        bot.proc.kill()
        bot.proc.wait(10)
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{pid}").exists() for pid in workers):
            assert time.monotonic() < deadline, "answer workers outlived the bot"
            time.sleep(0.2)


def test_warm_up_loads_what_first_questions_would(data_dir: Path) -> None:
    """The name matcher's words and spelling keys are loaded before any question, and the
    young-generation collector is made to run less often (a process-wide setting: put back
    afterwards, so the tests after this one run under the default)."""
    ingest(data_dir, CORPUS)
    threshold = gc.get_threshold()
    try:
        with answering(data_dir) as answerer:
            searcher = answerer.searcher
            assert searcher._names is None
            searcher.warm_up()
            assert searcher._names is not None and searcher._names._skeletons is not None
            assert gc.get_threshold() == (YOUNG_COLLECTION_THRESHOLD, *threshold[1:])
    finally:
        gc.set_threshold(*threshold)
