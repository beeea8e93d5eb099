"""Button data, typed: one small dataclass per kind of button, encoded as ``prefix:field:...``
(Telegram allows 64 bytes). Data a stranger sends is parsed strictly: anything that is not
exactly one of these shapes, with ASCII digits for numbers and URL-safe characters for keys,
decodes to None. Buttons under answers carry the answer's unguessable key (a token), and the
handlers also check that the button sits in the chat its answer was sent to."""

from __future__ import annotations

import re
from dataclasses import astuple, dataclass, fields
from typing import ClassVar, TypeVar

_INT = re.compile(r"-?[0-9]{1,18}")
_KEY = re.compile(r"[A-Za-z0-9_-]{1,22}")


@dataclass(frozen=True)
class Example:
    """Ask the N-th example question (under /start)."""

    PREFIX: ClassVar[str] = "ex"
    index: int


@dataclass(frozen=True)
class MoreResults:
    """Edit the next page of a stored answer into its message."""

    PREFIX: ClassVar[str] = "more"
    key: str
    offset: int


@dataclass(frozen=True)
class MoreContext:
    """Quote the sentences around one citation, on the page (``offset``) that shows it."""

    PREFIX: ClassVar[str] = "ctx"
    key: str
    sentence_id: int
    offset: int


@dataclass(frozen=True)
class Vote:
    """👍 (+1) or 👎 (-1) on a stored answer."""

    PREFIX: ClassVar[str] = "fb"
    key: str
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
    kinds = fields(kind)
    if parts[0] != kind.PREFIX or len(parts) != len(kinds) + 1:
        return None
    values: list[int | str] = []
    for f, part in zip(kinds, parts[1:], strict=True):
        if f.type == "str" and _KEY.fullmatch(part):
            values.append(part)
        elif f.type == "int" and _INT.fullmatch(part):
            values.append(int(part))
        else:
            return None
    return kind(*values)


def pattern(kind: type[CallbackData]) -> str:
    """The ``CallbackQueryHandler`` pattern that routes this kind's buttons."""
    return rf"^{kind.PREFIX}:"
