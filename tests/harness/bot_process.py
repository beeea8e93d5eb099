"""The real entry point, ``python bot.py``, in a subprocess against the fake Bot API."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.harness.bot_api import FakeBotAPI
from tests.harness.data import ROOT, cli_env


class BotProcess:
    def __init__(
        self, data_dir: Path, api: FakeBotAPI, base_url: str, backend: str = "hash", **env: str
    ) -> None:
        self.data_dir, self.api, self.base_url = data_dir, api, base_url
        self.backend, self.env = backend, env
        self.proc: subprocess.Popen | None = None
        self.log = data_dir.parent / "bot.log"

    def start(self) -> None:
        """Start ``python bot.py`` and return once it polls for updates."""
        env = cli_env(
            self.data_dir,
            self.backend,
            TELEGRAM_BOT_TOKEN=self.api.token,
            TELEGRAM_API_BASE_URL=self.base_url,
            **self.env,
        )
        polls = len(self.api.calls_to("getUpdates"))
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(ROOT / "bot.py")],
                env=env,
                cwd=self.data_dir.parent,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.api.wait_for("getUpdates", lambda c: len(self.api.calls_to("getUpdates")) > polls)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


@contextlib.contextmanager
def running_bot(
    data_dir: Path, backend: str = "hash", **env: str
) -> Iterator[tuple[FakeBotAPI, BotProcess]]:
    """A fake Bot API server and ``python bot.py`` against it, both stopped afterwards."""
    api = FakeBotAPI()
    bot = BotProcess(data_dir, api, api.start(), backend, **env)
    try:
        bot.start()
        yield api, bot
    finally:
        if bot.proc and bot.proc.poll() is None:
            bot.stop()
        api.stop()
