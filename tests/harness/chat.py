"""Talking to the bot through the fake Bot API, and checking what it sends."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

from tests.harness.bot_api import Call, FakeBotAPI
from tests.harness.telegram_rules import MAX_TEXT, utf16_len

ALLOWED_TAGS = {"b", "i", "a", "blockquote", "code"}


def ask(api: FakeBotAPI, update: dict, method: str = "sendMessage", **match: object) -> Call:
    """Send ``update`` and wait for the first ``method`` call after it whose params match."""
    start = time.monotonic()
    api.push(update)
    return api.wait_for(
        method,
        lambda c: c.at >= start and all(str(c.params.get(k)) == str(v) for k, v in match.items()),
    )


def buttons(call: Call) -> dict[str, str]:
    """Button text -> callback data of a message's inline keyboard."""
    return {
        b["text"]: b["callback_data"]
        for row in call.params["reply_markup"]["inline_keyboard"]
        for b in row
    }


def wait_until(predicate: Callable[[], object], timeout: float = 30, what: str = "") -> object:
    """Poll ``predicate`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.05)


def query(data_dir: Path, sql: str, *args: object) -> list[tuple]:
    """Run one statement on the store (committed) on a connection opened and closed here."""
    db = sqlite3.connect(data_dir / "talksbot.db", timeout=30)
    try:
        with db:
            return db.execute(sql, args).fetchall()
    finally:
        db.close()


class TagChecker(HTMLParser):
    """Telegram HTML must use known tags, balanced: collects what it finds."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag not in ALLOWED_TAGS:
            self.problems.append(f"tag <{tag}>")
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.problems.append(f"unbalanced </{tag}>")


def check_html(text: str) -> None:
    checker = TagChecker()
    checker.feed(text)
    checker.close()
    assert not checker.problems and not checker.stack, (checker.problems, checker.stack)
    assert utf16_len(text) <= MAX_TEXT  # as Telegram counts: UTF-16 units
