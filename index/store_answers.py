"""Answers shown in chats (so their buttons outlive restarts) and the feedback on them."""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
import time
from dataclasses import dataclass

from index.schema import write

# What a button may carry as its answer's key: a token, or (buttons sent before tokens) an id.
KEY = re.compile(r"[A-Za-z0-9_-]{1,22}")


@dataclass(frozen=True)
class SavedAnswer:
    id: int
    question: str
    shown: list[int]
    chat_id: int | None  # the chat its message was sent to: its buttons work there only


class AnswerLog:
    """The ``answers`` and ``feedback`` tables."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def save(self, chat_id: int | None, question: str, shown: list[int]) -> str:
        """Store an answer; returns its token, the unguessable key its buttons carry."""
        token = secrets.token_urlsafe(12)  # 16 characters, 96 random bits
        with write(self.db):
            self.db.execute(
                "INSERT INTO answers(created_at, chat_id, question, shown, token) "
                "VALUES (?, ?, ?, ?, ?)",
                (time.time(), chat_id, question, json.dumps(shown), token),
            )
        return token

    def update(self, answer_id: int, shown: list[int]) -> None:
        with write(self.db):
            self.db.execute("UPDATE answers SET shown=? WHERE id=?", (json.dumps(shown), answer_id))

    def load(self, key: str) -> SavedAnswer | None:
        """The answer a button names by token; an all-digit key is an id from before tokens,
        found only among answers that have none."""
        if not KEY.fullmatch(key or ""):
            return None
        row = self.db.execute(
            "SELECT id, question, shown, chat_id FROM answers WHERE token=?", (key,)
        ).fetchone()
        if row is None and key.isascii() and key.isdigit():
            row = self.db.execute(
                "SELECT id, question, shown, chat_id FROM answers WHERE id=? AND token IS NULL",
                (int(key),),
            ).fetchone()
        return SavedAnswer(row[0], row[1], json.loads(row[2]), row[3]) if row else None

    def add_feedback(
        self, chat_id: int | None, user_id: int | None, question: str, ids: list[int], vote: int
    ) -> None:
        """One vote per person on what they were shown: pressing again (a script can press
        hundreds of times) or changing one's mind replaces their earlier vote."""
        citations = json.dumps(ids)
        with write(self.db):
            self.db.execute(
                "DELETE FROM feedback WHERE chat_id IS ? AND user_id IS ? AND question=? "
                "AND citations=?",
                (chat_id, user_id, question, citations),
            )
            self.db.execute(
                "INSERT INTO feedback(created_at, chat_id, user_id, question, citations, vote) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (time.time(), chat_id, user_id, question, citations, vote),
            )

    def prune(self, before: float) -> dict[str, int]:
        """Retention: answers (their buttons then say they expired) and feedback older than
        ``before`` are deleted; how many of each."""
        with write(self.db):
            return {
                "answers": self.db.execute(
                    "DELETE FROM answers WHERE created_at < ?", (before,)
                ).rowcount,
                "feedback": self.db.execute(
                    "DELETE FROM feedback WHERE created_at < ?", (before,)
                ).rowcount,
            }
