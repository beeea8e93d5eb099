"""Answers computed in worker processes.

Ranking a question is pure-Python work for tens of milliseconds. On the bot's own thread it
holds the GIL against the event loop that reads updates and sends replies, so the two slow each
other down: measured with ``benchmarks/bot_load.py`` (hash backend, 2 cores), one answering
thread took 48 ms a question instead of 15 and the bot answered 13 questions a second of 27
offered. Worker processes, each with its own store connection and index, give answering its own
cores and leave the event loop free.

Each worker opens the store read-only in spirit (it never writes), and before every question
picks up what other processes committed (one read of the change log's position: about 20 µs at
a million sentences).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from index.process import leave_with_parent
from retrieval.answer import Answer, Answerer
from talksbot.config import Settings

log = logging.getLogger("talksbot.answering")


def default_workers() -> int:
    """One answering process per core, keeping one core for the event loop (at least one)."""
    return max(1, min(4, (os.cpu_count() or 2) - 1))


# Per worker process (set by the pool's initializer, in the child only): a process pool hands
# work to plain functions, so the child's answerer has to live at module level.
_answerer: Answerer | None = None


def _start_worker(settings: Settings, parent: int) -> None:
    from talksbot.wiring import open_answerer

    global _answerer
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    leave_with_parent(parent)
    answerer = open_answerer(settings, quiet=True)
    answerer.searcher.warm_up()
    _answerer = answerer


def _answer(question: str, k: int, offset: int) -> Answer:
    if _answerer is None:  # the initializer failed; the pool reports that as broken
        raise RuntimeError("answer worker not started")
    return _answerer.answer(question, k=k, offset=offset)


class AnswerPool:
    """``answer(question, k, offset)`` on worker processes; a crashed pool is replaced once per
    call, so one dead worker costs one retry, not the bot."""

    def __init__(self, settings: Settings, workers: int) -> None:
        # The workers never need the bot's token.
        self.settings = settings.model_copy(update={"telegram_bot_token": None})
        self.workers = workers
        self._executor = self._new_executor()

    def _new_executor(self) -> ProcessPoolExecutor:
        # spawn, not fork: the parent runs threads (PTB, onnxruntime) that fork would copy
        # mid-state.
        return ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(self.settings, os.getpid()),
        )

    async def start(self) -> None:
        """Start every worker and wait until each has loaded the index (so the first questions
        do not wait for it, and a store the workers cannot open fails the start)."""
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.run_in_executor(self._executor, os.getpid) for _ in range(self.workers))
        )

    async def answer(self, question: str, k: int, offset: int = 0) -> Answer:
        loop = asyncio.get_running_loop()
        call = functools.partial(_answer, question, k, offset)
        try:
            return await loop.run_in_executor(self._executor, call)
        except BrokenProcessPool:
            log.warning("an answer worker died; starting new ones")
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = self._new_executor()
            return await loop.run_in_executor(self._executor, call)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
