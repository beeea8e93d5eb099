"""Retrieval quality on a JSONL question set: hit@1/3/5, MRR and abstention shares."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'", "‚": "'", "′": "'"})


def fold(text: str) -> str:
    """Case, curly quotes and white space folded, as the hit rule compares."""
    return re.sub(r"\s+", " ", text.translate(_QUOTES).casefold()).strip()


@dataclass
class EvalQuestion:
    question: str
    answer_contains: list[str]
    answerable: bool
    kind: str = ""
    id: str = ""
    doc: str = ""  # the article the answer comes from ("" for unanswerable questions)

    @property
    def group(self) -> str:
        """What keeps questions together when fitting: their article, else the question."""
        return self.doc or self.id


class EvalFileError(Exception):
    pass


def load_questions(path: Path) -> list[EvalQuestion]:
    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalFileError(f"{path}: cannot read ({exc})") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            question, needles = obj["question"], obj.get("answer_contains") or []
            answerable = obj.get("answerable", True)
            if not isinstance(question, str) or not question.strip():
                raise ValueError('"question" must be a non-empty string')
            if not isinstance(answerable, bool):
                raise ValueError('"answerable" must be true or false')
            if not isinstance(needles, list) or not all(isinstance(x, str) for x in needles):
                raise ValueError('"answer_contains" must be a list of strings')
            if answerable and not any(x.strip() for x in needles):
                raise ValueError('an answerable question needs "answer_contains" strings')
            out.append(
                EvalQuestion(
                    question=question,
                    answer_contains=needles,
                    answerable=answerable,
                    kind=str(obj.get("kind", "")),
                    id=str(obj.get("id", n)),
                    doc=str(obj.get("doc") or ""),
                )
            )
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            raise EvalFileError(f"{path}:{n}: not a question object ({exc})") from None
    if not out:
        raise EvalFileError(f"{path}: no questions")
    return out


def first_hit(quotes: list[str], needles: list[str]) -> int | None:
    """1-based rank of the first quote containing any needle."""
    folded = [fold(n) for n in needles if n.strip()]
    for rank, quote in enumerate(quotes, 1):
        q = fold(quote)
        if any(n in q for n in folded):
            return rank
    return None


def evaluate(
    questions: Iterable[EvalQuestion], answer: Callable[[str], tuple[bool, list[str]]]
) -> dict:
    """``answer(q) -> (answered, quotes best first)``; the metrics and a row per question."""
    rows = []
    for q in questions:
        answered, quotes = answer(q.question)
        rank = first_hit(quotes, q.answer_contains) if answered else None
        rows.append(
            {
                "id": q.id,
                "kind": q.kind,
                "answerable": q.answerable,
                "answered": answered,
                "rank": rank,
                "question": q.question,
            }
        )
    return {"metrics": metrics(rows), "rows": rows}


def metrics(rows: list[dict]) -> dict:
    """hit@k, MRR and abstention shares of per-question rows."""
    ans = [r for r in rows if r["answerable"]]
    unans = [r for r in rows if not r["answerable"]]

    def share(items: list, pred: Callable[[dict], bool]) -> float:
        return sum(1 for r in items if pred(r)) / len(items) if items else 0.0

    return {
        "questions": len(rows),
        "answerable": len(ans),
        "unanswerable": len(unans),
        "hit@1": share(ans, lambda r: r["rank"] is not None and r["rank"] <= 1),
        "hit@3": share(ans, lambda r: r["rank"] is not None and r["rank"] <= 3),
        "hit@5": share(ans, lambda r: r["rank"] is not None and r["rank"] <= 5),
        "mrr": sum(1 / r["rank"] for r in ans if r["rank"]) / len(ans) if ans else 0.0,
        "abstained_unanswerable": share(unans, lambda r: not r["answered"]),
        "wrongly_abstained": share(ans, lambda r: not r["answered"]),
    }


def format_metrics(m: dict) -> str:
    return (
        f"questions {m['questions']} ({m['answerable']} answerable, {m['unanswerable']} not)\n"
        f"hit@1 {m['hit@1']:.3f}  hit@3 {m['hit@3']:.3f}  hit@5 {m['hit@5']:.3f}  "
        f"MRR {m['mrr']:.3f}\n"
        f"abstained on unanswerable {m['abstained_unanswerable']:.1%}  "
        f"wrongly abstained on answerable {m['wrongly_abstained']:.1%}"
    )
