"""Measurement and ranking machinery: CV folds, reachability, the learned ranker's file, fuzzy
names and the mpnet model's checksum. Fast: hash embedder and small fixtures only."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from index.embed import DEFAULT_BACKEND, MODEL_NAME, HashEmbedder
from index.mpnet import (
    MPNET_NAME,
    MPNET_PACKAGES,
    MPNET_SHA256,
    MPNET_VERSION,
    ModelFileError,
    assemble,
    model_dir,
)
from index.params import ingest_params
from index.segment import BOILERPLATE, segment, split_sentences
from index.store import Store
from retrieval.cv import cross_validate, group_folds, reachable
from retrieval.evaluate import EvalQuestion
from retrieval.features import (
    FEATURES,
    LATER_ONLY,
    answer_type,
    article_rank,
    asks_name,
    support,
)
from retrieval.names import MAX_SPELLINGS, NameMatcher, skeleton
from retrieval.rank import (
    EVIDENCE,
    EVIDENCE_SIGN,
    Example,
    Linear,
    Ranker,
    RankerError,
    fit_abstain,
    fit_rank,
    load_ranker,
    ranker_path,
    store_fingerprint,
)
from retrieval.search import Searcher
from tests.harness.data import CORPUS, ingest, open_answerer


def q(doc: str, answerable: bool = True, n: int = 0) -> EvalQuestion:
    return EvalQuestion(f"question {doc} {n}", ["x"], answerable, doc=doc, id=f"{doc}-{n}")


def test_folds_keep_an_articles_questions_together_and_spread_unanswerable() -> None:
    questions = [q(f"a{i % 7}", n=i) for i in range(30)] + [q("", False, n=i) for i in range(10)]
    folds = group_folds(questions, k=5)
    by_doc: dict[str, set[int]] = {}
    for question, f in zip(questions, folds, strict=True):
        if question.doc:
            by_doc.setdefault(question.doc, set()).add(f)
    assert all(len(fs) == 1 for fs in by_doc.values())
    unanswerable = [f for question, f in zip(questions, folds, strict=True) if not question.doc]
    assert sorted(unanswerable.count(f) for f in range(5)) == [2, 2, 2, 2, 2]
    assert folds == group_folds(questions, k=5)  # deterministic
    sizes = [folds.count(f) for f in range(5)]
    assert max(sizes) - min(sizes) <= 5


def test_another_split_deals_the_articles_otherwise_by_the_same_rules() -> None:
    questions = [q(f"a{i % 20}", n=i) for i in range(40)] + [q("", False, n=i) for i in range(5)]
    first = group_folds(questions, k=5)
    assert group_folds(questions, k=5, split=0) == first
    others = [group_folds(questions, k=5, split=s) for s in (1, 2, 3)]
    for split, folds in enumerate(others, start=1):
        assert folds == group_folds(questions, k=5, split=split)  # deterministic
        by_doc: dict[str, set[int]] = {}
        for question, f in zip(questions, folds, strict=True):
            by_doc.setdefault(question.doc or question.id, set()).add(f)
        assert all(len(fs) == 1 for fs in by_doc.values())
        assert sorted(folds.count(f) for f in range(5)) == sorted(first.count(f) for f in range(5))

    # Which articles share a fold changes from split to split.
    def together(folds: list[int]) -> set[frozenset[str]]:
        groups: dict[int, set[str]] = {}
        for question, f in zip(questions, folds, strict=True):
            if question.doc:
                groups.setdefault(f, set()).add(question.doc)
        return {frozenset(g) for g in groups.values()}

    assert all(together(folds) != together(first) for folds in others)


def test_month_abbreviations_do_not_split_a_sentence() -> None:
    text = (
        "Russia, Ukraine and the United States have previously held three rounds of peace "
        "talks—on Jan. 23–24, Feb. 4–5 and Feb. 17–18. The next is due in March."
    )
    assert split_sentences(text) == [
        "Russia, Ukraine and the United States have previously held three rounds of peace "
        "talks—on Jan. 23–24, Feb. 4–5 and Feb. 17–18.",
        "The next is due in March.",
    ]
    assert split_sentences("Gen. Syrskyi spoke. Sen. Graham replied.") == [
        "Gen. Syrskyi spoke.",
        "Sen. Graham replied.",
    ]


FIGURES_PAGE = """---
title: "Ukraine emergency"
url: https://example.org/emergency
published: 2026-02-20
outlet: example.org
---

Home
Donate
Our work
Contact

The war has forced millions from their homes and the needs keep growing across the country.

The 2026 Plan adopts an issue-based approach, organized around four strategic priorities

Aid agencies say they will reach the most vulnerable first, starting with the front-line towns.

14,383 civilian deaths and 37,541 injuries have been documented.

Stated Accuracy| 14 meters (Circular Error Probable)

Photo: families wait at the border crossing in Medyka

Share this article
Facebook
"""


def test_boilerplate_marked_lines_stay_citable_and_reachable(tmp_path: Path) -> None:
    units = segment(FIGURES_PAGE.split("---", 2)[2])
    marked = {u.text for u in units if u.kind == BOILERPLATE}
    assert "Stated Accuracy| 14 meters (Circular Error Probable)" in marked  # still marked …
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "figures.md").write_text(FIGURES_PAGE)
    data = tmp_path / "data"
    ingest(data, tmp_path / "c", CORPUS)
    answerer = open_answerer(data)
    questions = [
        EvalQuestion("how many civilians died", ["14,383 civilian deaths"], True),
        EvalQuestion("what accuracy is stated", ["14 meters (Circular Error Probable)"], True),
        EvalQuestion("where do families wait", ["families wait at the border"], True),
        EvalQuestion("how long did the talks last", ["after just two hours"], True),
    ]
    assert reachable(answerer.searcher, questions) == 1.0  # … and indexed all the same
    found = answerer.searcher.search("Stated Accuracy 14 meters Circular Error Probable")
    assert found[0].content == "Stated Accuracy| 14 meters (Circular Error Probable)"
    assert found[0].kind == BOILERPLATE
    missing = [EvalQuestion("?", ["a sentence no article holds"], True)]
    assert reachable(answerer.searcher, missing) == 0.0
    # A heading as long as prose (a pull quote) is cited alone; a menu label never is, so an
    # answer only a label holds counts as unreachable.
    plan = "adopts an issue-based approach"
    assert {u.kind for u in units if plan in u.text} == {"heading"}
    assert reachable(answerer.searcher, [EvalQuestion("how is the plan built", [plan], True)])
    assert (
        answerer.answer("how is the 2026 plan organized")
        .citations[0]
        .quote.startswith("The 2026 Plan adopts")
    )
    assert "Donate" in answerer.searcher.unit_texts()
    assert reachable(answerer.searcher, [EvalQuestion("how to give", ["Donate"], True)]) == 0.0


@pytest.mark.parametrize(
    ("typed", "corpus_word"),
    [
        ("zelenskiy", "zelensky"),
        ("Zelenskyy", "zelensky"),
        ("witkof", "witkoff"),
        ("Lavrof", "lavrov"),
        ("Smirnoff", "smirnov"),
        ("Kharkov", "harkov"),
        ("Shoigu", "shoygu"),
        ("Dmitriyev", "dmitriev"),
        ("Lavorv", "lavrov"),  # one typo: two letters swapped
        ("Peskow", "peskov"),
    ],
)
def test_transliterations_and_misspellings_match(typed: str, corpus_word: str) -> None:
    from index.text import tokenize

    matcher = NameMatcher(tokenize(f"{corpus_word} talks geneva"))
    assert matcher.known(typed, tokenize(typed)[0])


def test_unrelated_names_stay_unknown() -> None:
    from index.text import tokenize

    matcher = NameMatcher(tokenize("zelensky witkoff kushner geneva talks ceasefire"))
    for word in ("Erdogan", "Macron", "Ronaldo", "Kiis", "Witkins"):
        assert not matcher.known(word, tokenize(word)[0])
    assert skeleton("Zelenskyy") == skeleton("zelenskiy") == skeleton("Zelensky")


def test_spellings_are_the_stems_sharing_a_skeleton_in_one_order() -> None:
    """All the corpus's stems under a skeleton, those added later included, sorted: which
    spelling comes first must not depend on the process's string hashing."""
    matcher = NameMatcher(["zelenskyy", "zelenski", "talks"])
    assert matcher.spellings("Zelenskii", "zelenskii") == ["zelenski", "zelenskyy"]
    matcher.add(["zelenskiy", "zelenskyi", "geneva"])
    assert matcher.spellings("Zelenskii", "zelenskii") == [
        "zelenski",
        "zelenskiy",
        "zelenskyi",
        "zelenskyy",
    ]
    assert matcher.spellings("Zelensky", "zelenski") == []  # the corpus's own word


def test_a_skeleton_a_crowd_of_stems_share_spells_no_name() -> None:
    """Ordinals, numbers with units and ids ("4th", "20th", ...) share skeletons by the
    thousand, and a fetched page can bring any number of them: a question word with that
    skeleton ("Thee") stays known, as before, but is searched as typed, not by thousands of
    terms (a page of 40,000 of them made one such question take 10 s)."""
    matcher = NameMatcher([f"{i}th" for i in range(1, 5000)] + ["geneva"])
    assert matcher.spellings("Thee", "thee") == []
    assert matcher.known("Thee", "thee")
    matcher.add([f"{i}th" for i in range(5000, 6000)])
    assert matcher.spellings("Thee", "thee") == []
    few = NameMatcher([f"{i}th" for i in range(1, 1 + MAX_SPELLINGS)])
    assert len(few.spellings("Thee", "thee") or []) == MAX_SPELLINGS


@pytest.mark.parametrize(
    ("question", "kind", "name"),
    [
        ("How many prisoners were exchanged?", "number", False),
        ("how long did the meeting last", "number", False),
        ("what was the total cost of the aid", "number", False),
        ("ceasefire talks duration", "number", False),
        ("When did the envoys meet?", "date", False),
        ("what year did the war start", "date", False),
        ("why did the summit collapse", "cause", False),
        ("Who mediates the talks?", "", True),
        ("which city hosts the next round", "", True),
        # The first interrogative decides: these ask how, why and which, not for a number,
        # a name or a date.
        ("how did the auditors work out the value of the assets", "", False),
        ("why did the embassy warn citizens who live abroad", "cause", False),
        ("which country took in the biggest number of refugees", "", True),
        # A yes/no question asks for neither a date nor a name.
        ("will he stand again when the country votes", "", False),
        ("is there a city where both sides could meet", "", False),
    ],
)
def test_the_first_interrogative_decides_what_is_asked(
    question: str, kind: str, name: bool
) -> None:
    assert answer_type(question) == kind
    assert asks_name(question) is name


def _examples(rng: np.random.Generator, n: int) -> list[Example]:
    """Synthetic pools: the answer holds the highest 'dense' and 'coverage' features."""
    out = []
    for _ in range(n):
        x = rng.normal(size=(30, len(FEATURES))).astype(np.float32)
        labels = np.zeros(30, np.int8)
        labels[0] = 1
        x[0, FEATURES.index("dense")] += 3.5
        x[0, FEATURES.index("coverage")] += 3.5
        out.append(Example(x, labels, True))
    return out


def test_ranker_learns_and_round_trips_and_refuses_another_model(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    train, test = _examples(rng, 40), _examples(rng, 20)
    linear = fit_rank(train, [str(i) for i in range(40)])
    top1 = np.mean([int(np.argmax(linear(ex.features))) == 0 for ex in test])
    assert top1 > 0.8
    assert linear.coef[FEATURES.index("dense")] > 0 < linear.coef[FEATURES.index("coverage")]

    evidence = rng.normal(size=(40, len(EVIDENCE))).astype(np.float32)
    answerable = evidence[:, 0] > -0.8
    abstain, threshold = fit_abstain(evidence, answerable)
    ranker = Ranker("model-a", linear, abstain, threshold, {"questions": 40})
    path = ranker_path("org/Model-A", tmp_path)
    ranker.save(path)
    loaded = Ranker.load(path, "model-a")
    assert np.allclose(loaded.score(test[0].features), ranker.score(test[0].features), atol=1e-4)
    assert loaded.answerable(evidence[0]) == ranker.answerable(evidence[0])
    with pytest.raises(RankerError, match="fitted for 'model-a'.*fit-ranker"):
        Ranker.load(path, "model-b")
    obj = json.loads(path.read_text())
    del obj["rank"]["weights"]["dense"]
    path.write_text(json.dumps(obj))
    with pytest.raises(RankerError, match="features differ"):
        Ranker.load(path, "model-a")
    path.write_text("{not json")
    with pytest.raises(RankerError, match="cannot read"):
        Ranker.load(path, "model-a")


def test_the_abstainer_keeps_each_evidences_sign() -> None:
    """Evidence that, in a small training set, happens to point the wrong way (full coverage
    among unanswerable questions, unknown names among answerable ones) gets no weight rather
    than a weight of the wrong sign; evidence that points the right way is still learned."""
    rng = np.random.default_rng(5)
    n = 120
    evidence = rng.normal(size=(n, len(EVIDENCE))).astype(np.float32)
    answerable = evidence[:, EVIDENCE.index("top_dense")] + 0.3 * rng.normal(size=n) > -0.5
    cov, unknown = EVIDENCE.index("top3_coverage"), EVIDENCE.index("unknown_names")
    evidence[:, cov] = np.where(answerable, 0.4, 1.0) + 0.1 * rng.normal(size=n)
    evidence[:, unknown] = np.where(answerable, 1.0, 0.0)
    assert set(EVIDENCE_SIGN) == set(EVIDENCE)  # every piece of evidence has its sign
    abstain, _ = fit_abstain(evidence, answerable)
    assert abstain.coef[cov] >= 0.0
    assert abstain.coef[unknown] <= 0.0
    assert abstain.coef[EVIDENCE.index("top_dense")] > 0.5
    assert all(
        (c >= 0.0) if EVIDENCE_SIGN[name] > 0 else (c <= 0.0)
        for name, c in zip(EVIDENCE, abstain.coef, strict=True)
    )


def test_evidence_that_is_not_a_number_is_refused_not_fitted() -> None:
    """A NaN threshold would abstain on every question without a word."""
    rng = np.random.default_rng(6)
    evidence = rng.normal(size=(60, len(EVIDENCE))).astype(np.float32)
    answerable = evidence[:, 0] > -0.5
    evidence[7, 2] = np.nan
    with pytest.raises(RankerError, match="not a finite number"):
        fit_abstain(evidence, answerable)


def test_the_first_citation_is_chosen_without_the_later_only_features(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    train = _examples(rng, 40)
    for ex in train:  # corroboration (and each later-only feature) marks the answer too
        for name in LATER_ONLY:
            ex.features[0, FEATURES.index(name)] += 3.0
    groups = [str(i) for i in range(40)]
    first = fit_rank(train, groups, without=LATER_ONLY)
    rest = fit_rank(train, groups)
    for name in LATER_ONLY:
        assert first.coef[FEATURES.index(name)] == 0
        assert rest.coef[FEATURES.index(name)] > 0
    ranker = Ranker("m", first, rest=rest)
    path = ranker_path("m", tmp_path)
    ranker.save(path)
    loaded = Ranker.load(path, "m")
    x = train[0].features
    assert np.allclose(loaded.score(x), ranker.score(x), atol=1e-4)
    assert np.allclose(loaded.score_rest(x), ranker.score_rest(x), atol=1e-4)
    assert not np.allclose(loaded.score_rest(x), loaded.score(x), atol=1e-2)


@pytest.mark.parametrize("model", [MODEL_NAME, MPNET_NAME])
def test_shipped_rankers_pick_the_first_citation_without_the_later_only_features(
    model: str,
) -> None:
    ranker = Ranker.load(ranker_path(model), model)
    assert ranker.rest is not None
    for name in LATER_ONLY:
        assert ranker.rank.coef[FEATURES.index(name)] == 0
        assert ranker.rest.coef[FEATURES.index(name)] != 0


def test_support_is_corroboration_by_another_article() -> None:
    e0, e1 = np.eye(2, dtype=np.float32)
    vectors = np.stack([e0, e0, e1, 0.6 * e0 + 0.8 * e1, -e0])
    arts = np.array([1, 1, 2, 3, 4])
    found = support(vectors, arts, closest=np.array([0, 1, 2, 3]))
    # Row 0's copy in its own article does not corroborate it; article 3's partial match does.
    assert np.allclose(found, [0.6, 0.6, 0.8, 0.8, 0.0])
    assert np.allclose(support(vectors, arts, np.array([], np.int64)), 0.0)


def test_article_rank_is_the_rank_among_the_units_of_the_same_article() -> None:
    dense = np.array([0.2, 0.9, 0.5, 0.7, 0.5, 0.1], np.float32)
    arts = np.array([0, 1, 0, 1, 0, 2])  # article index of each unit, in id order
    # Article 0: 0.5, 0.5 (tie: the lower id first), 0.2; article 1: 0.9, 0.7; article 2 alone.
    assert np.allclose(article_rank(dense, arts), [1 / 3, 1, 1, 1 / 2, 1 / 2, 1])
    assert article_rank(np.zeros(0, np.float32), np.zeros(0, np.int64)).shape == (0,)


def test_citations_after_the_first_follow_the_second_ranker(tmp_path: Path) -> None:
    data_dir = tmp_path / "d"
    ingest(data_dir, CORPUS)
    n = len(FEATURES)
    dense = np.zeros(n, np.float32)
    dense[FEATURES.index("dense")] = 1.0
    one = Linear(np.zeros(n, np.float32), np.ones(n, np.float32), dense, 0.0)
    reverse = Linear(np.zeros(n, np.float32), np.ones(n, np.float32), -dense, 0.0)
    question = "how many prisoners were exchanged"
    plain = Searcher.open(data_dir, "hash", embedder=HashEmbedder(), ranker=Ranker("hash", one))
    both = Searcher.open(
        data_dir, "hash", embedder=HashEmbedder(), ranker=Ranker("hash", one, rest=reverse)
    )
    try:
        a, b = plain.result(question, limit=6), both.result(question, limit=6)
        by_dense = [e.dense for e in a.entries]
        assert by_dense == sorted(by_dense, reverse=True)
        assert b.entries[0].id == a.entries[0].id  # the first by ``rank``
        later = [e.dense for e in b.entries[1:]]
        assert later == sorted(later) and later[0] < by_dense[1]  # then by ``rest``
        assert np.allclose(a.evidence, b.evidence)  # the abstainer weighs ``rank`` alone
    finally:
        plain.store.close()
        both.store.close()


def test_a_ranker_refuses_a_store_built_another_way(tmp_path: Path) -> None:
    data_dir = tmp_path / "d"
    ingest(data_dir, CORPUS)
    store = Store(data_dir)
    params = store.read_params()
    store.close()
    linear = fit_rank(_examples(np.random.default_rng(1), 10), [str(i) for i in range(10)])
    fitted = Ranker("hash", linear, store=store_fingerprint(params))
    assert fitted.store["model"] == params["model"] and "schema" not in fitted.store
    path = ranker_path("hash", tmp_path)
    fitted.save(path)
    # What the ranker records of its store survives the file, and the same store is accepted.
    loaded = Ranker.load(path, "hash")
    assert loaded.store == fitted.store
    Searcher.open(data_dir, "hash", embedder=HashEmbedder(), ranker=loaded).store.close()
    # A store embedded with another recipe (or model, or dimension) is refused, clearly.
    other = Ranker("hash", linear, store={**fitted.store, "context": "sentence alone"})
    with pytest.raises(RankerError, match="context: ranker fitted on 'sentence alone'.*fit-ranker"):
        Searcher.open(data_dir, "hash", embedder=HashEmbedder(), ranker=other)
    # So is a file whose feature list is not the code's, even with matching weights.
    obj = json.loads(path.read_text())
    obj["features"] = list(reversed(obj["features"]))
    path.write_text(json.dumps(obj))
    with pytest.raises(RankerError, match="other features than the code computes"):
        Ranker.load(path, "hash")


def test_shipped_ranker_matches_the_code() -> None:
    ranker = load_ranker("sentence-transformers/all-MiniLM-L6-v2")
    assert ranker.meta.get("questions", 0) >= 100  # fitted, not the fallback
    assert ranker.abstain is not None
    assert ranker.store == store_fingerprint(ingest_params(DEFAULT_BACKEND))  # the store it expects


def test_cross_validation_reports_in_sample_and_out_of_fold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    ingest(data, CORPUS)
    answerer = open_answerer(data)
    questions = [
        EvalQuestion(
            "how long did the talks in Geneva last", ["after just two hours"], True, doc="geneva"
        ),
        EvalQuestion(
            "who would monitor a ceasefire", ["led primarily by the Americans"], True, doc="geneva"
        ),
        EvalQuestion("how many prisoners were exchanged", ["157 prisoners"], True, doc="pow"),
        EvalQuestion("who mediated the prisoner exchange", ["Emirates"], True, doc="pow"),
        EvalQuestion("what did the energy truce cover", ["energy"], True, doc="energy"),
        EvalQuestion("easy sourdough starter recipe", [], False),
    ]
    report = cross_validate(answerer.searcher, questions, k=3)
    assert report.reachable == 1.0
    assert report.in_sample["questions"] == report.out_of_fold["questions"] == 6
    assert {r["fold"] for r in report.rows} == {0, 1, 2}
    assert "out-of-fold (3 folds grouped by article)" in report.format()
    assert report.out_of_fold_mean == report.out_of_fold  # one split: nothing to average

    dealt: list[int] = []

    def recorded(qs: list[EvalQuestion], k: int = 5, split: int = 0) -> list[int]:
        dealt.append(split)
        return group_folds(qs, k, split)

    monkeypatch.setattr("retrieval.cv.group_folds", recorded)
    again = cross_validate(answerer.searcher, questions, k=3, splits=3)
    assert dealt == [0, 1, 2]  # each split deals the folds anew
    assert again.out_of_fold == report.out_of_fold and again.rows == report.rows
    assert len(again.splits) == 3 and again.splits[0] == report.out_of_fold
    mean = again.out_of_fold_mean
    for key in ("hit@1", "hit@3", "mrr", "wrongly_abstained"):
        assert mean[key] == pytest.approx(sum(s[key] for s in again.splits) / 3)
    assert mean["questions"] == 6
    assert "mean of 3 splits into 3 folds" in again.format()


def _fake_model_zip(tmp_path: Path, weights: bytes) -> list[Path]:
    archive = tmp_path / "m.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("all-mpnet-base-v2/modules.json", "[]")
        z.writestr("all-mpnet-base-v2/model.safetensors", weights)
    data = archive.read_bytes()
    third = len(data) // 3 + 1
    parts = []
    for n in range(3):
        part = tmp_path / f"m.zip.{n + 1:03d}"
        part.write_bytes(data[n * third : (n + 1) * third])
        parts.append(part)
    return parts


def test_mpnet_requirements_pin_the_parts_the_code_reads() -> None:
    """requirements-mpnet.txt (installed with --no-deps) pins exactly the parts and version
    index/mpnet.py looks for, and pyproject does not list them (that would pull their
    declared dependency tree back in)."""
    root = Path(__file__).resolve().parent.parent
    lines = (root / "requirements-mpnet.txt").read_text().splitlines()
    pinned = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert pinned == [f"{name}=={MPNET_VERSION}" for name in MPNET_PACKAGES]
    pyproject = (root / "pyproject.toml").read_text()
    assert not [name for name in MPNET_PACKAGES if name in pyproject]


def test_mpnet_parts_are_reassembled_and_checksummed(tmp_path: Path) -> None:
    weights = b"pretend weights" * 1000
    good = hashlib.sha256(weights).hexdigest()
    parts = _fake_model_zip(tmp_path, weights)
    cache = tmp_path / "cache"
    with pytest.raises(ModelFileError, match="SHA-256"):
        model_dir(cache, parts, expected="0" * 64)
    assert not (cache / "all-mpnet-base-v2-0.0.1").exists()  # nothing half-made left behind
    folder = model_dir(cache, parts, expected=good)
    assert (folder / "model.safetensors").read_bytes() == weights
    assert model_dir(cache, parts, expected=good) == folder  # reused, checked again
    (folder / "model.safetensors").write_bytes(b"tampered")
    with pytest.raises(ModelFileError, match="SHA-256"):
        model_dir(cache, parts, expected=good)
    with pytest.raises(ModelFileError, match="do not form a zip"):
        assemble(tmp_path / "other", parts[:2], expected=good)


def test_a_store_built_with_one_model_refuses_the_other(tmp_path: Path) -> None:
    from index.params import ingest_params
    from index.store import Store, StoreError

    data = tmp_path / "data"
    ingest(data, CORPUS)
    store = Store(data)
    try:
        with pytest.raises(StoreError, match="all-mpnet-base-v2"):
            store.check_params(ingest_params("mpnet"), write=False)
    finally:
        store.close()
    params = ingest_params("mpnet")
    assert params["model_sha256"] == MPNET_SHA256 and params["dim"] == 768


def test_a_small_corpus_judges_coverage_by_names_not_everyday_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a one-article store, everyday words the article happens not to use ("chat",
    "settle") must not read as "not covered" (the bundled sample abstained on "What did Rubio
    and Lavrov discuss?"); a name it never mentions still does. In a large corpus an everyday
    word's absence counts again."""
    from index.live_index import LiveIndex

    data_dir = tmp_path / "d"
    ingest(data_dir, CORPUS / "geneva-talks.md")
    searcher = Searcher.open(data_dir, "hash", HashEmbedder())
    asked = "Did Umerov chat about how to settle the Donbas?"
    assert not searcher.index.mentioned("chat") and not searcher.index.mentioned("settl")
    small = searcher.analyse(asked)
    assert small.vocab_coverage == 1.0 and small.unknown_names == []
    unknown = searcher.analyse("Did Tokayev chat about the Donbas?")
    assert unknown.unknown_names == ["Tokayev"] and unknown.vocab_coverage < 1.0

    monkeypatch.setattr(LiveIndex, "token_count", property(lambda self: 10_000_000))
    large = searcher.analyse(asked)
    assert large.unknown_names == [] and large.vocab_coverage < 1.0


def test_a_name_the_corpus_spells_otherwise_is_searched_by_its_spelling(tmp_path: Path) -> None:
    """A misspelt "Oumerov" (the corpus writes "Umerov") is neither an unknown name nor a dropped
    search term: the unit naming Umerov gets its keyword score and coverage from it."""
    data_dir = tmp_path / "d"
    ingest(data_dir, CORPUS / "geneva-talks.md")
    searcher = Searcher.open(data_dir, "hash", HashEmbedder())
    asked = "What did Oumerov say on the Donbas?"
    assert not searcher.index.mentioned("oumerov")
    analysis = searcher.analyse(asked)
    assert analysis.unknown_names == []
    assert analysis.spellings == {"oumerov": ["umerov"]}
    pool = searcher.pool(asked)
    assert pool.terms == ["oumerov", "donba"]
    umerov = next(i for i, t in enumerate(pool.texts) if "Umerov" in t)
    assert "Donbas" not in pool.texts[umerov]  # what it scores, it scores by the name alone
    for feature in ("lexical", "coverage"):
        assert pool.features[umerov, FEATURES.index(feature)] > 0, feature
    # A name it never mentions, however spelt, stays unknown and unsearched.
    unknown = searcher.analyse("What did Tokayev say?")
    assert unknown.unknown_names == ["Tokayev"] and unknown.spellings == {}


def test_a_common_english_word_is_no_misspelt_name_and_a_misspelt_name_takes_the_commonest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ "Taylor" is a name of its own, not one typo from the corpus's "sailor" (English uses it
    often); "Rubeo", one typo from both "rubber" and "Rubio", is the name the corpus uses most.
    The question is then embedded as the corpus spells it: "Who is Kusner" as "Who is kushner"
    (as typed it was declined where "Who is Kushner?" was answered)."""
    article = tmp_path / "a.md"
    article.write_text(
        '---\ntitle: "Envoys in Geneva"\nurl: https://news.example/a\noutlet: N\n---\n\n'
        "Secretary of State Marco Rubio met the delegation in Geneva on Tuesday. Rubio said the "
        "talks on the ceasefire were useful. A ceasefire was what Rubio asked for again. Jared "
        "Kushner joined the talks later. A sailor spoke about rubber supplies to the port. "
        "Ministers met in Brussels.\n"
    )
    ingest(tmp_path / "d", article)
    searcher = Searcher.open(tmp_path / "d", "hash", HashEmbedder())
    taylor = searcher.analyse("What did Taylor say about the ceasefire?")
    assert taylor.unknown_names == ["Taylor"] and taylor.spellings == {}
    assert searcher.analyse("What did Rubeo say?").spellings == {"rubeo": ["rubio"]}
    assert searcher.analyse("What did Lavorv say?").unknown_names == ["Lavorv"]
    # "Brussels" stems to "brussel", which wordfreq does not know: still an everyday word's.
    assert searcher.analyse("What did Russell say?").unknown_names == ["Russell"]

    seen: list[str] = []
    embed = searcher.embedder.embed

    def recording(texts: list[str]) -> np.ndarray:
        seen.extend(texts)
        return embed(texts)

    monkeypatch.setattr(searcher.embedder, "embed", recording)
    pool = searcher.pool("Who is Kusner?")
    assert seen == ["Who is kushner"]
    kushner = next(i for i, t in enumerate(pool.texts) if "Kushner" in t)
    assert pool.features[kushner, FEATURES.index("lexical")] > 0


def test_near_spellings_nearest_first_then_the_commonest() -> None:
    """The skeleton rules can make a swap look like more ("Zelenksy" -> "zelenxi", nearer
    "zeleni" than "zelenski"): a near skeleton is judged by its stems as typed too. The fewest
    edits win ("Urinform" is Ukrinform, not the commoner "inform"); among equally near
    spellings, the corpus's commonest ("Rubeo" is Rubio, not "rubber")."""
    from index.text import tokenize

    df = {"zelenski": 300, "zelenskyy": 40, "zelenyi": 1, "ukrinform": 5, "inform": 500}
    df |= {"rubio": 30, "rubber": 2, "kushner": 9}
    matcher = NameMatcher(df, df=lambda t: df.get(t, 0))
    for typed, spelt in [
        ("Zelenksy", ["zelenski", "zelenskyy"]),
        ("Urinform", ["ukrinform"]),
        ("Rubeo", ["rubio"]),
        ("Kshner", ["kushner"]),  # skeleton "xhner": near only as typed
    ]:
        assert matcher.spellings(typed, tokenize(typed)[0]) == spelt, typed
    assert matcher.spellings("x" * 41, "x" * 41) is None  # no name is that long: not compared


def test_an_everyday_word_is_no_spelling_of_another_everyday_word() -> None:
    """A word English uses often is no typo, only perhaps another transliteration, and never
    another spelling of words all everyday too: "Bush" is not "bus" (same skeleton), "Taylor"
    not "sailor" (one typo), "Rihanna" not "Orianna", but "Chernobyl" is "Chornobyl"."""
    everyday = {"bus", "sailor"}
    matcher = NameMatcher(["bus", "sailor", "chornobyl", "orianna"], common=everyday.__contains__)
    assert matcher.spellings("Bush", "bush", everyday=True) is None
    assert matcher.spellings("Taylor", "taylor", everyday=True) is None
    # Nor a typo of a rarer word: only a near skeleton (another transliteration) counts.
    assert matcher.spellings("Rihanna", "rihanna", everyday=True) is None
    assert matcher.spellings("Rihanna", "rihanna") == ["orianna"]
    assert matcher.spellings("Chernobyl", "chernobyl", everyday=True) == ["chornobyl"]
    assert matcher.spellings("Bush", "bush") == ["bus"]  # not said to be everyday: not gated


def test_an_update_leaves_every_term_weight_positive(tmp_path: Path) -> None:
    """Deleted sentences count in ``df`` until the next rewrite, so after an update a word can
    be in more sentences than there are: its IDF weight went negative, and the share of the
    question's names the corpus knows with it (-1.87 here, for one name it lacks)."""
    article = tmp_path / "a.md"
    head = '---\ntitle: "T"\nurl: https://news.example/a\noutlet: N\n---\n\n'
    said = "Delegates met in Geneva on day {k} and {verb} about item {k}."
    article.write_text(head + " ".join(said.format(k=k, verb="talked") for k in range(12)))
    ingest(tmp_path / "d", article)
    article.write_text(head + " ".join(said.format(k=k, verb="argued") for k in range(3)))
    assert ingest(tmp_path / "d", article).updated == 1
    searcher = Searcher.open(tmp_path / "d", "hash", HashEmbedder())
    assert searcher.index.df("geneva") > searcher.index.size  # the state this is about
    analysis = searcher.analyse("Did Tokayev meet delegates in Geneva?")
    assert analysis.unknown_names == ["Tokayev"]
    assert 0.0 <= analysis.vocab_coverage < 1.0
    # The keyword score too: the new sentences (in the tail) that hold the word score above 0.
    found = searcher.index.lexical(["geneva", "argu"])
    rows, scores = found.top(10)
    assert len(rows) == 3 and (scores > 0).all()
