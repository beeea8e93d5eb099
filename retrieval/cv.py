"""Honest measurement: k-fold cross-validation over a question set, folds grouped by article.

Every learned weight and threshold (the ranker and the abstainer, ``retrieval/rank.py``) is
fitted on the other folds and judged on the held-out one; the in-sample figures (fitted and
judged on all questions) are printed beside them, and a large gap means overfitting. Questions
about one article share a fold, so a fold never learns the article it is judged on; the
unanswerable ones (no article) are spread over the folds.

One split of 57 articles into five folds is noisy: the same code scores a question or two
apart on another split. ``splits`` > 1 repeats the cross-validation over other splits (articles
dealt to folds by salted hashes) and reports the mean beside the first split's figures.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from retrieval.answer import Answerer, build_quote
from retrieval.evaluate import EvalFileError, EvalQuestion, evaluate, first_hit, fold
from retrieval.features import LATER_ONLY, Pool
from retrieval.rank import (
    QUOTE_EXTENSIONS,
    Example,
    Ranker,
    fit_abstain,
    fit_rank,
    store_fingerprint,
)
from retrieval.search import Searcher

FOLDS = 5
EVAL_K = 5  # citations asked for per question (hit@5 is the widest figure)


def group_folds(questions: Sequence[EvalQuestion], k: int = FOLDS, split: int = 0) -> list[int]:
    """A fold number per question: one article's questions share a fold; questions without
    an article (unanswerable) are dealt round-robin. Deterministic: the largest groups go first,
    each to the fold holding fewest questions, ties broken by a hash of the article name (salted
    with ``split`` when it is not 0: another split of the same kind)."""
    salt = f"#{split}" if split else ""
    groups: dict[str, list[int]] = {}
    loose: list[int] = []
    for i, q in enumerate(questions):
        if q.doc:
            groups.setdefault(q.doc, []).append(i)
        else:
            loose.append(i)
    sizes = [0] * k
    out = [0] * len(questions)
    order = sorted(
        groups.items(),
        key=lambda kv: (-len(kv[1]), hashlib.sha1((kv[0] + salt).encode()).hexdigest()),
    )
    for _, members in order:
        target = min(range(k), key=lambda f: (sizes[f], f))
        for i in members:
            out[i] = target
        sizes[target] += len(members)
    unanswerable_in = [0] * k
    for n, i in enumerate(loose):
        target = n % k
        out[i] = target
        unanswerable_in[target] += 1
    return out


def examples(searcher: Searcher, questions: Sequence[EvalQuestion]) -> list[Example]:
    """Each question's candidate features with labels (unit holds an answer string)."""
    out = []
    for q in questions:
        pool = searcher.pool(q.question)
        texts = quotes(pool)
        needles = [fold(n) for n in q.answer_contains if n.strip()]
        labels = np.array([any(n in fold(t) for n in needles) for t in texts], np.int8)
        out.append(Example(pool.features[pool.candidates], labels, q.answerable))
    return out


def quotes(pool: Pool) -> list[str]:
    """The quote a user would be shown for each candidate (``answer.build_quote``): the label
    is whether that text holds an answer, as the hit rule scores it."""
    near = pool.near
    out = []
    for r in pool.rows[pool.candidates]:
        r = int(r)
        row = near.rows[r]
        prev, nxt = near.prev_of.get(r), near.next_of.get(r)
        quote, _ = build_quote(
            r,
            row.text,
            row.kind,
            near.rows.get(prev) if prev is not None else None,
            near.rows.get(nxt) if nxt is not None else None,
            pool.terms,
        )
        out.append(quote)
    return out


def fit(
    searcher: Searcher, questions: Sequence[EvalQuestion], exs: Sequence[Example] | None = None
) -> Ranker:
    """Ranker and abstainer fitted on ``questions``."""
    exs = list(exs) if exs is not None else examples(searcher, questions)
    model = searcher.embedder.name
    groups = [q.group for q in questions]
    ranker = Ranker(model, fit_rank(exs, groups, without=LATER_ONLY))
    ranker.rest = fit_rank(exs, groups)
    ranker.store = store_fingerprint(searcher.store.read_params())
    evidence = np.vstack([searcher.result(q.question, ranker=ranker).evidence for q in questions])
    answerable = np.array([q.answerable for q in questions])
    ranker.abstain, ranker.threshold = fit_abstain(evidence, answerable)
    # Two-sentence quotes (a unit and its better neighbour) only when they cite answers better
    # on these questions; on a tie, the narrower rule.
    judged = {}
    for extend in QUOTE_EXTENSIONS:
        ranker.extend_quotes = extend
        m = evaluate(questions, _answers(Answerer(searcher, ranker)))["metrics"]
        judged[extend] = (m["hit@3"], m["hit@1"], m["mrr"])
    ranker.extend_quotes = max(QUOTE_EXTENSIONS, key=lambda e: judged[e])
    ranker.meta = {
        "questions": len(questions),
        "answerable": int(answerable.sum()),
        "model": model,
    }
    return ranker


def _answers(answerer: Answerer):  # noqa: ANN202
    def ask(question: str) -> tuple[bool, list[str]]:
        a = answerer.answer(question, k=EVAL_K)
        return a.answered, [c.quote for c in a.citations]

    return ask


@dataclass
class CvReport:
    in_sample: dict
    reachable: float
    folds: int
    rows: list[dict]  # per question, out of fold (split 0)
    splits: list[dict]  # out-of-fold metrics of each split, the first (split 0) first

    @property
    def out_of_fold(self) -> dict:
        """The out-of-fold metrics of the first split (the one ``rows`` holds)."""
        return self.splits[0]

    @property
    def out_of_fold_mean(self) -> dict:
        """The mean of each figure over the splits (``out_of_fold`` with one split)."""
        if len(self.splits) < 2:
            return self.out_of_fold
        mean = {}
        for key, value in self.out_of_fold.items():
            mean[key] = (
                float(np.mean([d[key] for d in self.splits])) if isinstance(value, float) else value
            )
        return mean

    def format(self) -> str:
        from retrieval.evaluate import format_metrics

        text = (
            f"in-sample (fitted and judged on all {self.in_sample['questions']} questions)\n"
            + format_metrics(self.in_sample)
            + f"\nout-of-fold ({self.folds} folds grouped by article"
            + (f"; the first of {len(self.splits)} splits" if len(self.splits) > 1 else "")
            + ")\n"
            + format_metrics(self.out_of_fold)
        )
        if len(self.splits) > 1:
            per = " ".join(f"{d['hit@1']:.3f}/{d['hit@3']:.3f}" for d in self.splits)
            text += (
                f"\nout-of-fold, mean of {len(self.splits)} splits into {self.folds} folds\n"
                + format_metrics(self.out_of_fold_mean)
                + f"\n  hit@1/hit@3 per split: {per}"
            )
        return (
            text + f"\nreachable {self.reachable:.1%} (answerable questions whose answer lies in a "
            "citable unit)"
        )


def cross_validate(
    searcher: Searcher, questions: Sequence[EvalQuestion], k: int = FOLDS, splits: int = 1
) -> CvReport:
    """In-sample and out-of-fold metrics of the fitted ranker and abstainer; with ``splits``
    > 1, out of fold over that many splits of the questions into folds too."""
    if searcher.pool_cache is None:
        searcher.pool_cache = {}
    exs = examples(searcher, questions)
    runs = [_out_of_fold(searcher, questions, exs, k, split) for split in range(max(1, splits))]
    everything = fit(searcher, questions, exs)
    in_sample = evaluate(questions, _answers(Answerer(searcher, everything)))["metrics"]
    return CvReport(
        in_sample, reachable(searcher, questions), k, runs[0], [summarise(r) for r in runs]
    )


def _out_of_fold(
    searcher: Searcher,
    questions: Sequence[EvalQuestion],
    exs: Sequence[Example],
    k: int,
    split: int,
) -> list[dict]:
    """Per question, its row judged by a ranker fitted on the other folds of one split."""
    folds = group_folds(questions, k, split)
    rows: list[dict | None] = [None] * len(questions)
    for f in range(k):
        train = [i for i in range(len(questions)) if folds[i] != f]
        test = [i for i in range(len(questions)) if folds[i] == f]
        if not test:
            continue
        ranker = fit(searcher, [questions[i] for i in train], [exs[i] for i in train])
        result = evaluate([questions[i] for i in test], _answers(Answerer(searcher, ranker)))
        for i, row in zip(test, result["rows"], strict=True):
            rows[i] = {**row, "fold": f}
    return [r for r in rows if r is not None]


def summarise(rows: list[dict]) -> dict:
    """``evaluate``'s metrics from its per-question rows (gathered over folds)."""
    from retrieval.evaluate import metrics

    return metrics(rows)


def reachable(searcher: Searcher, questions: Sequence[EvalQuestion]) -> float:
    """Share of answerable questions whose answer string lies inside some citable unit (a
    heading or a bare label is searched but never cited: ``search.says_nothing``)."""
    texts = [fold(t) for t in searcher.unit_texts(citable=True)]
    answerable = [q for q in questions if q.answerable]
    hits = sum(1 for q in answerable if any(first_hit([t], q.answer_contains) for t in texts if t))
    return hits / len(answerable) if answerable else 1.0


def evaluate_with_cv(
    answerer: Answerer, questions: Sequence[EvalQuestion], folds: int, splits: int = 1
) -> dict:
    """``talksbot eval``: the shipped ranker's figures, and with ``folds`` > 1 the in-sample
    and out-of-fold figures of a ranker refitted on these questions (over ``splits`` splits
    into folds), and reachability."""
    from retrieval.evaluate import format_metrics

    groups = {q.group for q in questions}
    if folds > 1 and len(groups) < folds:
        raise EvalFileError(
            f"{folds}-fold cross-validation needs questions about at least {folds} articles "
            f"(these are about {len(groups)}); use --folds 0 for the shipped ranker's figures"
        )
    shipped = evaluate(questions, _answers(answerer))
    out: dict = {"metrics": shipped["metrics"], "rows": shipped["rows"]}
    ranker = answerer.ranker or answerer.searcher.ranker
    text = [f"ranker in use ({ranker.meta.get('questions', 'not')} questions fitted)"]
    text.append(format_metrics(shipped["metrics"]))
    if folds > 1:
        report = cross_validate(answerer.searcher, questions, folds, splits)
        out.update(
            in_sample=report.in_sample,
            out_of_fold=report.out_of_fold,
            reachable=report.reachable,
            folds=folds,
        )
        if splits > 1:
            out.update(out_of_fold_mean=report.out_of_fold_mean, out_of_fold_splits=report.splits)
        text.append(report.format())
    else:
        out["reachable"] = reachable(answerer.searcher, questions)
        text.append(f"reachable {out['reachable']:.1%}")
    out["text"] = "\n".join(text)
    return out
