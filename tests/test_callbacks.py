"""Button data: what the bot writes it reads back, and nothing else."""

import pytest

from talksbot.telegram.callbacks import (
    AskAbout,
    Example,
    MoreContext,
    MoreResults,
    Unsubscribe,
    Vote,
    decode,
    encode,
    pattern,
)


@pytest.mark.parametrize(
    "data",
    [
        Example(2),
        MoreResults("x3F_9-AbCdEfGhIj", 3),
        MoreContext("x3F_9-AbCdEfGhIj", 123456, 6),
        Vote("x3F_9-AbCdEfGhIj", -1),
        MoreResults("17", 3),  # an answer id, as buttons sent before tokens carried
        Unsubscribe(5),
        AskAbout(40),
    ],
)
def test_round_trip_within_telegram_s_64_bytes(data: object) -> None:
    text = encode(data)
    assert decode(type(data), text) == data
    assert len(text.encode()) <= 64
    assert text.startswith(pattern(type(data)).lstrip("^"))


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        (MoreResults, "more:²:3"),  # a digit to str.isdigit(), not to int()
        (MoreResults, "more:1"),
        (MoreResults, "more:1:2:3"),
        (MoreResults, "ctx:1:2"),
        (Vote, "fb:1:x"),
        (Example, "ex:"),
        (Example, None),
        (AskAbout, "about:" + "9" * 40),
        (MoreResults, "more:a/b:3"),  # keys are URL-safe characters only
        (MoreResults, "more::3"),
        (MoreResults, "more:" + "a" * 23 + ":3"),
        (Vote, "fb:k\u0435y:1"),  # a Cyrillic letter
        (MoreContext, "ctx:key:1:²"),
    ],
)
def test_anything_else_decodes_to_none(kind: type, text: str | None) -> None:
    assert decode(kind, text) is None
