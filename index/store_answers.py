"""Answers shown in chats (so their buttons outlive restarts) and the feedback on them."""

from __future__ import annotations

import json
import sqlite3
import time


class AnswerLog:
    """The ``answers`` and ``feedback`` tables."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def save(self, chat_id: int | None, question: str, shown: list[int]) -> int:
        with self.db:
            return self.db.execute(
                "INSERT INTO answers(created_at, chat_id, question, shown) VALUES (?, ?, ?, ?)",
                (time.time(), chat_id, question, json.dumps(shown)),
            ).lastrowid

    def update(self, answer_id: int, shown: list[int]) -> None:
        with self.db:
            self.db.execute("UPDATE answers SET shown=? WHERE id=?", (json.dumps(shown), answer_id))

    def load(self, answer_id: int) -> tuple[str, list[int]] | None:
        row = self.db.execute(
            "SELECT question, shown FROM answers WHERE id=?", (answer_id,)
        ).fetchone()
        return (row[0], json.loads(row[1])) if row else None

    def add_feedback(
        self, chat_id: int | None, user_id: int | None, question: str, ids: list[int], vote: int
    ) -> None:
        with self.db:
            self.db.execute(
                "INSERT INTO feedback(created_at, chat_id, user_id, question, citations, vote) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (time.time(), chat_id, user_id, question, json.dumps(ids), vote),
            )
