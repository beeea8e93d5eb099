"""Settings read from the environment (and an optional ``.env``), shared by the CLI and the bot."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_DIR = Path(__file__).resolve().parent.parent
SAMPLE_CORPUS = PROJECT_DIR / "data" / "sample"

if TYPE_CHECKING:
    from index.fetch import FetchPolicy


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/talksbot``: per user, so an installed bot never writes into its code."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "talksbot"


class Settings(BaseSettings):
    """Everything configurable. Field names map to upper-case environment variables."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    talksbot_data_dir: Path = Field(default_factory=default_data_dir)
    # "onnx-int8" (default, fast), "onnx" (fp32 ONNX) or "torch" (plain sentence-transformers);
    # "hash" is a model-free fake for tests.
    talksbot_backend: str = "onnx-int8"
    # Where the one-time ONNX export of the model is kept (default: <data dir>/models).
    talksbot_model_cache: Path | None = None

    telegram_bot_token: SecretStr | None = None
    telegram_api_base_url: str = "https://api.telegram.org/bot"
    telegram_api_file_url: str = "https://api.telegram.org/file/bot"
    # Webhook mode when a public URL is given; long polling otherwise.
    telegram_webhook_url: str | None = None
    telegram_webhook_listen: str = "127.0.0.1"
    telegram_webhook_port: int = 8443
    telegram_webhook_secret: SecretStr | None = None
    # Seconds between getUpdates calls when polling (0 in tests keeps them snappy).
    telegram_poll_interval: float = 0.0
    telegram_admin_ids: list[int] = Field(default_factory=list)
    # Feeds are polled, and new stories fanned out to subscribers, every so many seconds.
    talksbot_feed_interval: float = 600.0
    talksbot_fanout_interval: float = 5.0
    # Seconds between checks for articles other processes stored (one read of the index's
    # change-log position; new sentences are searchable within this and a moment).
    talksbot_index_poll: float = 2.0
    # Worker processes that answer questions, each holding the index (unset: one per core but
    # one, at least one; 0: answer on the bot's own thread, the least memory).
    talksbot_answer_processes: int | None = Field(default=None, ge=0, le=32)
    # Seconds an answer may take before a "typing…" indicator is sent.
    telegram_typing_after: float = 0.5
    # Messages per second across all chats (Telegram allows 30); answers, edits and pushes
    # share them through one pacer, which also keeps 1/s per chat and 20/min per group.
    telegram_rate_limit: int = 30
    # Of those, what pushes may take: the rest of each second stays free for answers.
    telegram_push_rate: int = 27
    # Pushes only for stories published (or first seen, when undated) this recently.
    talksbot_push_max_age_hours: float = 48.0
    # One process per store sends pushes; another takes over this long after it dies.
    talksbot_push_lease_seconds: float = 15.0
    # Stored answers (their buttons), feedback and finished push rows are kept this long.
    talksbot_retention_days: float = 30.0
    # Fetching pages and feeds: non-public destinations (loopback, private, link-local …) are
    # refused unless named here (comma-separated hosts, IPs or CIDRs); one deadline per fetch.
    talksbot_fetch_allow_hosts: str = ""
    talksbot_fetch_timeout: float = 20.0

    @property
    def data_dir(self) -> Path:
        return self.talksbot_data_dir.expanduser()

    @property
    def fetch_policy(self) -> FetchPolicy:
        from index.fetch import FetchPolicy

        return FetchPolicy.parse(
            self.talksbot_fetch_allow_hosts, deadline=self.talksbot_fetch_timeout
        )

    @property
    def model_cache(self) -> Path:
        return (self.talksbot_model_cache or self.data_dir / "models").expanduser()


def load_settings() -> Settings:
    return Settings()
