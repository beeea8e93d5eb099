"""Ingest: files in, deduplicated articles with embedded sentences out.

Each article is written in one transaction (article, URLs, sentences, embeddings), so a run
killed at any moment leaves whole articles only, and running it again finishes the job.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from index.embed import Embedder
from index.live_index import after_write
from index.loaders import IngestError, RawArticle, canonical_url, iter_article_files, load_file
from index.params import ingest_params
from index.process import leave_with_parent
from index.segment import BOILERPLATE, HEADING, Unit, citable, segment
from index.store import NewArticleRow, NewSentenceRow, Store, content_key
from index.text import plural, text_hash
from index.unit_features import encode

T = TypeVar("T")

NEAR_DUPLICATE_SHARE = 0.8  # share of a new article's sentences already stored in one article
BOILERPLATE_CACHE = 50_000  # distinct boilerplate texts whose vectors one ingest run reuses
PARALLEL_MIN_FILES = 64  # from this many files, reading and segmenting run in worker processes
PREPARE_BATCH = 256  # files handed to the workers at a time (two batches in flight at most)


@dataclass
class IngestReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0
    withheld: int = 0  # deleted by an operator, so not taken again from a feed
    restored: int = 0  # deleted by an operator, stored again by an explicit ingest
    sentences: int = 0
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # stored, but the reader should know how
    seconds: float = 0.0
    # article id -> ("added" or "updated", sentences counted): an article written twice in one
    # run (two files under one URL) is counted once, with the sentences it now has
    written: dict[int, tuple[str, int]] = field(default_factory=dict)

    def merge(self, other: IngestReport) -> None:
        for name in ("unchanged", "duplicates", "withheld", "restored", "seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors += other.errors
        self.notes += other.notes
        # added, updated and sentences come only from ``count``: an article both wrote is
        # counted once, as first counted, with the sentences it was last written with
        for article_id, (kind, sentences) in other.written.items():
            self.count(article_id, kind == "updated", sentences)

    def count(self, article_id: int, updated: bool, sentences: int) -> None:
        """One article written (its searchable sentences ``sentences``)."""
        earlier = self.written.get(article_id)
        if earlier is None:
            kind = "updated" if updated else "added"
            setattr(self, kind, getattr(self, kind) + 1)
        else:  # written earlier in this run and replaced now
            kind = earlier[0]
            self.sentences -= earlier[1]
        self.written[article_id] = (kind, sentences)
        self.sentences += sentences

    def summary(self) -> str:
        return (
            f"{plural(self.added, 'article')} added, {self.updated} updated, "
            f"{self.unchanged} unchanged, {plural(self.duplicates, 'duplicate')} skipped, "
            + (f"{self.withheld} deleted earlier left out, " if self.withheld else "")
            + (f"{self.restored} deleted earlier stored again, " if self.restored else "")
            + f"{plural(self.sentences, 'sentence')} indexed, "
            f"{len(self.errors)} failed, in {self.seconds:.1f} s"
        )


def context_text(title: str, heading: str, sentence: str) -> str:
    """The sentence after its title and heading, so that "the talks" knows which talks."""
    context = f"{title}. {heading}." if heading and heading != title else f"{title}."
    return f"{context} {sentence}"


def article_keys(raw: RawArticle) -> list[str]:
    """How an article is recognised again: its canonical URL, and last its source (the file,
    or for a fetched page the URL it came from)."""
    url = canonical_url(raw.url)
    source = source_key(raw.source)
    return list(dict.fromkeys([url, source])) if url else [source]


def source_key(source: str) -> str:
    """The key of where an article came from: its canonical URL, or ``file:`` and its path."""
    if re.match(r"^https?://", source):
        try:
            return canonical_url(source)
        except ValueError as exc:  # "http://[::1": urllib refuses it
            raise IngestError(f"{source}: not a valid URL ({exc})") from None
    try:
        return f"file:{Path(source).resolve()}"
    except (OSError, RuntimeError) as exc:  # a symlink loop, an unreadable folder
        raise IngestError(f"{source}: cannot resolve the path ({exc})") from None


class Ingester:
    """Adds articles to a store with one embedder; refuses a store built by another."""

    def __init__(self, store: Store, embedder: Embedder) -> None:
        self.store = store
        self.embedder = embedder
        self._boilerplate_vectors: dict[str, np.ndarray] = {}
        store.check_params(ingest_params(embedder.backend), write=True)

    def ingest_paths(self, paths: Iterable[Path], progress: bool | None = None) -> IngestReport:
        """Ingest files and folders; bad files are reported and skipped, the rest go on."""
        from tqdm import tqdm

        report = IngestReport()
        started = time.perf_counter()
        files: list[tuple[Path, Path | None]] = []  # each file, and the folder it was found in
        for path in paths:
            try:
                folder = Path(path) if Path(path).is_dir() else None
                files.extend((f, folder) for f in iter_article_files([Path(path)], report.errors))
            except IngestError as exc:
                report.errors.append(str(exc))
        bar = tqdm(
            files,
            unit="file",
            disable=None if progress is None else not progress,
            leave=False,
            desc="ingest",
        )
        # Short transactions of several articles each (each article all-or-nothing inside).
        with self.store.batch() as batch:
            for prepared in prepare_all(bar, len(files)):
                try:
                    if isinstance(prepared, str):
                        raise IngestError(prepared)
                    self.ingest_article(prepared.raw, report, prepared)
                except IngestError as exc:
                    report.errors.append(str(exc))
                batch.due()
        bar.close()
        after_write(self.store)  # a new snapshot only when there is none or the tail is large
        report.seconds = time.perf_counter() - started
        return report

    def ingest_article(
        self,
        raw: RawArticle,
        report: IngestReport,
        prepared: Prepared | None = None,
        *,
        unless_deleted: bool = False,
    ) -> int | None:
        """Store one article unless it is already there; return its id when added.
        ``prepared``: ``Prepared.of(raw)`` if already done (in a worker process).
        ``unless_deleted`` (feed polling): leave out an article an operator deleted, found by
        any of its URLs or by its text; an explicit ingest stores it again."""
        prepared = Prepared.of(raw) if prepared is None else prepared
        report.notes += raw.notes
        try:
            return self._ingest(raw, report, prepared, unless_deleted)
        except sqlite3.IntegrityError:
            # Another process stored the same article between our look and our write (two
            # ingests of one folder): decide again, now that its row is there.
            return self._ingest(raw, report, prepared, unless_deleted)

    def _ingest(
        self, raw: RawArticle, report: IngestReport, prepared: Prepared, unless_deleted: bool
    ) -> int | None:
        units, hashes, keys = prepared.units, prepared.content, prepared.keys
        if not hashes:
            raise IngestError(f"{raw.source}: no article text found (only menus or boilerplate)")
        content_hash = text_hash(" ".join(hashes))
        store = self.store
        # An article an operator deleted, found by a URL, its text, or most of its sentences:
        # feeds leave it out; an explicit ingest stores it again and says so.
        deleted = store.deletions([*keys, content_key(content_hash)], hashes, NEAR_DUPLICATE_SHARE)
        if deleted and unless_deleted:
            report.withheld += 1
            return None

        # The article this file or page wrote (its key recorded as "primary"), if any: only
        # that one is ever rewritten by it. A copy's key (an alias) never rewrites the article
        # it copied, or anyone could take over a stored article by editing a copy.
        found = {k: store.find_article_by_key(k) for k in keys}  # each key looked up once
        holder = found[keys[-1]]
        own = holder if holder is not None and store.is_primary_key(holder, keys[-1]) else None
        same = store.find_by_content(content_hash)
        if same is not None and own is not None and own != same:
            # Its own article now has the text of another stored one: it is a copy of that
            # one, stored first, and is folded into it (its addresses kept as aliases). The
            # other is never rewritten: no source decides another's article.
            store.fold_into(own, same)
            self._duplicate(report, raw, same)
            return None
        if same is not None:
            if not all(found[k] == same for k in keys):
                self._alias(keys, same, raw)
                self._duplicate(report, raw, same)
                return None
            stored = store.article(same)
            if (
                stored is None
                # another file of it (an alias, a copy) decides nothing
                or own != same
                or (stored.title, stored.outlet, stored.published)
                == (raw.title, raw.outlet, raw.published)
            ):
                report.unchanged += 1
                return None
            # Its own file, the same text under a corrected title, outlet or date (front
            # matter fixed by hand, or read better by this code): rewritten in place below and
            # re-embedded, as the title is part of each unit's embedded context.
        # Ingested before and changed: that article is updated in place.
        existing = own
        by_url = found[keys[0]] if existing is None and len(keys) > 1 else None
        at_own_url = by_url is not None and store.is_own_url(by_url, keys[0])
        if at_own_url and holder is None:
            # A file or page never seen, under a stored article's own address, with new
            # text: the page changed. It is the article's own file from now on.
            existing = by_url
        if existing is None:
            # Nearly all of these sentences are a stored article's: a copy of it. Or a known
            # copy, changed, under that article's own address: it can neither rewrite the
            # article nor take its address. (A copy under an address of its own, changed
            # beyond a near copy, is an article of its own.)
            near, share = store.best_overlap(hashes)
            copy_of = near if near is not None and share >= NEAR_DUPLICATE_SHARE else None
            if copy_of is None and at_own_url:
                copy_of = by_url
            if copy_of is not None:
                self._alias(keys, copy_of, raw)
                self._duplicate(report, raw, copy_of)
                return None

        vectors = self._embed(raw.title, units)
        article_id = store.write_article(
            NewArticleRow(
                raw.url,
                canonical_url(raw.url),
                raw.title,
                raw.outlet,
                raw.published,
                raw.source,
                content_hash,
            ),
            keys,
            [
                NewSentenceRow(u.para, u.seq, pos, u.kind, u.text, h, vectors[pos], features)
                for pos, (u, h, features) in enumerate(
                    zip(units, prepared.hashes, prepared.features, strict=True)
                )
            ],
            replace=existing,
            lift=deleted,
        )
        report.restored += bool(deleted)
        # sentences as `stats` counts them: the searchable ones
        report.count(article_id, existing is not None, sum(1 for v in vectors if v is not None))
        return article_id

    def _duplicate(self, report: IngestReport, raw: RawArticle, article_id: int) -> None:
        """Count a copy and say of what: "1 duplicate skipped" alone left the reader to guess
        which file was a copy of which article."""
        report.duplicates += 1
        original = self.store.article(article_id)
        of = f"“{original.title}” ({original.url or original.source})" if original else "another"
        report.notes.append(f"{raw.source}: a copy of {of}, stored once")

    def _alias(self, keys: list[str], article_id: int, raw: RawArticle) -> None:
        """Record another URL (or file) of a stored article; another outlet's copy is
        "also reported by"."""
        original = self.store.article(article_id)
        kind = "alias" if original and original.outlet == raw.outlet else "also_reported"
        self.store.add_aliases(keys, article_id, raw.outlet, kind)

    def _embed(self, title: str, units: list[Unit]) -> list[np.ndarray | None]:
        """One vector per citable unit: sentences and headings the mean of it alone and in
        context, boilerplate alone. Each distinct text is embedded once."""
        texts: list[str] = []
        slots: dict[str, int] = {}
        where: list[tuple[int, int] | None] = []

        def slot(text: str) -> int:
            if text not in slots:
                slots[text] = len(texts)
                texts.append(text)
            return slots[text]

        known = self._boilerplate_vectors
        heading = ""
        for u in units:
            if u.kind == HEADING:
                heading = u.text
            if not citable(u.text) or (u.kind == BOILERPLATE and u.text in known):
                where.append(None)
            elif u.kind == BOILERPLATE:
                where.append((slot(u.text), slot(u.text)))
            else:
                context = context_text(title, "" if u.kind == HEADING else heading, u.text)
                where.append((slot(u.text), slot(context)))
        matrix = self.embedder.embed(texts) if texts else np.zeros((0, self.embedder.dim))
        out: list[np.ndarray | None] = []
        for u, w in zip(units, where, strict=True):
            if w is not None:
                out.append((matrix[w[0]] + matrix[w[1]]) / 2)
                if u.kind == BOILERPLATE and len(known) < BOILERPLATE_CACHE:
                    known[u.text] = out[-1]
            else:
                out.append(known.get(u.text) if u.kind == BOILERPLATE else None)
        return out


@dataclass
class Prepared:
    """An article with everything computed from its text alone: units, their hashes and
    their stored features (``unit_features.encode``)."""

    raw: RawArticle
    units: list[Unit]
    hashes: list[str]
    features: list[tuple[str, int, str]]
    keys: list[str]  # ``article_keys`` (resolving a path is syscalls: done in the worker)

    @property
    def content(self) -> list[str]:
        """Hashes of the units that are not boilerplate, in order."""
        return [h for u, h in zip(self.units, self.hashes, strict=True) if u.kind != BOILERPLATE]

    @classmethod
    def of(cls, raw: RawArticle) -> Prepared:
        units = segment(raw.text)
        return cls(
            raw,
            units,
            [text_hash(u.text) for u in units],
            [encode(u.text) for u in units],
            article_keys(raw),
        )


def prepare(listed: tuple[Path, Path | None]) -> Prepared | str:
    """Read, segment and tokenize one file (listed in a folder, or named itself), or say why
    it cannot be read. No store access, so it can run in a worker process."""
    path, folder = listed
    try:
        return Prepared.of(load_file(path, within=folder))
    except IngestError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - one file's failure is reported, not fatal
        # A reader's (or trafilatura's, lxml's) bug met by one hostile file: that file is
        # skipped and named, and the rest of the run goes on (it had ended the whole ingest,
        # rolling back its batch).
        return f"{path}: could not be read ({type(exc).__name__}: {str(exc)[:200]})"


def prepare_all(files: Iterable[tuple[Path, Path | None]], count: int) -> Iterator[Prepared | str]:
    """``prepare`` each file, in order. A bulk ingest reads and segments (most of its work)
    in worker processes while this process embeds and writes; only this process touches the
    store, so every article is still written whole, in file order, as by a serial run."""
    workers = min(os.cpu_count() or 1, 4)
    if count < PARALLEL_MIN_FILES or workers < 2:
        yield from map(prepare, files)
        return
    # Fork: a worker only reads files and segments text (no store, model or lock of the
    # parent), and unlike spawn/forkserver it does not re-run the caller's main module.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=leave_with_parent, initargs=(os.getpid(),)
    ) as pool:
        batches = _batches(iter(files), PREPARE_BATCH)
        ahead = [pool.map(prepare, batch, chunksize=8) for batch in _take(batches, 1)]
        while ahead:
            current = ahead.pop(0)
            ahead.extend(pool.map(prepare, batch, chunksize=8) for batch in _take(batches, 1))
            yield from current


def _batches(items: Iterator[T], size: int) -> Iterator[list[T]]:
    while batch := [item for _, item in zip(range(size), items, strict=False)]:
        yield batch


def _take(batches: Iterator[list[T]], n: int) -> list[list[T]]:
    return [batch for _, batch in zip(range(n), batches, strict=False)]
