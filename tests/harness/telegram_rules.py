"""Where the test Bot API server behaves like Telegram: its flood control (30 messages a second
overall, one a second per chat, 20 a minute per group, refused with 429 and ``retry_after``) and
its checks of message text (HTML entities that parse, at most 4,096 characters)."""

from __future__ import annotations

import collections
import math
from html.parser import HTMLParser

MAX_TEXT = 4096
# Telegram's HTML: these tags (and <span class="tg-spoiler">), the four named entities.
TAGS = {
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a",
    "tg-emoji", "code", "pre", "blockquote",
}  # fmt: skip
ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
#: Methods whose messages the windows count.
COUNTED = {"sendMessage", "editMessageText", "sendPhoto", "copyMessage", "forwardMessage"}


def bad_request(description: str, **parameters: object) -> dict:
    payload: dict = {"ok": False, "error_code": 400, "description": f"Bad Request: {description}"}
    if parameters:
        payload["parameters"] = parameters
    return payload


def too_many(retry_after: int = 1) -> dict:
    return {
        "ok": False,
        "error_code": 429,
        "description": f"Too Many Requests: retry after {retry_after}",
        "parameters": {"retry_after": retry_after},
    }


class _EntityParser(HTMLParser):
    """Telegram's reading of an HTML message: known tags properly nested, known entities."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.stack: list[str] = []
        self.text: list[str] = []
        self.error: str | None = None

    def _fail(self, why: str) -> None:
        if self.error is None:
            self.error = f"can't parse entities: {why}"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in TAGS:
            self._fail(f'Unsupported start tag "{tag}"')
        self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._fail(f'Unsupported start tag "{tag}/"')

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self._fail(f'Can\'t find end tag corresponding to start tag "{tag}"')
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def handle_entityref(self, name: str) -> None:
        if name not in ENTITIES:
            self._fail(f'Unsupported HTML entity "&{name};"')
        self.text.append(ENTITIES.get(name, "?"))

    def handle_charref(self, name: str) -> None:
        self.text.append("?")


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def check_text(text: object, parse_mode: object) -> dict | None:
    """The 400 Telegram answers for this message text, or None when it would be accepted."""
    if not isinstance(text, str):
        return bad_request("message text is empty")
    if str(parse_mode or "").upper() == "HTML":
        parser = _EntityParser()
        parser.feed(text)
        parser.close()
        if parser.error is None and parser.stack:
            parser._fail(f'Can\'t find end tag corresponding to start tag "{parser.stack[-1]}"')
        if parser.error:
            return bad_request(parser.error)
        plain = "".join(parser.text)
    else:
        plain = text
    if not plain.strip():
        return bad_request("message text is empty")
    if utf16_len(plain) > MAX_TEXT:
        return bad_request("message is too long")
    return None


class FloodControl:
    """Telegram's sliding windows over accepted messages. Not thread-safe: the server calls it
    under its own lock."""

    def __init__(
        self,
        per_second: int = 30,
        chat_gap: float = 1.0,
        group_per_minute: int = 20,
        group_window: float = 60.0,
    ) -> None:
        self.per_second, self.chat_gap = per_second, chat_gap
        self.group_per_minute, self.group_window = group_per_minute, group_window
        self.recent: collections.deque[float] = collections.deque()
        self.last_to_chat: dict[object, float] = {}
        self.group_recent: dict[object, collections.deque[float]] = {}
        self.refused = 0

    def admit(self, chat: object, is_group: bool, now: float) -> int | None:
        """Counts the message and returns None, or returns the ``retry_after`` of a 429."""
        while self.recent and self.recent[0] <= now - 1.0:
            self.recent.popleft()
        waits = []
        if len(self.recent) >= self.per_second:
            waits.append(self.recent[0] + 1.0 - now)
        last = self.last_to_chat.get(chat) if chat is not None else None
        if last is not None and now - last < self.chat_gap:
            waits.append(last + self.chat_gap - now)
        group = (
            self.group_recent.setdefault(chat, collections.deque())
            if is_group and chat is not None
            else None
        )
        if group is not None:
            while group and group[0] <= now - self.group_window:
                group.popleft()
            if len(group) >= self.group_per_minute:
                waits.append(group[0] + self.group_window - now)
        if waits:
            self.refused += 1
            return max(1, math.ceil(max(waits)))
        self.recent.append(now)
        if chat is not None:
            self.last_to_chat[chat] = now
        if group is not None:
            group.append(now)
        return None
