"""What every handler needs, opened once in ``post_init`` and kept in ``bot_data``."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from telegram.ext import ContextTypes

from index.embed import Embedder
from index.ingest import Ingester
from index.store import Store
from retrieval.answer import Answer, Answerer
from talksbot.answering import AnswerPool
from talksbot.config import Settings
from talksbot.pushes.deliver import Deliverer
from talksbot.wiring import with_ingester

T = TypeVar("T")


@dataclass
class Services:
    """The answer pipeline, its store, the settings, and the push machinery."""

    answerer: Answerer
    executor: ThreadPoolExecutor  # one worker: retrieval and SQLite stay on one thread
    settings: Settings
    deliverer: Deliverer | None = None
    delivery_task: asyncio.Task | None = None
    pool: AnswerPool | None = None  # answer worker processes (None: answer on ``executor``)
    # Questions being answered per (chat, user), and who was told to wait: one person's flood
    # must not fill the answer queue for everyone else.
    asking: collections.Counter = field(default_factory=collections.Counter)
    told_to_wait: set = field(default_factory=set)
    # Per (chat, user), edits waiting for a turn (question message id -> what redoes it), at
    # most ``questions.MAX_ASKING``: the next one starts when one of the asker's answers ends.
    deferred: dict = field(default_factory=dict)
    # Per user with an inline query being answered: the query to answer next (None: none).
    inline_waiting: dict = field(default_factory=dict)

    @property
    def store(self) -> Store:
        return self.answerer.searcher.store

    @property
    def embedder(self) -> Embedder:
        return self.answerer.searcher.embedder

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn`` on the answering thread (the store's connection lives there)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, lambda: fn(*args, **kwargs))

    async def answer(self, question: str, k: int, offset: int = 0) -> Answer:
        """A question answered on a worker process when there are any, else on the answering
        thread."""
        if self.pool is not None:
            return await self.pool.answer(question, k, offset)
        return await self.run(self.answerer.answer, question, k=k, offset=offset)

    async def catch_up(self) -> bool:
        """Make what any process stored searchable here; True when the index changed. With
        answer workers this process searches nothing (they catch up before every question),
        and replaying a bulk ingest here held the GIL against the event loop for seconds."""
        if self.pool is not None:
            return False
        return await self.run(self.answerer.searcher.refresh)

    async def ingest(self, work: Callable[[Store, Ingester], T]) -> T:
        """``work(store, ingester)`` on a store connection of its own, off the answering thread
        (fetching pages is slow and must not hold up answers)."""
        return await asyncio.to_thread(with_ingester, self.settings, work, self.embedder)


def services(context: ContextTypes.DEFAULT_TYPE) -> Services:
    return context.bot_data["services"]
