"""Hybrid unit search: dense (FAISS) and lexical candidates, scored by the learned ranker."""

from __future__ import annotations

import gc
import math
import re
import threading
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from itertools import islice
from pathlib import Path

import numpy as np

from index.backend import SearchBackend
from index.embed import Embedder, bundled_model_dir, load_embedder
from index.live_index import LiveIndex, bm25_idf
from index.params import ingest_params
from index.store import ArticleRow, SentenceRow, Store
from index.text import MIN_PROSE_WORDS, tokenize
from retrieval.features import FEATURES, Pool, RowInfo, build_pool, row_info
from retrieval.names import NameMatcher
from retrieval.pieces import PieceMatcher
from retrieval.rank import EVIDENCE, Ranker, load_ranker

COVERAGE = FEATURES.index("coverage")
RARE_WORD_ZIPF = 3.0  # wordfreq Zipf below this: a name or jargon, not an everyday word
# An everyday word of Zipf z is used 10**(z - 9) times per token of English text. Its absence
# counts against coverage only where the corpus is large enough to be expected to use it at
# least 10**(EXPECTED_ZIPF - 9) times: z >= EXPECTED_ZIPF - log10(tokens). Chosen out of fold
# on the dev questions (7.5: .528/.701 hit@1/hit@3, wrongly abstains 1.6%; 8: .528/.701, 0.8%;
# 8.5: .520/.693, 2.4%; 9: .520/.693, 3.1%); anything above 7.2 answers the one-article sample.
EXPECTED_ZIPF = 8.0
_MARKUP = re.compile(r"<[^>]*>|\b(?:https?://|www\.)\S+|\[[^\]]*\]\([^)]*\)")
_WORD = re.compile(r"[^\W\d_][\w'’.-]*[\w]|[^\W\d_]", re.UNICODE)
# A boilerplate line of at most this many words and no figure is a bare label (a menu entry,
# a tag, a language or a byline name: "Cricket", "U.S. News", "Vladimir Putin"). Out of fold
# over four fold seeds (hit@1 / hit@3 / MRR): 2 words .533/.683/.616, 3 .530/.679/.612, 5
# .530/.679/.612, none .531/.677/.612; three keeps the rule to labels.
LABEL_WORDS = 3
_FIGURE = re.compile(r"\d")


# The abstainer weighs the best candidates of the article text only (``evidence``: the best,
# the third and the fifth): a page's chrome (menus, cookie and sign-up text, links to other
# stories) is searched and may be cited, but is no evidence that the question is covered.
EVIDENCE_UNITS = 5
BOILERPLATE = "boilerplate"  # index.segment's mark (not imported: retrieval loads no segmenter)
TITLE_CACHE = 10_000  # articles whose folded title a searcher keeps (~2 KB each at most)
VERDICT_CACHE = 200_000  # units whose ``says_nothing`` a searcher keeps (~100 bytes each)


def says_nothing(kind: str, text: str, title: Title = ()) -> bool:
    """A unit that cannot be cited alone: a short heading ("Putin's air campaign"), a bare
    label, its article's own title line, or a link. Such a unit states nothing a reader could
    check, or nothing the citation does not already show, so it is neither cited nor counted
    as evidence that the question is covered ("What did the Pope say about cricket?" must not
    be answered by a menu link reading "Cricket"). It stays searchable and is still a
    neighbour's context. A heading as long as prose is a claim without its full stop (a pull
    quote: "The 2026 Plan adopts an issue-based approach, organized around four strategic
    priorities"), and short lines holding a figure ("€165 million in 2024", a table row) stay
    citable. ``title``: the unit's article title (``fold_title``), empty when not known."""
    if kind == "heading" and len(_WORD.findall(text)) < MIN_PROSE_WORDS:
        return True
    if kind == BOILERPLATE and not _FIGURE.search(text) and len(_WORD.findall(text)) <= LABEL_WORDS:
        return True
    return is_link(text) or is_reference(text) or repeats_title(text, title)


# Typographic quotes, dashes and spaces as the title in the front matter may spell them plainly.
_PLAIN = str.maketrans(
    {"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-", "‑": "-", "\xa0": " "}
)
# What parts a page's title line from the site's name ("Opinion | …", "… - The Washington Post"):
# these marks with a space on both sides. A colon or an unspaced dash goes on with the headline's
# own words ("Drone attack on Kyiv: 3 dead, 12 injured", "Pro-Russian forces advance …").
_TITLE_SEPARATOR = re.compile(r" [|/·•-] ")
_PARTED_BEFORE = re.compile(r"(?:^| )[|/·•-] $")  # what precedes the title: "opinion | "
_PARTED_AFTER = re.compile(r" [|/·•-](?: |$)")  # what follows it: " - the washington post"
# A site's name beside the title: "The Mighty 790 KFGO | KFGO", "UN Human Rights Monitoring
# Mission in Ukraine". A bound on what is left beside the title, not a tuned value.
SITE_NAME_WORDS = 8
# A title shorter than this is not told from a sentence that mentions it ("Ukraine"); one
# longer than this is no headline (a hostile page's title would be kept, folded, per article).
MIN_TITLE_WORDS = 3
MAX_TITLE_CHARS = 300
# A line ending as a sentence does is the article's own, even when it is all the title holds:
# a plain-text article's title is its first line, often a one-sentence lede.
_SENTENCE_END = re.compile(r"[.!][\"')\]]*$")
_KEY = re.compile(r"[a-z0-9]{3,}")
KEY_WORDS = 4  # the title's longest words a line must hold before it is folded and compared
# An article's title as ``says_nothing`` compares it: (folded form, its longest words) pairs.
Title = tuple[tuple[str, tuple[str, ...]], ...]
_DAY = r"(?:[A-Z][a-z]+\.? \d{1,2},? \d{4}|\d{1,2} [A-Z][a-z]+\.? \d{4}|\d{4}-\d\d-\d\d)"
# "…, accessed February 21, 2026," or "… Accessed 21 February 2026. https://…": the date closes
# the entry with a comma or an address (a news sentence "…, retrieved on March 3, 2026." ends
# with its full stop).
_ACCESSED = re.compile(
    rf"[,.] (?:[Aa]ccessed|[Rr]etrieved)(?: on)? {_DAY}(?:,|[.;]?\s+(?:https?://|www\.)\S*)\s*$"
)
_LINKISH = re.compile(r"://|www\.|%[0-9A-Fa-f]{2}|[?&]\w+=")


def fold_title(title: str) -> Title:
    """The title as ``repeats_title`` compares it (case-folded, plain punctuation, single
    spaces), and its headline when the title also names the site ("Russian UAV Video Feeds
    Plunge … — UNITED24 Media": the longest part between separators), each with its longest
    words (a line missing one is passed over by look-ups alone: folding every candidate took
    ~20 us); none that is too short to tell apart from a mention, or too long for a title."""
    if len(title) > MAX_TITLE_CHARS:
        return ()
    folded = title.casefold() if title.isascii() else title.casefold().translate(_PLAIN)
    folded = " ".join(folded.split())
    parts = [p.strip() for p in _TITLE_SEPARATOR.split(folded)]
    out = []
    for form in dict.fromkeys([folded, max(parts, key=len)]):
        if len(_WORD.findall(form)) >= MIN_TITLE_WORDS:
            words = sorted(set(_KEY.findall(form)), key=len, reverse=True)[:KEY_WORDS]
            out.append((form, tuple(words)))
    return tuple(out)


def ends_as_sentence(text: str) -> bool:
    """Closes with a full stop or exclamation mark (and any closing quotes or brackets)."""
    return bool(_SENTENCE_END.search(text.rstrip()))


def repeats_title(text: str, title: Title) -> bool:
    """The page's title line: the article's title (``fold_title``), alone or beside the
    site's name ("Opinion | Putin's sabotage, shadow war … - The Washington Post"). Every
    citation already shows the title, so quoting it alone says nothing more. Not one: a line
    that goes on from the title ("Drone attack on Kyiv: 3 dead, 12 injured"), one that only
    uses the title's words ("WRC is committed to … the humanitarian crisis in Ukraine"), one
    ending as a sentence does (a plain-text article's first line is its title): what is beside
    the title must be parted from it by a spaced separator."""
    if not title or ends_as_sentence(text):
        return False
    low = text.casefold()
    forms = [form for form, words in title if all(w in low for w in words)]
    if not forms:
        return False
    line = " ".join(low.translate(_PLAIN).split())
    for form in forms:
        at = line.find(form)
        if at < 0:
            continue
        before, after = line[:at], line[at + len(form) :]
        parted = (not before or _PARTED_BEFORE.search(before)) and (
            not after or _PARTED_AFTER.match(after)
        )
        if parted and len(_WORD.findall(f"{before} {after}")) <= SITE_NAME_WORDS:
            return True
    return False


def is_reference(text: str) -> bool:
    """An entry of a report's list of works cited ("Revealed: how Orbán blocked €90bn loan for
    Ukraine, accessed February 21, 2026,"): the title of another work, which states nothing
    itself."""
    return ("ccessed" in text or "etrieved" in text) and bool(_ACCESSED.search(text))


def is_link(text: str) -> bool:
    """Mostly an address: a share button ("[https://twitter.com/intent/tweet?url=…&text=…]")
    or a list of sources: most of its non-space characters lie in address-like tokens, and it
    opens with one, or what is left holds neither a figure nor a sentence. "Applications are
    open at https://www.kyivcity.gov.ua/… until March 31." and "Source: https://data.example/…,
    2024: $178 billion" are the article's own."""
    if "://" not in text and "www." not in text and "%" not in text:
        return False
    # Token by token: a pattern with ``\S*`` on both sides backtracks quadratically over a
    # long token without a match (a hostile page's 10,000-letter "word").
    tokens = text.split()
    linked = [bool(_LINKISH.search(token)) for token in tokens]
    chars = sum(map(len, tokens))
    if sum(len(t) for t, is_linked in zip(tokens, linked, strict=True) if is_linked) * 2 < chars:
        return False
    if linked[0]:
        return True
    rest = " ".join(t for t, is_linked in zip(tokens, linked, strict=True) if not is_linked)
    sentence = len(_WORD.findall(rest)) >= MIN_PROSE_WORDS and rest.rstrip().endswith(
        (".", "!", "?")
    )
    return not (_FIGURE.search(rest) or sentence)


@dataclass
class Candidate:
    """One scored unit, with parts of its evidence and, for quoting, the ranker's scores of
    the units before and after it in its article (None at the article's edge)."""

    id: int
    score: float
    content: str
    vector: np.ndarray  # its embedding (near-duplicate checks)
    dense: float
    coverage: float  # share of the question's IDF weight the unit holds
    prev_score: float | None
    next_score: float | None
    prev: SentenceRow | None  # the unit before it in its article, as stored
    next: SentenceRow | None
    article_id: int
    position: int
    para: int
    kind: str


# Fuzzy name look-ups one question may make (each scans the vocabulary: ~25-80 ms at 400,000
# words). A question names a few people; a bound on the work, not a fitted weight.
MAX_FUZZY_LOOKUPS = 8


@dataclass
class QueryAnalysis:
    """What the question's words say about coverage, used to abstain."""

    terms: list[str]  # stemmed content terms
    unknown_names: list[str]  # names or rare words (as typed) the corpus never mentions
    vocab_coverage: float = 1.0  # share of the IDF weight of its names and rare words that
    # the corpus uses anywhere (1 when it has none)
    # A name or rare word the corpus spells otherwise ("witkof", "kostiantynivka"): its stem ->
    # the corpus's stems for it, searched in its place.
    spellings: dict[str, list[str]] = field(default_factory=dict)
    # Names or rare words of the question that the corpus does mention (however spelled):
    # a question naming someone the coverage knows is never declined as off topic.
    named: list[str] = field(default_factory=list)


@dataclass
class Result:
    """Candidates best first, and the evidence the abstainer weighs."""

    entries: list[Candidate]
    evidence: np.ndarray
    analysis: QueryAnalysis
    best_dense: float


def zipf_frequency(word: str, lang: str) -> float:
    """wordfreq's Zipf frequency: log10 of the word's uses per billion words of ``lang``."""
    from wordfreq import zipf_frequency

    return zipf_frequency(word, lang)


def _everyday_stem(stem: str) -> bool:
    """A corpus stem that some everyday English word stems to ("brussel": Brussels)."""
    return stem in _everyday_stems()


@cache
def _everyday_stems() -> frozenset[str]:
    """The stems of the words English uses often (Zipf ``RARE_WORD_ZIPF`` or more: ~29,000
    words, ~0.6 s once). Asking wordfreq about a stem itself missed those the stemmer cuts
    short: "Russell" had matched "brussel", "County" "countri"."""
    from wordfreq import top_n_list

    words = top_n_list("en", 100_000)  # most frequent first: the first below the line ends them
    end = bisect_left(words, True, key=lambda w: zipf_frequency(w, "en") < RARE_WORD_ZIPF)
    return frozenset(s for w in words[:end] for s in tokenize(w)[:1])


def looks_like_name(word: str, start: int, zipf: float) -> bool:
    """Capitalised inside the question, or rare in English at large (``zipf``: the word's
    ``zipf_frequency``)."""
    return (start > 0 and word[:1].isupper()) or zipf < RARE_WORD_ZIPF


YOUNG_COLLECTION_THRESHOLD = 100_000  # allocations between young-generation collections
ROW_INFO_CACHE = 20_000  # units whose text-only features a process keeps (by id)


class Searcher:
    """Answers many queries over a data dir's live index (``index.backend.SearchBackend``).

    Holds no sentence, article or vector of its own: the index maps its snapshot files, and
    the rows of a query's candidates (and their neighbours) are read from SQLite per query.
    """

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        index: SearchBackend | None = None,
        ranker: Ranker | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self._index = index  # None: the store's live index, opened on first need
        self._index_lock = threading.Lock()
        self.ranker = ranker or load_ranker(embedder.name, store_dir=store.data_dir)
        self.ranker.check_store(store.read_params())
        self._lock = threading.Lock()
        # Pools by question: evaluation re-ranks the same questions under many rankers.
        self.pool_cache: dict[str, Pool] | None = None
        self._row_info: dict[tuple[int, str], RowInfo] = {}
        self._names: NameMatcher | None = None
        self._names_base: object = None  # the index base its vocabulary was read at
        self._names_added = 0  # terms of that base's newer sentences added to it since
        self._coverage: tuple[int, dict] | None = None
        # ``silent``'s verdict per unit and folded title per article (a question judges its
        # best ~60 candidates); both cleared when the index changes: an article rewritten
        # may have a new title.
        self._titles: dict[int, Title] = {}
        self._silent: dict[int, bool] = {}
        self._pieces: PieceMatcher | None = None
        self._pieces_base: object = None  # the index base its rarity was counted at
        self._pieces_size = 0  # and the index's size then

    @classmethod
    def open(
        cls,
        data_dir: Path,
        backend: str,
        embedder: Embedder | None = None,
        ranker: Ranker | None = None,
    ) -> Searcher:
        store = Store(data_dir)
        embedder = embedder or load_embedder(backend, data_dir / "models")
        store.check_params(ingest_params(embedder.backend), write=False)
        return cls(store, embedder, LiveIndex.open(store), ranker)

    @property
    def index(self) -> SearchBackend:
        """The index searched. Opened on first need: a process that only serves the store
        (the bot's, when answer worker processes search) never maps it or loads its
        vocabulary (~150 MB at a million units)."""
        if self._index is None:
            with self._index_lock:
                if self._index is None:
                    self._index = LiveIndex.open(self.store)
        return self._index

    def refresh(self) -> bool:
        """Pick up what any process committed since; True when the index changed. Cheap when
        nothing did (one read of the change log's position)."""
        with self._lock:
            changed = self.index.refresh()
            if changed:
                self._titles.clear()
                self._silent.clear()
                if self.pool_cache is not None:
                    self.pool_cache.clear()
        return changed

    def silent(self, row: SentenceRow) -> bool:
        """``says_nothing`` of a stored unit, given its article's title: the verdict kept per
        unit, the folded title per article, and read only for a unit that could be a title
        line (most end as sentences do). ``result`` asks only of the candidates it looks at,
        best first: at a million units, judging all ~190 candidates of a question, from ~140
        articles, took ~1.7 ms."""
        found = self._silent.get(row.id)
        if found is None:
            title = () if ends_as_sentence(row.text) else self._folded_title(row.article_id)
            if len(self._silent) >= VERDICT_CACHE:
                self._silent.clear()
            found = self._silent[row.id] = says_nothing(row.kind, row.text, title)
        return found

    def _folded_title(self, article_id: int) -> Title:
        found = self._titles.get(article_id)
        if found is None:
            if len(self._titles) >= TITLE_CACHE:
                self._titles.clear()
            article = self.article(article_id)
            found = self._titles[article_id] = fold_title(article.title if article else "")
        return found

    @property
    def size(self) -> int:
        return self.index.size

    def article(self, article_id: int) -> ArticleRow | None:
        return self.store.article(article_id)

    def unit_texts(self, citable: bool = False) -> list[str]:
        """The text of every searchable unit, or only of those that can be cited
        (``says_nothing``: evaluation's reachability); reads the store. Each distinct title is
        folded once (an article's units share it)."""
        folded = cache(fold_title)
        return [
            text
            for kind, text, title in self.store.searchable_units()
            if not (citable and says_nothing(kind, text, folded(title)))
        ]

    def coverage(self) -> dict:
        """The store's coverage (articles, outlets, dates), recounted only after a write."""
        generation = self.store.generation()
        if self._coverage is None or self._coverage[0] != generation:
            self._coverage = (generation, self.store.coverage())
        return self._coverage[1]

    def warm_up(self) -> None:
        """Load now what the first questions would otherwise load while someone waits (and
        the questions behind them queue): the corpus's words and their spelling keys for name
        matching, English word frequencies, the index files' pages. A long-running answerer
        calls it at start."""
        # An answer allocates some ten thousand short-lived objects (the rows of ~600 units at
        # a million), freed by reference counting; at the default threshold (700) the cyclic
        # collector still ran a dozen passes per answer (measured at a million units, in
        # process: p50 18.5 and 19.4 ms -> 17.6 and 17.1 ms).
        gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])
        self.index.prefetch()
        _ = self.names.skeletons
        _ = self.pieces.idf
        zipf_frequency("talks", "en")  # loads wordfreq's English list
        _everyday_stems()
        self.result("What did Zelensky say about the peace talks in Geneva?", limit=10)

    @property
    def names(self) -> NameMatcher:
        """The corpus's words for fuzzy name matching, read on first need (most questions
        name nothing new) and again when the index is rewritten. In between, words of new
        sentences are added to it: reading the whole vocabulary again took ~1.4 s at a
        million sentences, paid by the first question after every new article."""
        base, recent = self.index.vocabulary_since()
        if self._names is None or self._names_base != base:
            self._names = NameMatcher(
                self.store.vocabulary(), df=self.index.df, common=_everyday_stem
            )
            self._names_base, self._names_added = base, len(recent)
            # Hundreds of thousands of long-lived objects: out of the cyclic collector's full
            # passes (measured at a million units: p95 of distinct questions 56 -> 33 ms).
            # Replaced matchers are still freed by reference counting.
            gc.freeze()
        elif len(recent) > self._names_added:
            self._names.add(recent[self._names_added :])
            self._names_added = len(recent)
        return self._names

    @property
    def pieces(self) -> PieceMatcher:
        """The soft piece matcher, loaded on first need: the bundled model's piece table, and
        the corpus's piece rarity, counted on a sample of the units, and again after the index
        is rewritten or has doubled since (a store that started empty or small, whose index
        is rewritten only once its tail is large)."""
        base, size = self.index.vocabulary_since()[0], self.index.size
        if self._pieces is None:
            self._pieces = PieceMatcher(bundled_model_dir(), self.store.unit_sample)
        elif self._pieces_base != base or size > 2 * self._pieces_size:
            self._pieces.recount()
        else:
            return self._pieces
        self._pieces_base, self._pieces_size = base, size
        return self._pieces

    def row_info(self, sentence_id: int, text: str) -> RowInfo:
        """A unit's text-only features, computed on first use and kept (a bounded cache)."""
        key = (sentence_id, text)
        found = self._row_info.get(key)
        if found is None:
            if len(self._row_info) >= ROW_INFO_CACHE:
                self._row_info.clear()
            found = self._row_info[key] = row_info(text)
        return found

    def analyse(self, question: str) -> QueryAnalysis:
        terms = list(dict.fromkeys(tokenize(question)))
        names = []
        named = []
        spellings: dict[str, list[str]] = {}
        counted: set[str] = set()  # stems whose absence from the corpus is evidence
        # Markup and links pasted into a question are not names the corpus should know.
        words_only = _MARKUP.sub(lambda m: " " * len(m.group()), question)
        mentioned = self.index.mentioned
        # An everyday word counts only where the corpus is large enough to be expected to use
        # it: its absence from a small one says nothing about what it covers (on the one-article
        # sample, "discuss" and "spoke" made talksbot abstain on "What did Rubio and Lavrov
        # discuss?" and "Who spoke with Lavrov?"). Names and rare words always count.
        everyday = EXPECTED_ZIPF - math.log10(max(self.index.token_count, 1))
        looked: dict[str, list[str] | None] = {}  # each distinct stem looked up once

        def spelt(word: str, stem: str, everyday: bool = False) -> list[str] | None:
            """``NameMatcher.spellings``, at most ``MAX_FUZZY_LOOKUPS`` per question (a fuzzy
            look-up scans the vocabulary): a long question of made-up words is not an attack
            on the answering worker. Beyond it a word counts as never mentioned."""
            if stem not in looked:
                if len(looked) >= MAX_FUZZY_LOOKUPS:
                    return None
                looked[stem] = self.names.spellings(word, stem, everyday)
            return looked[stem]

        for match in _WORD.finditer(words_only):
            word = match.group()
            stems = tokenize(word)
            if not stems or stems[0].isdigit() or _contracted(word):
                continue
            zipf = zipf_frequency(word, "en")
            if looks_like_name(word, match.start(), zipf):
                counted.update(stems)
                if not mentioned(stems[0]):
                    # A word English uses often ("Taylor", "Bush") is a name of its own, not
                    # another spelling of an everyday word the corpus has ("sailor", "bus").
                    found = spelt(word, stems[0], everyday=zipf >= RARE_WORD_ZIPF)
                    if found is None:
                        names.append(word)
                        continue
                    if found:
                        spellings[stems[0]] = found
                named.append(word)
            elif zipf >= everyday:
                counted.update(stems)
        n = max(self.index.size, 1)
        weights = {t: bm25_idf(self.index.df(t), n) for t in terms if t in counted}
        total = sum(weights.values())
        known = sum(w for t, w in weights.items() if mentioned(t) or spelt(t, t) is not None)
        return QueryAnalysis(terms, names, known / total if total else 1.0, spellings, named)

    def pool(self, question: str, analysis: QueryAnalysis | None = None) -> Pool:
        """Candidates and their features (cached per question when ``pool_cache`` is set).
        A question word the corpus spells otherwise is searched by the corpus's spellings."""
        if self.pool_cache is not None and question in self.pool_cache:
            return self.pool_cache[question]
        spellings = (analysis or self.analyse(question)).spellings
        df = self.index.df
        # Embedded and matched piece by piece as the corpus spells it: "Who is Kusner?" as
        # "Who is kushner?" (as typed, its vector and pieces sat further from every unit
        # about Kushner, and it was declined where "Who is Kushner?" was answered).
        spelt = respelt(question, spellings, df)
        q = self.embedder.embed([embedding_text(spelt)])[0]
        terms = [
            t
            for t in dict.fromkeys(tokenize(question))
            if df(t) > 0 or any(df(v) > 0 for v in spellings.get(t, ()))
        ]
        pool = build_pool(
            q,
            terms,
            spelt,
            backend=self.index,
            info=self.row_info,
            question_terms=tokenize(question),
            spellings={t: spellings[t] for t in terms if t in spellings},
            pieces=self.pieces,
        )
        if self.pool_cache is not None:
            self.pool_cache[question] = pool
        return pool

    def search(
        self, question: str, limit: int = 50, ranker: Ranker | None = None
    ) -> list[Candidate]:
        """Candidates best first."""
        return self.result(question, limit, ranker).entries

    def result(self, question: str, limit: int = 50, ranker: Ranker | None = None) -> Result:
        """Citable candidates best first (``says_nothing`` ones left out), with the evidence
        for abstaining. Whatever any process committed before the question is searched (one
        read of the change log's position when nothing was)."""
        ranker = ranker or self.ranker
        self.refresh()
        with self._lock:
            analysis = self.analyse(question)
            if self.index.size == 0:
                return Result([], np.zeros(len(EVIDENCE), np.float32), analysis, 0.0)
            pool = self.pool(question, analysis)
            near = pool.near
            scores = ranker.score(pool.features)
            pos = {int(r): i for i, r in enumerate(pool.rows)}
            entries: list[Candidate] = []
            candidates = np.flatnonzero(pool.candidates)
            judged: dict[int, SentenceRow | None] = {}  # pool entry -> its row if citable

            def citable(i: int) -> SentenceRow | None:
                """The entry's row if it can be cited (``says_nothing``), judged on first need:
                only the best ~60 candidates by each order are ever looked at."""
                if i not in judged:
                    row = near.rows[int(pool.rows[i])]
                    judged[i] = None if self.silent(row) else row
                return judged[i]

            def text(i: int) -> bool:
                """Citable article text (not boilerplate)."""
                if near.rows[int(pool.rows[i])].kind == BOILERPLATE:
                    return False
                return citable(i) is not None

            def candidate(i: int) -> Candidate:
                sentence = judged[i]
                assert sentence is not None
                r = int(pool.rows[i])
                prev, nxt = near.prev_of.get(r), near.next_of.get(r)
                return Candidate(
                    id=sentence.id,
                    score=float(scores[i]),
                    content=sentence.text,
                    vector=near.matrix[i],
                    dense=float(pool.dense[i]),
                    coverage=float(pool.features[i, COVERAGE]),
                    prev_score=float(scores[pos[prev]]) if prev in pos else None,
                    next_score=float(scores[pos[nxt]]) if nxt in pos else None,
                    prev=near.rows[prev] if prev in pos else None,
                    next=near.rows[nxt] if nxt in pos else None,
                    article_id=sentence.article_id,
                    position=sentence.position,
                    para=sentence.para,
                    kind=sentence.kind,
                )

            # The first citation and the evidence by ``scores``; the others by the ranker's
            # ``score_rest`` (the same scores when it has no second model).
            by_score = [int(i) for i in candidates[np.argsort(-scores[candidates], kind="stable")]]
            # The best of the article text: the evidence.
            content = [candidate(i) for i in islice(filter(text, by_score), EVIDENCE_UNITS)]
            first = next((i for i in by_score if citable(i) is not None), None)
            if first is not None and limit > 0:
                rest = ranker.score_rest(pool.features)
                order = sorted(by_score, key=lambda i: -rest[i])  # stable: ties keep order
                others = (i for i in order if i != first and citable(i) is not None)
                entries = [candidate(i) for i in [first, *islice(others, limit - 1)]]
            by_dense = [
                int(i) for i in candidates[np.argsort(-pool.dense[candidates], kind="stable")]
            ]
            best = next(filter(text, by_dense), None)
        best_dense = float(pool.dense[best]) if best is not None else 0.0
        return Result(entries, evidence(content, analysis, best_dense), analysis, best_dense)


# Closing marks a question may end with: "?" or not, it is the same question.
_CLOSING = "?!.…？！。؟‽⁇﹖ \t\n\u00a0"


def embedding_text(question: str) -> str:
    """The question as it is embedded: without its closing marks, so "who is Lavrov" and "who
    is Lavrov?" get one vector (they had crossed the abstainer's threshold apart). Units are
    statements and seldom end in "?": out of fold over ten fold seeds hit@1 rose from .552 to
    .560, never lower on a seed (ending every question with "?" instead: .549 over four)."""
    return question.rstrip(_CLOSING) or question


def respelt(question: str, spellings: dict[str, list[str]], df: Callable[[str], int]) -> str:
    """``question`` with each word the corpus spells otherwise (``spellings``: its stem -> the
    corpus's stems) replaced by the corpus's commonest spelling, as a stem ("zelenski"): the
    models are uncased, and a stem is near enough the word for them."""
    if not spellings:
        return question

    def swap(match: re.Match[str]) -> str:
        stems = tokenize(match.group())
        if len(stems) == 1 and spellings.get(stems[0]):
            return max(spellings[stems[0]], key=df)
        return match.group()

    return _WORD.sub(swap, question)


# Stopwords as typed without their apostrophe: the corpus writes them with one.
_CONTRACTIONS = frozenset(
    """
    whats whos wheres whens whys hows thats theres heres hes shes im ive youre theyre weve
    theyve dont doesnt didnt isnt arent wasnt werent hasnt havent hadnt wont wouldnt shouldnt
    couldnt cant
    """.split()
)


def _contracted(word: str) -> bool:
    """A stopword typed without its apostrophe ("whats", "whos", "dont"): its absence from
    the corpus says nothing about coverage. (Before, "whats the flamingo missile" was declined
    while "what is the flamingo" was answered.) An explicit list: "Wes" or "Fort" are names."""
    return word.lower().replace("'", "").replace("’", "") in _CONTRACTIONS


def evidence(entries: list[Candidate], analysis: QueryAnalysis, best_dense: float) -> np.ndarray:
    """The abstainer's inputs (``rank.EVIDENCE``) for one question, from its best candidates
    of article text (``EVIDENCE_UNITS`` of them, best first)."""
    scores = [e.score for e in entries]
    top = scores[0] if scores else -10.0
    fifth = scores[min(4, len(scores) - 1)] if scores else -10.0
    values = {
        "top_score": top,
        "top_dense": best_dense,
        "top3_coverage": max((e.coverage for e in entries[:3]), default=0.0),
        "vocab_coverage": analysis.vocab_coverage,
        "unknown_names": float(len(analysis.unknown_names)),
        "score_margin": top - fifth,
    }
    return np.array([values[name] for name in EVIDENCE], np.float32)
