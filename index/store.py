"""The data dir: a SQLite store of articles and sentences (with their embeddings) plus the
search index files derived from it.

Layout of ``TALKSBOT_DATA_DIR``::

    talksbot.db          articles, sentences (+ embeddings), URLs, answers, feeds, pushes; WAL
    params.json          which model and settings built the embeddings; a mismatch is refused
    models/              the ONNX export of the bundled model (made once)
    index/snap-N-*/      the search index snapshot (index/live_index.py), named in ``meta``

SQLite transactions make every article all-or-nothing, its tokens and change-log entries
included; the index folder is derived data, rebuilt from the stored embeddings and tokens (no
model needed) when missing or damaged. Killing a writer at any moment therefore leaves a
store that loads and answers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index.params import mismatches
from index.schema import WRITE_HANDOVER_SECONDS, WRITE_WAIT_SECONDS, begin_immediate, migrate, write
from index.store_answers import AnswerLog
from index.store_feeds import FeedTable
from index.store_leases import Leases
from index.store_pushes import PushTables
from index.terms import add_article_terms, fill_once
from index.unit_features import encode

log = logging.getLogger(__name__)

# The index format recorded in params.json (the database schema has its own migrations).
SCHEMA_VERSION = 1
DB_NAME = "talksbot.db"
PARAMS_NAME = "params.json"
PARAMS_KEY = "params"  # meta: a copy of params.json


class StoreError(Exception):
    """A data dir that cannot be used as it is; the message says why and what to do."""


@dataclass
class ArticleRow:
    id: int
    url: str
    title: str
    outlet: str
    published: str
    source: str


@dataclass
class NewArticleRow:
    url: str
    canonical_url: str
    title: str
    outlet: str
    published: str
    source: str
    content_hash: str


@dataclass
class NewSentenceRow:
    para: int
    seq: int
    position: int
    kind: str
    text: str
    hash: str
    embedding: np.ndarray | None
    # ``unit_features.encode(text)`` when already computed (a bulk ingest does it in its
    # worker processes); its first item is the unit's tokens, space-joined.
    features: tuple[str, int, str] | None = None

    def encoded(self) -> tuple[str, int, str]:
        if self.features is None:
            self.features = encode(self.text)
        return self.features


@dataclass
class SentenceRow:
    id: int
    article_id: int
    para: int
    seq: int
    position: int
    kind: str
    text: str


def _atomic_write(path: Path, data: str) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(f.name, path)


WRITE_BATCH_SECONDS = 0.3  # longest a bulk ingest holds the write lock between commits


class WriteBatch:
    """An open write transaction shared by several writes (``Store.batch``)."""

    def __init__(self, db: sqlite3.Connection, seconds: float) -> None:
        self.db = db
        self.seconds = seconds
        self.started: float | None = None

    def open(self) -> None:
        if self.started is None:
            begin_immediate(self.db)
            self.started = time.monotonic()

    def due(self) -> None:
        """Commit if the open transaction is older than the batch's seconds."""
        if self.started is not None and time.monotonic() - self.started >= self.seconds:
            self.commit()

    def commit(self) -> None:
        if self.started is not None:
            self.db.commit()
            self.started = None
            time.sleep(WRITE_HANDOVER_SECONDS)  # a waiting writer's turn

    def rollback(self) -> None:
        if self.started is not None:
            self.db.rollback()
            self.started = None


class Store:
    """The SQLite side of the data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self._batch: WriteBatch | None = None
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(
                self.data_dir / DB_NAME, timeout=WRITE_WAIT_SECONDS, check_same_thread=False
            )
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.execute("PRAGMA synchronous=NORMAL")
            migrate(self.db)
            fill_once(self.db)  # tokens of rows stored before the live index existed
        except (OSError, sqlite3.DatabaseError) as exc:
            raise StoreError(f"cannot open the store in {self.data_dir}: {exc}") from None
        # The other table groups, each behind a small API of its own on this connection.
        self.answers = AnswerLog(self.db)
        self.feeds = FeedTable(self.db)
        self.pushes = PushTables(self.db)
        self.leases = Leases(self.db)

    def close(self) -> None:
        self.db.close()

    def prune(self, before: float) -> dict[str, int]:
        """Retention: answers, feedback and finished push rows older than ``before`` go."""
        return {**self.answers.prune(before), "deliveries": self.pushes.prune(before)}

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- params -----------------------------------------------------------------------------
    @property
    def params_path(self) -> Path:
        return self.data_dir / PARAMS_NAME

    def read_params(self) -> dict | None:
        """The recorded settings. The database keeps a copy: a lost ``params.json`` is
        written again from it (the store and its subscriptions need not be rebuilt), and a
        file that disagrees with the copy is refused (vectors of two models never mix)."""
        copy = self._params_copy()
        if not self.params_path.exists():
            if copy is None:
                return None
            try:
                self._write_params_file(copy)
                log.warning("%s was missing; written again from the store", self.params_path)
            except OSError as exc:
                log.warning("%s is missing and cannot be written again (%s)", self.params_path, exc)
            return copy
        spare = " (the store's database keeps a copy: delete the file to have it written again)"
        try:
            params = json.loads(self.params_path.read_text())
        except (OSError, ValueError, RecursionError) as exc:  # nesting deeper than json reads
            raise StoreError(
                f"{self.params_path} is unreadable ({exc})" + (spare if copy else "")
            ) from None
        if not isinstance(params, dict):
            raise StoreError(
                f"{self.params_path} is not a settings file (a JSON object)"
                + (spare if copy else "")
            )
        if copy is not None and copy != params:
            every = {key: copy.get(key) for key in sorted({*copy, *params})}
            diffs = mismatches(every, params, "database", "file")
            raise StoreError(
                f"{self.params_path} disagrees with the copy in the store's database ("
                + "; ".join(diffs)
                + "): restore the file that built this store, or delete it to use the copy"
            )
        return params

    def _write_params_file(self, params: dict) -> None:
        _atomic_write(self.params_path, json.dumps(params, indent=2, sort_keys=True))

    def _params_copy(self) -> dict | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (PARAMS_KEY,)).fetchone()
        if row is None:
            return None
        try:
            copy = json.loads(row[0])
        except (ValueError, RecursionError):
            copy = None
        if not isinstance(copy, dict):
            raise StoreError(
                f"the copy of {PARAMS_NAME} in the store's database is damaged; restore "
                f"{self.params_path} from a backup, or ingest into a new TALKSBOT_DATA_DIR"
            )
        return copy

    def _keep_params_copy(self, params: dict) -> None:
        try:
            with write(self.db):
                self.db.execute(
                    "INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)",
                    (PARAMS_KEY, json.dumps(params, sort_keys=True)),
                )
        except sqlite3.OperationalError as exc:  # a read-only store is still readable
            log.debug("no copy of the settings kept: %s", exc)

    def check_params(self, expected: dict, write: bool) -> None:
        """Refuse a data dir built by another model or settings; record ours on first write
        (in ``params.json`` and, as a spare, in the database)."""
        expected = {"schema": SCHEMA_VERSION, **expected}
        found = self.read_params()
        if found is None:
            if self.article_count():
                raise StoreError(
                    f"{self.params_path} is missing, and this store is older than the copy "
                    "kept in its database: which model built its vectors is unknown. Restore "
                    "the file from a backup, or ingest into a new TALKSBOT_DATA_DIR."
                )
            if write:
                self._write_params_file(expected)
                self._keep_params_copy(expected)
            return
        diffs = mismatches(expected, found, "configured", "index")
        if diffs:
            raise StoreError(
                f"the index in {self.data_dir} was built with different settings ("
                + "; ".join(diffs)
                + "). Use the settings it was built with, or ingest into a new TALKSBOT_DATA_DIR."
            )
        if self._params_copy() is None:
            # A store from before the database kept a copy: the file is copied only once it is
            # accepted, so a read of a tampered file cannot make the tampering permanent.
            self._keep_params_copy(found)

    # -- generation -------------------------------------------------------------------------
    def generation(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        return int(row[0]) if row else 0

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One all-or-nothing write that also bumps the generation (so indexes know to rebuild).
        Inside ``batch`` it is a savepoint of the batch's transaction: all or nothing still."""
        if self._batch is not None:
            self._batch.open()
            self.db.execute("SAVEPOINT write")
            try:
                yield self.db
                self._bump_generation()
            except BaseException:
                self.db.execute("ROLLBACK TO write")
                self.db.execute("RELEASE write")
                raise
            self.db.execute("RELEASE write")
            return
        with write(self.db):
            yield self.db
            self._bump_generation()

    def _bump_generation(self) -> None:
        self.db.execute(
            "INSERT INTO meta(key, value) VALUES('generation', '1') ON CONFLICT(key) "
            "DO UPDATE SET value = CAST(value AS INTEGER) + 1"
        )

    @contextlib.contextmanager
    def batch(self, seconds: float = WRITE_BATCH_SECONDS) -> Iterator[WriteBatch]:
        """Group many short writes (a bulk ingest's articles) into transactions of at most about
        ``seconds``, committed by ``WriteBatch.due`` between writes and at the end. Each write
        stays all-or-nothing (a savepoint); a crash loses at most the open batch, never what was
        committed. Far fewer commits: a million sentences written one article per transaction
        rewrote every touched index page (hash index, token tables) once per article."""
        if self._batch is not None:
            yield self._batch
            return
        self._batch = WriteBatch(self.db, seconds)
        try:
            yield self._batch
            self._batch.commit()
        except BaseException:
            # The writes done so far are whole (a failed one rolled back to its savepoint):
            # keep them, as one transaction per write would have.
            try:
                self._batch.commit()
            except sqlite3.Error:
                self._batch.rollback()
            raise
        finally:
            self._batch = None

    # -- reads ------------------------------------------------------------------------------
    def article_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM articles").fetchone()[0]

    def article(self, article_id: int) -> ArticleRow | None:
        row = self.db.execute(
            "SELECT id, url, title, outlet, published, source FROM articles WHERE id=?",
            (article_id,),
        ).fetchone()
        return ArticleRow(**dict(row)) if row else None

    def articles(self) -> list[ArticleRow]:
        rows = self.db.execute(
            "SELECT id, url, title, outlet, published, source FROM articles ORDER BY id"
        ).fetchall()
        return [ArticleRow(**dict(r)) for r in rows]

    def find_article_by_key(self, key: str) -> int | None:
        row = self.db.execute("SELECT article_id FROM article_urls WHERE url=?", (key,)).fetchone()
        return row[0] if row else None

    def deletions(
        self, keys: list[str], hashes: Sequence[str] = (), share: float = 1.0
    ) -> set[str]:
        """The operator's deletions (``delete_article``) an article matches: by any of its
        ``keys`` (URLs, source keys, ``content_key``), or as a near copy: its content
        sentences (``hashes``) and a deleted article's share at least ``share`` of each."""
        if not keys and not hashes:
            return set()
        if self.db.execute("SELECT 1 FROM deleted_keys LIMIT 1").fetchone() is None:
            return set()  # nothing ever deleted: the usual case, one cheap look
        found = {
            d
            for (d,) in self._chunked(
                "SELECT DISTINCT deletion FROM deleted_keys WHERE key IN ({marks})", keys
            )
        }
        unique = list(dict.fromkeys(sentence_key(h) for h in hashes))
        shared: dict[str, int] = {}
        for deletion, n in self._chunked(
            "SELECT deletion, COUNT(*) FROM deleted_keys WHERE key IN ({marks}) GROUP BY deletion",
            unique,
        ):
            shared[deletion] = shared.get(deletion, 0) + n
        # Near copies both ways: the shared sentences are ``share`` of the article and of the
        # deleted one (an article quoting a few of a long deleted one matches neither way).
        for deletion, n in shared.items():
            (size,) = self.db.execute(
                "SELECT COUNT(*) FROM deleted_keys WHERE deletion=? AND key LIKE 'sentence:%'",
                (deletion,),
            ).fetchone()
            if n >= share * max(len(unique), size):
                found.add(deletion)
        return found

    def _chunked(self, sql: str, values: Sequence[str]) -> Iterator[tuple]:
        """Rows of ``sql`` (``{marks}``: a list of placeholders) over ``values`` 500 at a time,
        within SQLite's limit on host parameters."""
        for start in range(0, len(values), 500):
            chunk = list(values[start : start + 500])
            yield from self.db.execute(sql.format(marks=",".join("?" * len(chunk))), chunk)

    def lift_deletions(self, db: sqlite3.Connection, deletions: Iterable[str]) -> None:
        """Forget these deletions (inside the caller's transaction): stored again on purpose."""
        db.executemany("DELETE FROM deleted_keys WHERE deletion=?", [(d,) for d in deletions])

    def is_primary_key(self, article_id: int, key: str) -> bool:
        """Whether ``key`` (a URL or source key) is one the article was written under, not an
        alias's or a copy's."""
        return (
            self.db.execute(
                "SELECT 1 FROM article_urls WHERE url=? AND article_id=? AND kind='primary'",
                (key, article_id),
            ).fetchone()
            is not None
        )

    def is_own_url(self, article_id: int, canonical: str) -> bool:
        """Whether this is the article's own (canonical) URL, not an alias or a copy's."""
        return (
            self.db.execute(
                "SELECT 1 FROM articles WHERE id=? AND canonical_url=?", (article_id, canonical)
            ).fetchone()
            is not None
        )

    def find_by_content(self, content_hash: str) -> int | None:
        row = self.db.execute(
            "SELECT id FROM articles WHERE content_hash=?", (content_hash,)
        ).fetchone()
        return row[0] if row else None

    def best_overlap(self, hashes: list[str]) -> tuple[int | None, float]:
        """The stored article sharing most of these sentence hashes, and the share shared."""
        unique = list(dict.fromkeys(hashes))
        if not unique:
            return None, 0.0
        counts: dict[int, int] = {}
        for article_id, n in self._chunked(
            "SELECT article_id, COUNT(DISTINCT hash) FROM sentences WHERE hash IN ({marks}) "
            "AND kind != 'boilerplate' GROUP BY article_id",
            unique,
        ):
            counts[article_id] = counts.get(article_id, 0) + n
        if not counts:
            return None, 0.0
        best = max(counts, key=counts.__getitem__)
        return best, counts[best] / len(unique)

    def sentences(self, ids: list[int]) -> dict[int, SentenceRow]:
        out: dict[int, SentenceRow] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for r in self.db.execute(
                f"SELECT id, article_id, para, seq, position, kind, text FROM sentences "
                f"WHERE id IN ({marks})",
                chunk,
            ):
                out[r["id"]] = SentenceRow(**dict(r))
        return out

    def neighbours(
        self, article_id: int, position: int, before: int, after: int
    ) -> list[SentenceRow]:
        """Non-boilerplate units around ``position`` in the article, in reading order."""
        rows = self.db.execute(
            "SELECT * FROM (SELECT id, article_id, para, seq, position, kind, text FROM sentences "
            "WHERE article_id=? AND position<? AND kind!='boilerplate' ORDER BY position DESC "
            "LIMIT ?) UNION ALL SELECT * FROM (SELECT id, article_id, para, seq, position, kind, "
            "text FROM sentences WHERE article_id=? AND position>=? AND kind!='boilerplate' "
            "ORDER BY position LIMIT ?) ORDER BY 5",
            (article_id, position, before, article_id, position, after + 1),
        ).fetchall()
        return [SentenceRow(**dict(r)) for r in rows]

    def searchable_units(self) -> list[tuple[str, str, str]]:
        """``(kind, text, article title)`` of every searchable (embedded) unit, in id order."""
        sql = (
            "SELECT s.kind, s.text, a.title FROM sentences s JOIN articles a "
            "ON a.id = s.article_id WHERE s.embedding IS NOT NULL ORDER BY s.id"
        )
        return [(kind, text, title) for kind, text, title in self.db.execute(sql)]

    def unit_sample(self, n: int) -> list[str]:
        """The texts of up to about ``n`` searchable units, spread evenly over the ids (corpus
        statistics from a sample: each id looked up, never a scan of the whole table)."""
        low, high = self.db.execute("SELECT MIN(id), MAX(id) FROM sentences").fetchone()
        if low is None:
            return []
        span = high - low + 1
        ids = range(low, high + 1) if span <= n else np.linspace(low, high, n).round()
        wanted = sorted({int(i) for i in ids})
        texts: list[str] = []
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            texts += [
                text
                for (text,) in self.db.execute(
                    f"SELECT text FROM sentences WHERE id IN ({marks}) AND embedding IS NOT NULL",
                    chunk,
                )
            ]
        return texts

    def vocabulary(self) -> set[str]:
        """Every token the corpus uses anywhere, titles, URLs and boilerplate included."""
        from index.terms import vocabulary

        return vocabulary(self.db)

    def coverage(self) -> dict:
        """What the store covers, from the articles table alone (sentences are never scanned):
        shown with abstentions, /start and /sources."""
        row = self.db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT NULLIF(outlet, '')), MIN(NULLIF(published, '')), "
            "MAX(NULLIF(published, '')) FROM articles"
        ).fetchone()
        outlets = [
            r[0]
            for r in self.db.execute(
                "SELECT outlet, COUNT(*) c FROM articles WHERE outlet != '' GROUP BY outlet "
                "ORDER BY c DESC, outlet"
            )
        ]
        return {
            "articles": row[0],
            "outlets": row[1],
            "outlet_names": outlets,
            "first_published": row[2] or "",
            "last_published": row[3] or "",
        }

    def stats(self) -> dict:
        """``coverage`` plus sentence counts (a scan of every sentence: ``talksbot stats``)."""
        sentences = self.db.execute(
            "SELECT COUNT(*), SUM(embedding IS NOT NULL) FROM sentences"
        ).fetchone()
        return {
            **self.coverage(),
            "sentences": sentences[0],
            "indexed_sentences": sentences[1] or 0,
            "generation": self.generation(),
        }

    def latest(self, n: int) -> list[ArticleRow]:
        rows = self.db.execute(
            "SELECT id, url, title, outlet, published, source FROM articles "
            "ORDER BY published DESC, id DESC LIMIT ?",
            (n,),
        ).fetchall()
        return [ArticleRow(**dict(r)) for r in rows]

    def also_reported(self, article_id: int) -> list[str]:
        """Other outlets that ran the same story (stored once, recorded as "also reported")."""
        return [
            r[0]
            for r in self.db.execute(
                "SELECT DISTINCT outlet FROM article_urls WHERE article_id=? "
                "AND kind='also_reported' AND outlet != ''",
                (article_id,),
            )
        ]

    def embedded_sentences(self, article_id: int) -> list[tuple[int, str, bytes]]:
        """(id, text, embedding) of one article's indexed sentences (not headings or
        boilerplate-marked lines, which are indexed too), in reading order."""
        return self.db.execute(
            "SELECT id, text, embedding FROM sentences WHERE article_id=? "
            "AND embedding IS NOT NULL AND kind='sentence' ORDER BY position",
            (article_id,),
        ).fetchall()

    # -- writes (ingest) --------------------------------------------------------------------
    def write_article(
        self,
        article: NewArticleRow,
        keys: list[str],
        sentences: list[NewSentenceRow],
        replace: int | None = None,
        lift: Iterable[str] = (),
    ) -> int:
        """Store an article with its URLs and sentences in one transaction; with ``replace``,
        that article's row and sentences are replaced in place; ``lift``: deletions it undoes
        (``deletions``). ``keys`` become the article's own; another file that wrote it
        before becomes an alias, so two files under one address do not take turns rewriting
        it. Returns the article id."""
        values = (
            article.url,
            article.canonical_url,
            article.title,
            article.outlet,
            article.published,
            article.source,
            article.content_hash,
            time.time(),
        )
        with self.transaction() as db:
            if replace is not None:
                article_id = replace
                db.execute(
                    "UPDATE article_urls SET kind='alias' WHERE article_id=? AND kind='primary' "
                    f"AND url LIKE 'file:%' AND url NOT IN ({','.join('?' * len(keys))})",
                    (article_id, *keys),
                )
                db.execute("DELETE FROM sentences WHERE article_id=?", (article_id,))
                db.execute(
                    "UPDATE articles SET url=?, canonical_url=?, title=?, outlet=?, published=?, "
                    "source=?, content_hash=?, added_at=? WHERE id=?",
                    (*values, article_id),
                )
            else:
                article_id = db.execute(
                    "INSERT INTO articles(url, canonical_url, title, outlet, published, source, "
                    "content_hash, added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    values,
                ).lastrowid
            db.executemany(
                "INSERT OR REPLACE INTO article_urls(url, article_id, outlet, kind) "
                "VALUES (?, ?, ?, 'primary')",
                [(k, article_id, article.outlet) for k in keys],
            )
            # Stored again on purpose (an explicit ingest): no longer deleted.
            self.lift_deletions(db, lift)
            # Searchable units carry their question-independent features (unit_features).
            db.executemany(
                "INSERT INTO sentences(article_id, para, seq, position, kind, text, hash, "
                "embedding, unit_terms, unit_flags, unit_names) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        article_id,
                        s.para,
                        s.seq,
                        s.position,
                        s.kind,
                        s.text,
                        s.hash,
                        *(
                            (None, None, None, None)
                            if s.embedding is None
                            else (embedding_blob(s.embedding), *s.encoded())
                        ),
                    )
                    for s in sentences
                ],
            )
            # Its tokens, in the same transaction, from the features computed above.
            add_article_terms(db, article_id, {s.position: s.encoded()[0] for s in sentences})
        return article_id

    def delete_article(self, article_id: int) -> bool:
        """Remove an article, its URLs, sentences and tokens in one transaction (the index
        log's triggers tell every reader; no rebuild), and cancel pushes of it not yet sent.
        Its URLs, source keys, content hash and sentence hashes are kept as one deletion
        (``deletions``), so feed polling does not bring it back. False when there was no such
        article."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT canonical_url, content_hash FROM articles WHERE id=?", (article_id,)
            ).fetchone()
            if row is not None:
                keys = {
                    u
                    for (u,) in db.execute(
                        "SELECT url FROM article_urls WHERE article_id=?", (article_id,)
                    )
                }
                keys |= {row[0], content_key(row[1])}
                keys |= {
                    sentence_key(h)
                    for (h,) in db.execute(
                        "SELECT DISTINCT hash FROM sentences WHERE article_id=? "
                        "AND kind != 'boilerplate'",
                        (article_id,),
                    )
                }
                now = time.time()
                deletion = f"{article_id}@{now:.6f}"
                db.executemany(
                    "INSERT OR IGNORE INTO deleted_keys(key, deletion, deleted_at) "
                    "VALUES (?, ?, ?)",
                    [(k, deletion, now) for k in sorted(keys - {""})],
                )
            gone = db.execute("DELETE FROM articles WHERE id=?", (article_id,)).rowcount
            _cancel_pushes(db, article_id)
        return bool(gone)

    def fold_into(self, article_id: int, into: int) -> None:
        """``article_id`` turned out to be a copy of ``into`` (its own source now has that
        text): it is removed, no deletion recorded, and its URLs and files become ``into``'s
        aliases ("also reported by" for another outlet). ``into`` itself is left as it is."""
        with self.transaction() as db:
            db.execute(
                "UPDATE article_urls SET article_id=?, kind=CASE WHEN outlet="
                "(SELECT outlet FROM articles WHERE id=?) THEN 'alias' ELSE 'also_reported' END "
                "WHERE article_id=?",
                (into, into, article_id),
            )
            _cancel_pushes(db, article_id)
            db.execute("DELETE FROM articles WHERE id=?", (article_id,))

    def add_aliases(self, keys: list[str], article_id: int, outlet: str, kind: str) -> None:
        """Record other URLs (or files) of a stored article: ``alias`` or ``also_reported``."""
        with self.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO article_urls(url, article_id, outlet, kind) "
                "VALUES (?, ?, ?, ?)",
                [(k, article_id, outlet, kind) for k in keys],
            )


def _cancel_pushes(db: sqlite3.Connection, article_id: int) -> None:
    """Cancel the pushes of an article not yet sent (inside the caller's transaction): it is
    gone, deleted or folded into another."""
    db.execute(
        "UPDATE deliveries SET status='cancelled' WHERE article_id=? "
        "AND status IN ('pending', 'digest')",
        (article_id,),
    )


def content_key(content_hash: str) -> str:
    """The ``deleted_keys`` key of an article's text (the same text under any URL)."""
    return f"content:{content_hash}" if content_hash else ""


def sentence_key(sentence_hash: str) -> str:
    """The ``deleted_keys`` key of one of a deleted article's sentences (near copies)."""
    return f"sentence:{sentence_hash}"


def rmtree_quiet(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def embedding_blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()
