"""Button data, typed: one small dataclass per kind of button, encoded as ``prefix:field:...``
(Telegram allows 64 bytes). Data a stranger sends is parsed strictly: anything that is not
exactly one of these shapes, with ASCII digits for numbers, decodes to None."""

from __future__ import annotations

import re
from dataclasses import astuple, dataclass, fields
from typing import ClassVar, TypeVar

_INT = re.compile(r"-?[0-9]{1,18}")


@dataclass(frozen=True)
class Example:
    """Ask the N-th example question (under /start)."""

    PREFIX: ClassVar[str] = "ex"
    index: int


@dataclass(frozen=True)
class MoreResults:
    """Edit the next page of a stored answer into its message."""

    PREFIX: ClassVar[str] = "more"
    answer_id: int
    offset: int


@dataclass(frozen=True)
class MoreContext:
    """Quote the sentences around one citation, on the page (``offset``) that shows it."""

    PREFIX: ClassVar[str] = "ctx"
    answer_id: int
    sentence_id: int
    offset: int


@dataclass(frozen=True)
class Vote:
    """👍 (+1) or 👎 (-1) on a stored answer."""

    PREFIX: ClassVar[str] = "fb"
    answer_id: int
    vote: int


@dataclass(frozen=True)
class Unsubscribe:
    PREFIX: ClassVar[str] = "unsub"
    subscription_id: int


@dataclass(frozen=True)
class AskAbout:
    """Ask about a pushed story (its title is the question)."""

    PREFIX: ClassVar[str] = "about"
    article_id: int


CallbackData = Example | MoreResults | MoreContext | Vote | Unsubscribe | AskAbout
T = TypeVar("T", Example, MoreResults, MoreContext, Vote, Unsubscribe, AskAbout)


def encode(data: CallbackData) -> str:
    return ":".join([data.PREFIX, *(str(v) for v in astuple(data))])


def decode(kind: type[T], text: str | None) -> T | None:
    """``text`` as a ``kind``, or None when it is anything else."""
    parts = (text or "").split(":")
    if parts[0] != kind.PREFIX or len(parts) != len(fields(kind)) + 1:
        return None
    if not all(_INT.fullmatch(p) for p in parts[1:]):
        return None
    return kind(*(int(p) for p in parts[1:]))


def pattern(kind: type[CallbackData]) -> str:
    """The ``CallbackQueryHandler`` pattern that routes this kind's buttons."""
    return rf"^{kind.PREFIX}:"
