"""Logging for the CLI and the bot: one line per event on stderr, the bot token never shown."""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class LogFormatter(logging.Formatter):
    """Never lets the token reach a log line (request URLs and some errors contain it, in the
    message or a traceback), and shows an error as one line unless ``verbose``."""

    def __init__(self, token: str, fmt: str = FORMAT, verbose: bool = False) -> None:
        super().__init__(fmt)
        self.token, self.verbose = token, verbose

    def formatException(self, ei) -> str:
        if self.verbose:
            return super().formatException(ei)
        return f"  {ei[0].__name__}: {ei[1]}"

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text.replace(self.token, "<token>") if self.token else text


class _StartupRetryFilter(logging.Filter):
    """python-telegram-bot logs a failed start ("Network Retry Loop (Bootstrap …): Failed run
    number 0 of 0. Aborting." and the error) before raising it; the CLI then says in one line
    what failed and what to check, so the library's two lines are left out unless verbose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Network Retry Loop (Bootstrap")


def setup_logging(level: int, verbose: bool = False, token: str = "") -> None:
    """Configure the root logger once (replacing handlers set earlier): ``level`` for
    everything, httpx's per-request lines and the scheduler's per-run lines ("Running job …",
    about 100 lines a minute) only when they are warnings, tornado's notes on malformed
    requests only when errors."""
    handler = logging.StreamHandler()
    handler.setFormatter(LogFormatter(token, FORMAT, verbose))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # The webhook endpoint's notes on malformed requests: anyone can send those, unsigned.
    logging.getLogger("tornado.general").setLevel(logging.ERROR)
    ext = logging.getLogger("telegram.ext")
    for old_filter in [f for f in ext.filters if isinstance(f, _StartupRetryFilter)]:
        ext.removeFilter(old_filter)
    if not verbose:
        ext.addFilter(_StartupRetryFilter())
