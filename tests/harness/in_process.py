"""The bot in this process: ``build_application(settings, answerer=...)`` polling the fake Bot
API on a thread with its own event loop. Fast to start (the index is loaded once, by the test),
and the same handlers, jobs and pushes as ``python bot.py``."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

from bot import build_application
from retrieval.answer import Answerer
from talksbot.config import Settings
from tests.harness.bot_api import FakeBotAPI
from tests.harness.data import close_answerer, open_answerer


def settings_for(data_dir: Path, api: FakeBotAPI, base_url: str, **overrides: object) -> Settings:
    """Settings as the environment would give them, without reading the environment."""
    values: dict[str, object] = {
        "talksbot_data_dir": data_dir,
        "talksbot_backend": "hash",
        "telegram_bot_token": api.token,
        "telegram_api_base_url": base_url,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


class InProcessBot:
    def __init__(self, settings: Settings, answerer: Answerer, api: FakeBotAPI) -> None:
        self.settings, self.answerer, self.api = settings, answerer, api
        self.app = build_application(settings, answerer=answerer)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        try:
            self.app.run_polling(stop_signals=None, poll_interval=0.0, close_loop=True)
        except BaseException as exc:  # reported by stop()
            self._error = exc

    def start(self) -> None:
        """Start polling and return once the bot has asked for updates."""
        polls = len(self.api.calls_to("getUpdates"))
        self._thread = threading.Thread(target=self._run, name="bot", daemon=True)
        self._thread.start()
        self.api.wait_for("getUpdates", lambda c: len(self.api.calls_to("getUpdates")) > polls)

    def stop(self) -> None:
        """Stop as on SIGTERM: post_stop (the deliverer finishes) and shutdown run."""
        if self._loop and self._thread and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
        assert self._thread is None or not self._thread.is_alive(), "the bot did not stop"
        if self._error:
            raise self._error


@contextlib.contextmanager
def app_bot(data_dir: Path, **settings: object) -> Iterator[tuple[FakeBotAPI, InProcessBot]]:
    """A fake Bot API server and the bot in process on ``data_dir``, stopped afterwards."""
    api = FakeBotAPI()
    base_url = api.start()
    answerer = open_answerer(data_dir)
    bot = InProcessBot(settings_for(data_dir, api, base_url, **settings), answerer, api)
    try:
        bot.start()
        yield api, bot
    finally:
        try:
            bot.stop()
        finally:
            close_answerer(answerer)
            api.stop()
