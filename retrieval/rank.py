"""The learned ranker and abstainer: linear models over ``retrieval.features``.

Fitted on the dev questions (``talksbot fit-ranker``), saved as JSON in ``retrieval/rankers/``
(one file per embedding model: the features' scale depends on the model) and judged out of
fold (``retrieval/cv.py``). A ranker fitted for another model or feature set is refused.

* Ranking: a listwise linear model (softmax over each question's candidates, numpy/scipy);
  label 1 when the unit holds an accepted answer string. Questions whose pool holds no answer
  teach nothing and are left out. Its L2 penalty is chosen by an inner grouped CV. Two are
  fitted: ``rank`` picks the first citation without ``features.LATER_ONLY``, ``rest`` orders
  the others with them.
* Abstention: logistic regression over per-question evidence (best passage scores, how much
  of the question the corpus and the best passages cover, names the corpus never mentions
  even fuzzily), each weight kept to its evidence's sign; it answers when P(answerable)
  reaches a threshold chosen on the training questions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from index.params import mismatches
from retrieval.features import FEATURES

RANKER_DIR = Path(__file__).resolve().parent / "rankers"
# A ranker fitted for one store (``talksbot fit-ranker``) lives in its data dir, beside the
# params it records: the shipped ones (``RANKER_DIR``) are code, and not every install can or
# should write there.
STORE_RANKER = "ranker.json"
RANKER_FORMAT = 3
# What of a store's params.json decides the features' scale: a ranker records these values of
# the store it was fitted on and refuses a store whose values differ (its model, dimension or
# embedding recipe). The backend (int8 or float ONNX, torch) changes cosines only in the third
# decimal and is left out.
QUOTE_EXTENSIONS = ("", "paragraph", "sentences")  # narrowest first
STORE_KEYS = ("model", "model_sha256", "dim", "pooling", "normalized", "max_tokens", "context")
L2_GRID = (0.003, 0.01, 0.03, 0.1)  # ranker penalties tried; picked by inner CV
INNER_FOLDS = 4
# ``talksbot fit-ranker`` refuses fewer answerable questions, or questions about fewer articles
# than the inner cross-validation has folds: a ranker fitted on a handful of questions would
# answer every question of the store worse than the shipped one. A floor, not a tuned value.
MIN_FIT_QUESTIONS = 20
MIN_FIT_ARTICLES = INNER_FOLDS
ABSTAIN_C = 0.5
# The abstention threshold is the strictest that wrongly abstains on at most this share of the
# training questions' answerable ones (half the product's 5% budget, for the unseen).
WRONG_ABSTAIN_BUDGET = 0.025

EVIDENCE = (
    "top_score",  # ranker score of the best candidate
    "top_dense",  # best cosine in the pool
    "top3_coverage",  # best term coverage among the three best candidates
    "vocab_coverage",  # share of the IDF weight of its names and rare words the corpus uses
    "unknown_names",  # names (as typed) the corpus never mentions, even spelled differently
    "score_margin",  # best minus fifth-best ranker score
)
# Which way each piece of evidence points, known before any fit: more of it means the question
# is more likely covered (+1), or less (-1). The abstainer's weights keep these signs. Out of
# fold over ten fold seeds: wrong abstentions 2.7% -> 2.6%, hit@1 .551 -> .552, unanswerable
# questions abstained on unchanged (19 of 23 in every seed); on 40 probe questions written
# afterwards, 15 of 15 answerable ones answered (12 before), 10 of 25 unanswerable (10 before).
EVIDENCE_SIGN = {
    "top_score": 1,
    "top_dense": 1,
    "top3_coverage": 1,
    "vocab_coverage": 1,
    "unknown_names": -1,
    "score_margin": 1,
}


class RankerError(Exception):
    """A ranker file that does not fit this index; the message says what to do."""


def model_key(model: str) -> str:
    """File-name-safe key of an embedding model name."""
    return model.rsplit("/", 1)[-1].lower().replace(" ", "-")


@dataclass
class Linear:
    """Standardise, then a linear score."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale) @ self.coef + self.intercept

    def to_json(self, names: Sequence[str]) -> dict:
        return {
            "intercept": round(float(self.intercept), 6),
            "weights": {
                n: {
                    "coef": round(float(c), 6),
                    "mean": round(float(m), 6),
                    "scale": round(float(s), 6),
                }
                for n, c, m, s in zip(names, self.coef, self.mean, self.scale, strict=True)
            },
        }

    @classmethod
    def from_json(cls, obj: dict, names: Sequence[str]) -> Linear:
        w = obj["weights"]
        missing = [n for n in names if n not in w]
        extra = [n for n in w if n not in names]
        if missing or extra:
            raise RankerError(
                f"ranker features differ from the code's (missing {missing}, unknown {extra}); "
                "refit it with `talksbot fit-ranker`"
            )
        return cls(
            mean=np.array([w[n]["mean"] for n in names], np.float32),
            scale=np.array([w[n]["scale"] for n in names], np.float32),
            coef=np.array([w[n]["coef"] for n in names], np.float32),
            intercept=float(obj["intercept"]),
        )


def _fit_abstainer(x: np.ndarray, answerable: np.ndarray, c: float) -> Linear:
    """L2-penalised logistic regression (sklearn's objective at ``C=c``) whose weights keep
    each evidence's sign (``EVIDENCE_SIGN``): with 20-odd unanswerable training questions an
    unconstrained fit gave the best passages' coverage a negative weight, so a short question
    fully covered ("who is Lavrov") counted as less answerable for it."""
    from scipy.optimize import minimize
    from scipy.special import expit

    if not np.isfinite(x).all():  # sklearn refused these; a NaN threshold abstains on all
        raise RankerError("the abstainer's evidence holds a value that is not a finite number")
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-6] = 1.0
    z = (x - mean) / scale
    y = answerable.astype(np.float64)

    def loss(p: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = p[:-1], p[-1]
        s = z @ w + b
        g = expit(s) - y
        value = float((np.logaddexp(0.0, s) - y * s).sum() + (w @ w) / (2 * c))
        return value, np.append(z.T @ g + w / c, g.sum())

    bounds = [(0.0, None) if EVIDENCE_SIGN[n] > 0 else (None, 0.0) for n in EVIDENCE]
    p = minimize(
        loss,
        np.zeros(len(EVIDENCE) + 1),
        jac=True,
        method="L-BFGS-B",
        bounds=[*bounds, (None, None)],
    ).x
    if not np.isfinite(p).all():
        raise RankerError("fitting the abstainer failed (its weights are not finite)")
    return Linear(mean.astype(np.float32), scale.astype(np.float32), p[:-1], float(p[-1]))


@dataclass
class Ranker:
    """Scores candidates and decides whether a question is covered."""

    model: str
    rank: Linear  # scores every candidate; the best citable one is cited first
    abstain: Linear | None = None
    threshold: float = 0.0  # on the abstainer's logit: answer when it is at least this
    meta: dict = field(default_factory=dict)
    store: dict = field(default_factory=dict)  # ``STORE_KEYS`` of the store it was fitted on
    # Quote a unit with its better-scoring neighbour: "" never, "paragraph" of the same
    # paragraph, "sentences" also across paragraphs (answer.build_quote); chosen on the
    # training questions (``retrieval.cv.fit``).
    extend_quotes: str = ""
    rest: Linear | None = None  # orders the citations after the first (None: ``rank`` does)

    def check_store(self, params: dict | None) -> None:
        """Refuse a store built other than the one this ranker was fitted on (another model,
        dimension or embedding recipe gives its features another scale)."""
        if not params or not self.store:
            return  # an empty data dir, or the unfitted default ranker
        diffs = mismatches(self.store, params, "ranker fitted on", "index")
        if diffs:
            raise RankerError(
                f"the ranker for {self.model} was fitted on a store built differently ("
                + "; ".join(diffs)
                + "); refit it on this store with `talksbot fit-ranker`, or use the store "
                "settings it was fitted on"
            )

    def score(self, features: np.ndarray) -> np.ndarray:
        return self.rank(features).astype(np.float32)

    def score_rest(self, features: np.ndarray) -> np.ndarray:
        """Scores ordering the citations after the first."""
        return (self.rest or self.rank)(features).astype(np.float32)

    def answerable(self, evidence: np.ndarray) -> bool:
        if self.abstain is None:
            return True
        return float(self.abstain(evidence[None, :])[0]) >= self.threshold

    # -- save / load ------------------------------------------------------------------------
    def to_json(self) -> dict:
        out = {
            "format": RANKER_FORMAT,
            "model": self.model,
            "store": self.store,
            "features": list(FEATURES),
            "evidence": list(EVIDENCE),
            "extend_quotes": self.extend_quotes,
            "rank": self.rank.to_json(FEATURES),
            "meta": self.meta,
        }
        if self.rest is not None:
            out["rest"] = self.rest.to_json(FEATURES)
        if self.abstain is not None:
            out["abstain"] = self.abstain.to_json(EVIDENCE)
            out["threshold"] = round(self.threshold, 6)
        return out

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=1, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: Path, model: str) -> Ranker:
        """The ranker in ``path``; refused when fitted for another model or feature set."""
        try:
            obj = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise RankerError(f"cannot read the ranker {path}: {exc}") from None
        if obj.get("format") != RANKER_FORMAT:
            raise RankerError(
                f"{path}: ranker format {obj.get('format')!r}, expected {RANKER_FORMAT}; refit "
                "it with `talksbot fit-ranker`"
            )
        if obj.get("model") != model:
            raise RankerError(
                f"{path} was fitted for {obj.get('model')!r}, but the index was built with "
                f"{model!r}; refit it with `talksbot fit-ranker`"
            )
        for key, names in (("features", FEATURES), ("evidence", EVIDENCE)):
            if obj.get(key) != list(names):
                raise RankerError(
                    f"{path} was fitted on other {key} than the code computes ({obj.get(key)!r}, "
                    f"code: {list(names)!r}); refit it with `talksbot fit-ranker`"
                )
        abstain = Linear.from_json(obj["abstain"], EVIDENCE) if "abstain" in obj else None
        rest = Linear.from_json(obj["rest"], FEATURES) if "rest" in obj else None
        return cls(
            model=model,
            rank=Linear.from_json(obj["rank"], FEATURES),
            abstain=abstain,
            rest=rest,
            threshold=float(obj.get("threshold", 0.0)),
            meta=obj.get("meta", {}),
            store=dict(obj.get("store") or {}),
            extend_quotes=str(obj.get("extend_quotes") or ""),
        )

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()[:16]


def default_ranker(model: str) -> Ranker:
    """Before any fit (a new model, the tests' hash embedder): cosine plus a little keyword
    score, and no abstainer."""
    n = len(FEATURES)
    coef = np.zeros(n, np.float32)
    coef[FEATURES.index("dense")] = 1.0
    coef[FEATURES.index("lexical")] = 0.2
    return Ranker(model, Linear(np.zeros(n, np.float32), np.ones(n, np.float32), coef, 0.0))


def store_fingerprint(params: dict | None) -> dict:
    """The ``STORE_KEYS`` of a store's params (what a ranker fitted on it records)."""
    return {k: params[k] for k in STORE_KEYS if params and k in params}


def ranker_path(model: str, directory: Path = RANKER_DIR) -> Path:
    return directory / f"{model_key(model)}.json"


def load_ranker(model: str, directory: Path = RANKER_DIR, store_dir: Path | None = None) -> Ranker:
    """The ranker a store's questions are answered with: the one fitted for that store
    (``STORE_RANKER`` in its data dir, written by ``talksbot fit-ranker``) if there is one,
    else the one shipped for ``model``, else the default one."""
    own = store_dir / STORE_RANKER if store_dir is not None else None
    if own is not None and own.exists():
        try:
            return Ranker.load(own, model)
        except RankerError as exc:  # e.g. fitted before the code's features changed
            raise RankerError(f"{exc}; or delete it to answer with the shipped ranker") from None
    path = ranker_path(model, directory)
    return Ranker.load(path, model) if path.exists() else default_ranker(model)


# -- fitting -------------------------------------------------------------------------------
@dataclass
class Example:
    """One training question: its pool's candidate features and labels, and its evidence
    under a given ranker (filled in by the caller)."""

    features: np.ndarray  # candidates only
    labels: np.ndarray  # 1 where the unit holds an answer string
    answerable: bool


def _listwise(data: list[tuple[np.ndarray, np.ndarray]], l2: float) -> np.ndarray:
    """Weights maximising, per question, the softmax probability of its answer-holding units
    among all its candidates (ListNet-style), with an L2 penalty."""
    from scipy.optimize import minimize

    d = data[0][0].shape[1]

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        total, grad = 0.0, np.zeros(d)
        for x, y in data:
            s = x @ w
            e = np.exp(s - s.max())
            z, p = e.sum(), e[y].sum()
            total -= np.log(p / z)
            grad -= (x[y].T @ e[y]) / p - (x.T @ e) / z
        n = len(data)
        return total / n + l2 * (w @ w) / 2, grad / n + l2 * w

    return minimize(loss, np.zeros(d), jac=True, method="L-BFGS-B").x


def _top1(data: list[tuple[np.ndarray, np.ndarray]], w: np.ndarray) -> float:
    return float(np.mean([y[int(np.argmax(x @ w))] for x, y in data])) if data else 0.0


def fit_rank(
    examples: Sequence[Example],
    groups: Sequence[str] | None = None,
    l2: float | None = None,
    without: Sequence[str] = (),
) -> Linear:
    """Listwise ranker over the examples' candidates, weighing every feature but ``without``
    (their weights stay 0). With ``l2`` unset, the penalty is chosen from ``L2_GRID`` by an
    inner cross-validation over ``groups`` (articles) of these examples alone, so an outer fold
    never sees its own questions."""
    keep = [i for i, ex in enumerate(examples) if ex.answerable and ex.labels.any()]
    if not keep:
        return default_ranker("").rank  # nothing to learn from
    x_all = np.vstack([examples[i].features for i in keep])
    mean = x_all.mean(axis=0)
    scale = x_all.std(axis=0)
    scale[scale < 1e-6] = 1.0
    used = np.array([name not in without for name in FEATURES])
    data = [
        ((examples[i].features[:, used] - mean[used]) / scale[used], examples[i].labels > 0)
        for i in keep
    ]
    if l2 is None:
        names = [groups[i] if groups else str(i) for i in keep]
        inner = _inner_folds(names, INNER_FOLDS)
        scores = {c: 0.0 for c in L2_GRID}
        for candidate in L2_GRID:
            hits = []
            for f in range(INNER_FOLDS):
                train = [d for d, g in zip(data, inner, strict=True) if g != f]
                test = [d for d, g in zip(data, inner, strict=True) if g == f]
                if train and test:
                    hits.append(_top1(test, _listwise(train, candidate)) * len(test))
            scores[candidate] = float(sum(hits))
        l2 = max(L2_GRID, key=lambda c: (scores[c], c))
    w = np.zeros(len(FEATURES))
    w[used] = _listwise(data, l2)
    return Linear(mean.astype(np.float32), scale.astype(np.float32), w.astype(np.float32), 0.0)


def _inner_folds(names: Sequence[str], k: int) -> list[int]:
    """Fold per item, items of one group together (groups dealt by a stable hash)."""
    order = sorted(set(names), key=lambda n: hashlib.sha1(n.encode()).hexdigest())
    of = {n: i % k for i, n in enumerate(order)}
    return [of[n] for n in names]


def fit_abstain(
    evidence: np.ndarray, answerable: np.ndarray, c: float = ABSTAIN_C
) -> tuple[Linear, float]:
    """The abstainer and its threshold, both from these (training) questions only."""
    if answerable.all() or not answerable.any():
        return Linear(
            np.zeros(len(EVIDENCE)), np.ones(len(EVIDENCE)), np.zeros(len(EVIDENCE)), 1.0
        ), 0.0
    linear = _fit_abstainer(evidence, answerable, c)
    logits = linear(evidence)
    ranked = np.sort(logits[answerable])
    allowed = int(np.floor(WRONG_ABSTAIN_BUDGET * len(ranked)))
    # Answer from the (allowed+1)-th lowest answerable logit up; the cut sits midway to the
    # next one down, so it is not glued to one training question.
    best = float(ranked[allowed])
    best = (best + float(ranked[allowed - 1])) / 2 if allowed > 0 else best - 1e-3
    return linear, best
