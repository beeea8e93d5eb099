"""Settings read from the environment (and an optional ``.env``), shared by the CLI and the bot."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

PROJECT_DIR = Path(__file__).resolve().parent.parent
SAMPLE_CORPUS = PROJECT_DIR / "data" / "sample"

if TYPE_CHECKING:
    from index.fetch import FetchPolicy


# The embedders ``index.embed.load_embedder`` knows (kept in step with its ``BACKENDS`` by a
# test): checked here so a typo stops talksbot at start, before a data dir is made.
Backend = Literal["onnx-int8", "onnx", "torch", "mpnet", "hash"]


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/talksbot``: per user, so an installed bot never writes into its code."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "talksbot"


_TOKEN = re.compile(r"\d{1,20}:[A-Za-z0-9_-]{1,200}")
DAY = 86400.0  # seconds: intervals are bounded so that no timer overflows ("1e300")


class Settings(BaseSettings):
    """Everything configurable. Field names map to upper-case environment variables."""

    # Infinity passes "greater than 0" but no timer or clock takes it: refused with NaN.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", allow_inf_nan=False)

    talksbot_data_dir: Path = Field(default_factory=default_data_dir)
    # "onnx" (fp32 ONNX), "onnx-int8" (quantized: faster ingest, worse ranking), "torch"
    # (plain sentence-transformers), "mpnet" (all-mpnet-base-v2); "hash" is a model-free fake
    # for tests. Unset: what the data dir was built with, and for a new one DEFAULT_BACKEND
    # (``talksbot.wiring.backend_of``), so a store built under an older default keeps working.
    talksbot_backend: Backend | None = None
    # Where the one-time ONNX export of the model is kept (default: <data dir>/models).
    talksbot_model_cache: Path | None = None

    telegram_bot_token: SecretStr | None = None
    telegram_api_base_url: str = "https://api.telegram.org/bot"
    telegram_api_file_url: str = "https://api.telegram.org/file/bot"
    # Webhook mode when a public URL is given; long polling otherwise.
    telegram_webhook_url: str | None = None
    telegram_webhook_listen: str = "127.0.0.1"
    telegram_webhook_port: int = Field(default=8443, ge=1, le=65535)
    telegram_webhook_secret: SecretStr | None = None
    # Open connections the webhook endpoint accepts at once (Telegram opens up to 40); a new one
    # beyond is closed unanswered, so idle sockets cannot use up the process's files.
    telegram_webhook_max_connections: int = Field(default=256, ge=1, le=10_000)
    # Seconds between getUpdates calls when polling (0 in tests keeps them snappy).
    telegram_poll_interval: float = Field(default=0.0, ge=0, le=3600)
    # JSON ("[1, 2]") or plain ("1,2", "1 2", "1"): read by ``_id_list``, not decoded as JSON.
    telegram_admin_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    # Feeds are polled, and new stories fanned out to subscribers, every so many seconds.
    talksbot_feed_interval: float = Field(default=600.0, gt=0, le=7 * DAY)
    talksbot_fanout_interval: float = Field(default=5.0, gt=0, le=DAY)
    # Seconds between checks for articles other processes stored (one read of the index's
    # change-log position; new sentences are searchable within this and a moment).
    talksbot_index_poll: float = Field(default=2.0, gt=0, le=DAY)
    # Worker processes that answer questions, each holding the index (unset: one per core but
    # one, at least one; 0: answer on the bot's own thread, the least memory).
    talksbot_answer_processes: int | None = Field(default=None, ge=0, le=32)
    # Seconds an answer may take before a "typing…" indicator is sent.
    telegram_typing_after: float = Field(default=0.5, ge=0, le=3600)
    # Messages per second across all chats (Telegram allows 30); answers, edits and pushes
    # share them through one pacer, which also keeps 1/s per chat and 20/min per group.
    telegram_rate_limit: int = Field(default=30, ge=1, le=1000)
    # Of those, what pushes may take: the rest of each second stays free for answers.
    telegram_push_rate: int = Field(default=27, ge=1, le=1000)
    # Pushes only for stories published (or first seen, when undated) this recently.
    talksbot_push_max_age_hours: float = Field(default=48.0, gt=0, le=24 * 366)
    # One process per store sends pushes; another takes over this long after it dies.
    talksbot_push_lease_seconds: float = Field(default=15.0, gt=0, le=DAY)
    # Stored answers (their buttons), feedback and finished push rows are kept this long.
    talksbot_retention_days: float = Field(default=30.0, gt=0, le=36600)
    # Fetching pages and feeds: non-public destinations (loopback, private, link-local …) are
    # refused unless named here (comma-separated hosts, IPs or CIDRs); one deadline per fetch.
    talksbot_fetch_allow_hosts: str = ""
    talksbot_fetch_timeout: float = Field(default=20.0, gt=0, le=3600)

    @field_validator(
        "talksbot_backend", "talksbot_model_cache", "telegram_bot_token", mode="before"
    )
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        """``TALKSBOT_BACKEND=`` (an emptied line in .env or a compose file) means unset."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("telegram_admin_ids", mode="before")
    @classmethod
    def _id_list(cls, value: object) -> object:
        """User ids as a JSON list or as plain ids parted by commas or spaces: an operator
        who wrote ``TELEGRAM_ADMIN_IDS=123`` was refused ("input should be a valid list")."""
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except ValueError:
                raise ValueError("not a JSON list of user ids") from None
        return [part for part in re.split(r"[\s,]+", text) if part]

    @field_validator("talksbot_fetch_allow_hosts", mode="after")
    @classmethod
    def _allow_list(cls, value: str) -> str:
        """Each entry a host name, IP or network (``FetchPolicy.parse`` says which is not)."""
        from index.fetch import FetchPolicy

        FetchPolicy.parse(value)
        return value

    @field_validator("talksbot_data_dir", mode="before")
    @classmethod
    def _default_when_empty(cls, value: object) -> object:
        """``TALKSBOT_DATA_DIR=`` means the default too: an empty path is the current
        directory, where a store would be made (or read) wherever the command was run."""
        return default_data_dir() if isinstance(value, str) and not value.strip() else value

    @field_validator("telegram_bot_token", mode="after")
    @classmethod
    def _token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        """A token as @BotFather gives it (``<bot id>:<key>``): anything else fails at the
        first request, and a one-character "token" would be redacted from every log line."""
        if value is not None and not _TOKEN.fullmatch(value.get_secret_value().strip()):
            raise ValueError("not a bot token (expected <digits>:<key>, as @BotFather gives it)")
        return SecretStr(value.get_secret_value().strip()) if value is not None else None

    @field_validator(
        "telegram_api_base_url", "telegram_api_file_url", "telegram_webhook_url", mode="after"
    )
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        """A URL the bot talks to or is reached at: http(s) with a host, or the bot would start
        and fail on its first request with a transport error far from the cause."""
        if value is None:
            return value
        parts = urlsplit(value.strip())
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL with a host")
        return value.strip()

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


class SettingsError(ValueError):
    """A setting the environment gives that cannot work; one line naming each."""


def load_settings() -> Settings:
    """The settings, or ``SettingsError`` naming every bad variable (a rate of 0, say, would
    give a bot that starts and never sends). Values are not echoed: some are secrets."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = [
            f"{str(e['loc'][0]).upper() if e['loc'] else 'settings'}: {_message(e['msg'])}"
            for e in exc.errors()
        ]
        raise SettingsError("bad setting: " + "; ".join(problems)) from None
    except SourceError as exc:  # e.g. a list setting that is not JSON
        raise SettingsError(f"bad setting: {exc}") from None


def _message(text: str) -> str:
    """pydantic's message as one lower-case clause ("Value error, " dropped)."""
    text = text.removeprefix("Value error, ")
    return text[:1].lower() + text[1:]
