"""The search index as a snapshot plus a tail, kept current without rebuilds.

A **snapshot** is a folder of named files built from the store at one position of its change
log (``index_log``)::

    index/snap-<seq>-<random>/
        dense.faiss     FAISS over the sentence vectors, ids = sentence ids: an IndexIDMap2 over
                        a flat inner-product index; past IVF_MIN_VECTORS an IVF index (flat
                        codes up to 128 dimensions, SQ8 beyond), memory-mapped when loaded
        bm25/           bm25s over the stored tokens, rows in sentence-id order
        ids.npy         bm25 row -> sentence id
        manifest.json   log position, counts, dense kind, the params that built it

The live snapshot is named in the store's ``meta`` table (``index_snapshot``), so switching
snapshots and trimming the change log are one transaction.

A **reader** (``LiveIndex``) maps a snapshot, then replays the log past the snapshot's position:
added sentences (embedding from SQLite, tokens from ``sentence_terms``) go to a small in-memory
tail searched exhaustively, deleted ones are masked out. ``refresh`` repeats that for whatever
was committed since, so a process sees another's ingest at its next poll without a rebuild.
Writers call ``after_write``: it rewrites the snapshot only when the tail has grown past
``REWRITE_MIN_TAIL`` or ``REWRITE_SHARE`` of the snapshot (Lucene's segments-and-merge idea in
its smallest form); ``rebuild`` rewrites it unconditionally (``talksbot reindex``).

Scores: tail sentences are scored with the snapshot's formula (bm25s "lucene") on document
frequencies counted over snapshot and tail, and the snapshot's mean length; a snapshot's
precomputed BM25 weights are rescaled per query term from the snapshot's IDF to that live IDF,
so old and new sentences are ranked by one IDF. What stays as of the snapshot until the next
rewrite: the mean length, and deleted sentences, which still count in document frequencies.
A rewrite makes all of it exact again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import sqlite3
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from index import terms as term_store
from index.schema import write
from index.store import DB_NAME, SentenceRow, Store, rmtree_quiet
from index.text import tokenize
from index.unit_features import UNIT_FEATURES_VERSION, UnitInfo, decode

log = logging.getLogger(__name__)

K1, B = 1.2, 0.75  # BM25, as bm25s.BM25(k1=1.2, b=0.75)
IVF_MIN_VECTORS = 200_000  # below: exact flat search (measured: 1M x 64 flat costs ~40 ms/query)
IVF_NPROBE = 32  # measured at 1M (hash vectors): recall@100 .959 against exact search
REWRITE_MIN_TAIL = 20_000
REWRITE_SHARE = 0.05
SNAPSHOT_KEY = "index_snapshot"
EMPTY_TOKEN = "_empty_"


def _bm25s():
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s


# -- snapshot files ---------------------------------------------------------------------------
@dataclass
class Bm25Files:
    """A bm25s index as saved (``BM25.save``), read without importing bm25s (and scipy): the
    vocabulary and the memory-mapped CSC matrix of precomputed term scores. Scores are summed
    exactly as ``BM25.get_scores`` does (float32, term by term, duplicates counted twice)."""

    vocab: dict[str, int]
    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray
    num_docs: int

    @classmethod
    def load(cls, folder: Path) -> Bm25Files:
        params = json.loads((folder / "params.index.json").read_text())
        return cls(
            vocab=json.loads((folder / "vocab.index.json").read_text()),
            data=np.load(folder / "data.csc.index.npy", mmap_mode="r"),
            indices=np.load(folder / "indices.csc.index.npy", mmap_mode="r"),
            indptr=np.load(folder / "indptr.csc.index.npy", mmap_mode="r"),
            num_docs=int(params["num_docs"]),
        )

    def df(self, term: str) -> int:
        tid = self.vocab.get(term)
        return 0 if tid is None else int(self.indptr[tid + 1] - self.indptr[tid])

    def scores(self, terms: list[str], scale: list[float] | None = None) -> np.ndarray:
        """BM25 of every row; ``scale``: a factor per term (the live index's IDF over this
        snapshot's, once the corpus has grown past it)."""
        out = np.zeros(self.num_docs, np.float32)
        for i, term in enumerate(terms):
            tid = self.vocab.get(term)
            if tid is not None:
                start, end = int(self.indptr[tid]), int(self.indptr[tid + 1])
                values = self.data[start:end]
                if scale is not None and scale[i] != 1.0:
                    values = values * np.float32(scale[i])
                # Rows are unique per term, so this is ``out[rows] += values``: the same float32
                # sums, at about half the time (numpy's fast path for ``ufunc.at``).
                np.add.at(out, self.indices[start:end], values)
        return out


@dataclass
class Snapshot:
    """One built, read-only snapshot (arrays memory-mapped)."""

    name: str
    seq: int
    ids: np.ndarray  # int64, sorted: bm25 row -> sentence id
    dense: object  # faiss index with sentence ids
    bm25: Bm25Files | None  # None when empty
    avgdl: float
    dim: int
    manifest: dict = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.ids)

    def df(self, term: str) -> int:
        return self.bm25.df(term) if self.bm25 is not None else 0

    @classmethod
    def load(cls, directory: Path) -> Snapshot:
        import faiss

        manifest = json.loads((directory / "manifest.json").read_text())
        dense_path = str(directory / "dense.faiss")
        try:
            # Mapped, not read: a process's memory holds only the pages its queries touch, and
            # processes share them. IO_FLAG_MMAP_IFC maps the IVF lists as plain arrays;
            # IO_FLAG_MMAP would give OnDiskInvertedLists, whose per-list bookkeeping cost
            # 1.3 ms more per query at a million vectors (2.3 -> 1.0 ms; same results, same RSS).
            flag = getattr(faiss, "IO_FLAG_MMAP_IFC", faiss.IO_FLAG_MMAP)  # faiss >= 1.8.0
            dense = faiss.read_index(dense_path, flag)
        except RuntimeError:
            dense = faiss.read_index(dense_path)
        if manifest["dense"].startswith("ivf"):
            faiss.extract_index_ivf(dense).nprobe = IVF_NPROBE
        # One query at a time: OpenMP threads only contend (measured 2-7x slower on 2 busy cores).
        faiss.omp_set_num_threads(1)
        bm25 = None
        if manifest["sentences"]:
            bm25 = Bm25Files.load(directory / "bm25")
        snapshot = cls(
            name=directory.name,
            seq=int(manifest["seq"]),
            ids=np.load(directory / "ids.npy", mmap_mode="r"),
            dense=dense,
            bm25=bm25,
            avgdl=float(manifest["avgdl"]),
            dim=int(manifest["dim"]),
            manifest=manifest,
        )
        snapshot.check()
        return snapshot

    def check(self) -> None:
        """Refuse files that load but disagree with the manifest or each other (a truncated
        or foreign file would otherwise fail on some later query, or cite the wrong row)."""
        n = int(self.manifest["sentences"])
        ids = self.ids
        problems = []
        if ids.shape != (n,) or ids.dtype != np.int64:
            problems.append(f"ids.npy holds {ids.shape} {ids.dtype}, not {n} int64")
        elif n and not (np.all(ids[1:] > ids[:-1]) and int(ids[0]) > 0):
            problems.append("ids.npy is not ascending")
        if int(self.dense.ntotal) != n or int(self.dense.d) != self.dim:
            problems.append(f"dense.faiss holds {self.dense.ntotal} x {self.dense.d}")
        bm25 = self.bm25
        if bm25 is not None:
            # bm25s's vocabulary holds one entry (its empty token) without a column
            if bm25.num_docs != n or len(bm25.indptr) not in (len(bm25.vocab), len(bm25.vocab) + 1):
                problems.append("bm25 does not match the manifest")
            elif int(bm25.indptr[-1]) != len(bm25.indices) or len(bm25.data) != len(bm25.indices):
                problems.append("bm25 arrays disagree")
            elif len(bm25.indices) and int(bm25.indices[::4096].max()) >= n:
                # A sample: the whole array is paged in by queries, not at every start.
                problems.append("bm25 rows out of range")
        if problems:
            raise ValueError(f"snapshot {self.name}: " + "; ".join(problems))


def _dense_index(vectors: np.ndarray, ids: np.ndarray, dim: int) -> tuple[object, str]:
    import faiss

    n = len(ids)
    if n < IVF_MIN_VECTORS:
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        if n:
            index.add_with_ids(vectors, ids)
        return index, "flat"
    nlist = int(2 * math.sqrt(n))  # ~2,000 lists at a million
    quantizer = faiss.IndexFlatIP(dim)
    if dim <= 128:
        index, kind = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT), "ivf"
    else:
        index = faiss.IndexIVFScalarQuantizer(
            quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        kind = "ivf-sq8"
    sample = np.random.default_rng(0).choice(n, min(n, 40 * nlist), replace=False)
    faiss.omp_set_num_threads(os.cpu_count() or 1)  # a build is one big batch
    try:
        index.train(vectors[np.sort(sample)])
        index.add_with_ids(vectors, ids)
    finally:
        faiss.omp_set_num_threads(1)
    return index, kind


def build_snapshot(store: Store, root: Path) -> Path:
    """Write a snapshot of the store as it is now into a new folder under ``root``."""
    import faiss

    db = store.db
    params = store.read_params() or {}
    with _read_transaction(db):
        seq = term_store.log_position(db)
        dim = int(params.get("dim") or 0)
        n = db.execute("SELECT COUNT(*) FROM sentences WHERE embedding IS NOT NULL").fetchone()[0]
        ids = np.empty(n, np.int64)
        vectors: np.ndarray | None = None
        rows = db.execute(
            "SELECT id, embedding FROM sentences WHERE embedding IS NOT NULL ORDER BY id"
        )
        at = 0
        while batch := rows.fetchmany(65_536):  # a numpy call per batch, not per row
            got, blobs = zip(*batch, strict=True)
            if vectors is None:
                dim = len(blobs[0]) // 4
                vectors = np.empty((n, dim), np.float32)
            ids[at : at + len(got)] = got
            vectors[at : at + len(got)] = np.frombuffer(b"".join(blobs), np.float32).reshape(
                len(got), dim
            )
            at += len(got)
        # Tokens as stored (an FTS5 scan is in rowid order, like ids), merged in one pass; one
        # string object per distinct token, so a million sentences' tokens fit.
        corpus: list[list[str] | None] = [None] * n
        at, id_list = 0, ids.tolist()
        for sentence_id, terms in db.execute(
            "SELECT rowid, terms FROM sentence_terms ORDER BY rowid"
        ):
            while at < n and id_list[at] < sentence_id:
                at += 1
            if at < n and id_list[at] == sentence_id:
                corpus[at] = list(map(sys.intern, terms.split())) or [EMPTY_TOKEN]
        del id_list
        missing = [int(ids[i]) for i, tokens in enumerate(corpus) if tokens is None]
        for start in range(0, len(missing), 500):  # none unless a writer skipped the tokens
            chunk = missing[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for sentence_id, text in db.execute(
                f"SELECT id, text FROM sentences WHERE id IN ({marks})", chunk
            ):
                corpus[int(np.searchsorted(ids, sentence_id))] = tokenize(text) or [EMPTY_TOKEN]
    dim = dim or 384
    if vectors is None:
        vectors = np.zeros((0, dim), np.float32)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
    outcome: list[str | BaseException] = []  # the dense index's kind, or what it raised

    def write_dense(matrix: np.ndarray) -> None:
        try:
            dense, kind = _dense_index(matrix, ids, dim)
            faiss.write_index(dense, str(tmp / "dense.faiss"))
            outcome.append(kind)
        except BaseException as exc:  # re-raised in the building thread below
            outcome.append(exc)

    # FAISS works without the GIL, so the dense index is built beside bm25s's Python indexing
    # (at a million sentences each takes about half a minute).
    dense_thread = threading.Thread(target=write_dense, args=(vectors,), name="snapshot-dense")
    dense_thread.start()
    del vectors  # the thread holds them until its index is built
    try:
        np.save(tmp / "ids.npy", ids)
        avgdl = float(np.mean([len(t) for t in corpus])) if corpus else 1.0
        if corpus:
            bm25 = _bm25s().BM25(k1=K1, b=B)
            bm25.index(corpus, show_progress=False)
            bm25.save(str(tmp / "bm25"), show_progress=False)
    except BaseException:
        dense_thread.join()
        rmtree_quiet(tmp)  # a half-written snapshot is never left behind
        raise
    dense_thread.join()
    if not isinstance(outcome[0], str):
        rmtree_quiet(tmp)
        raise outcome[0]
    kind = outcome[0]
    manifest = {
        "seq": seq,
        "sentences": n,
        "dim": dim,
        "dense": kind,
        "avgdl": avgdl,
        "params": params,
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    _fsync_tree(tmp)  # on disk before the store names it live: a power cut cannot half-write it
    final = root / f"snap-{seq:010d}-{tmp.name.removeprefix('.build-')}"
    os.replace(tmp, final)
    return final


def _fsync_tree(folder: Path) -> None:
    for path in [*folder.rglob("*"), folder]:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _read_transaction(db: sqlite3.Connection):
    """One consistent view of the database across several SELECTs (WAL snapshot)."""
    if db.in_transaction:
        yield
        return
    db.execute("BEGIN")
    try:
        yield
    finally:
        db.execute("COMMIT")


def index_root(store: Store) -> Path:
    return store.data_dir / "index"


def current_snapshot_name(db: sqlite3.Connection) -> str | None:
    row = db.execute("SELECT value FROM meta WHERE key=?", (SNAPSHOT_KEY,)).fetchone()
    return row[0] if row else None


def _publish(store: Store, folder: Path) -> None:
    """Make ``folder`` the live snapshot, trim the log it covers, remove older folders."""
    seq = json.loads((folder / "manifest.json").read_text())["seq"]
    with write(store.db):
        store.db.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (SNAPSHOT_KEY, folder.name),
        )
        store.db.execute("DELETE FROM index_log WHERE seq <= ?", (seq,))
    for old in folder.parent.iterdir():
        # Readers that still map an older snapshot keep reading it (unlinked files live on).
        # Snapshots are built only under the writer lock, which the caller holds: any other
        # build folder is what a killed writer left.
        if old.is_dir() and old.name != folder.name:
            rmtree_quiet(old)
        elif old.name == "CURRENT":  # the pre-snapshot layout's pointer
            old.unlink(missing_ok=True)


@contextlib.contextmanager
def _writer_lock(store: Store, wait: bool):
    """One snapshot writer at a time per data dir; yields False when busy and not waiting."""
    root = index_root(store)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def rebuild(store: Store) -> str:
    """Rewrite the snapshot from the store (``talksbot reindex``, or a tail grown large)."""
    with _writer_lock(store, wait=True):
        folder = build_snapshot(store, index_root(store))
        _publish(store, folder)
        return folder.name


def tail_length(store: Store) -> tuple[int, int]:
    """(log entries since the live snapshot: additions and deletions, the snapshot's size);
    (-1, 0) when there is no snapshot."""
    name = current_snapshot_name(store.db)
    if name is None or not (index_root(store) / name / "manifest.json").exists():
        return -1, 0
    manifest = json.loads((index_root(store) / name / "manifest.json").read_text())
    pending = store.db.execute(
        "SELECT COUNT(*) FROM index_log WHERE seq > ?", (manifest["seq"],)
    ).fetchone()[0]
    return pending, int(manifest["sentences"])


def after_write(store: Store) -> bool:
    """After a writer's commits: rewrite the snapshot if there is none or the tail is large.
    True when it rewrote. Another process rewriting at the same time makes this a no-op."""
    pending, size = tail_length(store)
    if pending >= 0 and pending < max(REWRITE_MIN_TAIL, REWRITE_SHARE * size):
        return False
    with _writer_lock(store, wait=False) as mine:
        if not mine:
            return False
        pending, size = tail_length(store)  # someone may have rewritten it meanwhile
        if pending >= 0 and pending < max(REWRITE_MIN_TAIL, REWRITE_SHARE * size):
            return False
        _publish(store, build_snapshot(store, index_root(store)))
        return True


# -- the reader -------------------------------------------------------------------------------
TOP_SAMPLE_STRIDE = 64


def _top_floor(scores: np.ndarray, k: int) -> float:
    """A positive score no higher than the ``k``-th best of ``scores``: the ``k``-th best of
    every ``TOP_SAMPLE_STRIDE``-th row, when that sample has ``k`` matches (those ``k`` rows are
    rows of ``scores`` too). Rows below it cannot be in the top ``k``, so the top ``k`` is
    picked from a few thousand rows instead of every match (common words match a fifth of a
    million sentences)."""
    sample = scores[::TOP_SAMPLE_STRIDE]
    sample = sample[sample > 0]
    if len(sample) < k:
        return float(np.nextafter(np.float32(0), np.float32(1)))
    return float(np.partition(sample, len(sample) - k)[len(sample) - k])


@dataclass
class LexicalScores:
    """BM25 of one query over the live index: top hits and the score of any sentence."""

    snapshot_ids: np.ndarray
    snapshot_scores: np.ndarray  # per snapshot row (deleted rows zeroed)
    tail: dict[int, float]  # sentence id -> score, tail sentences with a match

    @property
    def max(self) -> float:
        best = float(self.snapshot_scores.max()) if len(self.snapshot_scores) else 0.0
        return max([best, *self.tail.values()])

    def top(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``k`` (sentence ids, scores) with a positive score, in no particular order.
        Below IVF_MIN_VECTORS and without a tail, exactly the rows ``argpartition`` picks over
        the whole score array, as the bm25s scorer did (ties at the cut fall the same way, so
        rankings fitted on it hold); above, the same selection among nonzero rows (~6 ms less
        a query at a million rows)."""
        s = self.snapshot_scores
        ids: list[np.ndarray] = []
        scores: list[np.ndarray] = []
        if len(s) > IVF_MIN_VECTORS:  # approximate territory: select among nonzero rows only
            rows = np.flatnonzero(s >= _top_floor(s, k))
            if len(rows) > k:
                rows = rows[np.argpartition(-s[rows], k - 1)[:k]]
            ids.append(np.asarray(self.snapshot_ids[rows], np.int64))
            scores.append(s[rows].astype(np.float32))
        elif len(s):
            rows = np.argpartition(-s, k - 1)[:k] if len(s) > k else np.arange(len(s))
            rows = rows[s[rows] > 0]
            ids.append(np.asarray(self.snapshot_ids[rows], np.int64))
            scores.append(s[rows].astype(np.float32))
        if self.tail:
            ids.append(np.fromiter(self.tail.keys(), np.int64, len(self.tail)))
            scores.append(np.fromiter(self.tail.values(), np.float32, len(self.tail)))
        if not ids:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        all_ids, all_scores = np.concatenate(ids), np.concatenate(scores)
        if len(all_ids) > k:
            keep = np.argpartition(-all_scores, k - 1)[:k]
            all_ids, all_scores = all_ids[keep], all_scores[keep]
        return all_ids, all_scores

    def scores_for(self, sentence_ids: list[int]) -> np.ndarray:
        out = np.zeros(len(sentence_ids), np.float32)
        if not len(sentence_ids):
            return out
        wanted = np.asarray(sentence_ids, np.int64)
        if len(self.snapshot_ids):
            rows = np.searchsorted(self.snapshot_ids, wanted)
            rows = np.minimum(rows, len(self.snapshot_ids) - 1)
            hit = self.snapshot_ids[rows] == wanted
            out[hit] = self.snapshot_scores[rows[hit]]
        for i, sid in enumerate(sentence_ids):
            if sid in self.tail:
                out[i] = self.tail[sid]
        return out


class LiveIndex:
    """A process's view of the index: a mapped snapshot, an in-memory tail, a deletion mask.

    Memory: the snapshot's arrays are memory-mapped (shared between processes, paged in as
    touched); the tail holds only sentences added since the snapshot. Sentence text and
    metadata are never held: callers look up their candidates in SQLite.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        # Candidates' rows are read per query: keep the hot pages in this process (32 MB).
        store.db.execute("PRAGMA cache_size=-32768")
        self._lock = threading.RLock()
        self.snapshot: Snapshot | None = None
        self.position = 0
        self.stored_units = False  # whether sentences.unit_* were computed by this code
        self._reset_tail()

    def _reset_tail(self) -> None:
        self.deleted: set[int] = set()  # snapshot sentence ids deleted since
        self._deleted_rows = np.zeros(0, np.int64)
        self.tail_ids: list[int] = []
        self.tail_vectors = np.zeros((0, self.snapshot.dim if self.snapshot else 1), np.float32)
        self.tail_alive: list[bool] = []
        self.tail_index: dict[int, int] = {}  # sentence id -> tail row
        self.tail_lengths: list[int] = []
        self.tail_tokens = 0  # sum of the alive tail sentences' lengths
        self.tail_postings: dict[str, dict[int, int]] = {}  # term -> {tail row: tf}
        self.tail_terms: list[str] = []  # the keys of tail_postings, in order of arrival

    @classmethod
    def open(cls, store: Store) -> LiveIndex:
        """The store's live index; a store without a snapshot (new, or made before snapshots
        existed) gets one built first."""
        live = cls(store)
        live.refresh()
        return live

    # -- keeping current ----------------------------------------------------------------------
    def refresh(self) -> bool:
        """Catch up with commits made since the last call (by any process). True if changed."""
        with self._lock:
            version = self.store.db.execute(
                "SELECT value FROM meta WHERE key=?", (term_store.UNITS_KEY,)
            ).fetchone()
            self.stored_units = bool(version) and version[0] == UNIT_FEATURES_VERSION
            for _ in range(5):
                name = current_snapshot_name(self.store.db)
                if name is None or not (index_root(self.store) / name).exists():
                    log.warning("no snapshot %s in %s; building one", name, index_root(self.store))
                    rebuild(self.store)
                    continue
                if self.snapshot is None or self.snapshot.name != name:
                    try:
                        self.snapshot = Snapshot.load(index_root(self.store) / name)
                    except Exception:  # noqa: BLE001 - any unreadable snapshot is rebuilt
                        log.warning("snapshot %s unreadable; rebuilding", name, exc_info=True)
                        rebuild(self.store)
                        continue
                    self.position = self.snapshot.seq
                    self._reset_tail()
                    changed = True
                else:
                    changed = False
                applied = self._replay(name)
                if applied is None:
                    continue  # the snapshot changed under us; load the new one
                return changed or applied
            raise RuntimeError("the index kept changing while loading; try again")

    def _replay(self, name: str) -> bool | None:
        """Apply the log past ``self.position``; None if the live snapshot changed."""
        db = self.store.db
        if term_store.log_position(db) == self.position:
            return False
        with _read_transaction(db):
            if current_snapshot_name(db) != name:
                return None
            upto = term_store.log_position(db)
            entries = db.execute(
                "SELECT sentence_id, added FROM index_log WHERE seq > ? AND seq <= ? ORDER BY seq",
                (self.position, upto),
            ).fetchall()
            added = list({sid for sid, a in entries if a})
            rows: dict[int, tuple[bytes, str]] = {}
            for start in range(0, len(added), 500):
                chunk = added[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for sid, blob, terms in db.execute(
                    "SELECT s.id, s.embedding, t.terms FROM sentences s LEFT JOIN sentence_terms"
                    f" t ON t.rowid = s.id WHERE s.id IN ({marks}) AND s.embedding IS NOT NULL",
                    chunk,
                ):
                    rows[sid] = (blob, terms or "")
        new_vectors: list[np.ndarray] = []
        for sid, was_added in entries:
            self._drop(sid)
            if was_added and sid in rows:
                blob, terms = rows[sid]
                new_vectors.append(self._append(sid, blob, terms))
        if new_vectors:
            parts = [self.tail_vectors] if len(self.tail_vectors) else []
            self.tail_vectors = np.vstack([*parts, *new_vectors]).astype(np.float32)
        self.position = upto
        snap = self.snapshot
        if snap is not None and self.deleted:
            deleted = np.fromiter(self.deleted, np.int64, len(self.deleted))
            self._deleted_rows = np.searchsorted(snap.ids, deleted)
        return bool(entries)

    def _drop(self, sid: int) -> None:
        row = self.tail_index.pop(sid, None)
        if row is not None:
            self.tail_alive[row] = False
            self.tail_tokens -= self.tail_lengths[row]
            return
        snap = self.snapshot
        if snap is not None and snap.size:
            at = int(np.searchsorted(snap.ids, sid))
            if at < snap.size and int(snap.ids[at]) == sid:
                self.deleted.add(sid)

    def _append(self, sid: int, blob: bytes, terms: str) -> np.ndarray:
        row = len(self.tail_ids)
        self.tail_ids.append(sid)
        self.tail_alive.append(True)
        self.tail_index[sid] = row
        tokens = terms.split() or [EMPTY_TOKEN]
        self.tail_lengths.append(len(tokens))
        self.tail_tokens += len(tokens)
        for token in tokens:
            postings = self.tail_postings.get(token)
            if postings is None:
                postings = self.tail_postings[token] = {}
                self.tail_terms.append(token)
            postings[row] = postings.get(row, 0) + 1
        return np.frombuffer(blob, dtype=np.float32)

    def prefetch(self) -> None:
        """Ask the OS to read the database and the snapshot's files into its page cache. A
        query reads a few hundred rows scattered over the database; with the pages on disk a
        warm answer at a million units took ~31 ms instead of ~18 (measured after dropping the
        cache). Asynchronous (readahead in 8 MB steps; ~70 ms to ask for 820 MB), never more
        than half the memory the OS has free, and the pages are the OS's, not this process's."""
        if not hasattr(os, "posix_fadvise"):
            return
        files = [self.store.data_dir / DB_NAME]
        if self.snapshot is not None:
            folder = index_root(self.store) / self.snapshot.name
            files += sorted(p for p in folder.rglob("*") if p.is_file())
        try:
            budget = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
        except (OSError, ValueError):
            budget = 1 << 30
        step = 8 << 20
        for path in files:
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                size = min(os.fstat(fd).st_size, max(budget, 0))
                for offset in range(0, size, step):
                    os.posix_fadvise(fd, offset, step, os.POSIX_FADV_WILLNEED)
                budget -= size
            except OSError:
                pass
            finally:
                os.close(fd)

    # -- reading ------------------------------------------------------------------------------
    def vocabulary_since(self) -> tuple[object, list[str]]:
        """(this snapshot's name, the terms the tail's sentences brought, in order)."""
        with self._lock:
            return (self.snapshot.name if self.snapshot else None), self.tail_terms

    @property
    def size(self) -> int:
        snap = self.snapshot.size if self.snapshot else 0
        return snap - len(self.deleted) + len(self.tail_index)

    @property
    def token_count(self) -> int:
        """Tokens in the searchable sentences (a deleted snapshot sentence is taken to have
        been of average length)."""
        with self._lock:
            snap = self.snapshot
            alive = snap.avgdl * (snap.size - len(self.deleted)) if snap is not None else 0.0
            return int(alive) + self.tail_tokens

    def df(self, term: str) -> int:
        """Searchable sentences using ``term`` (deleted ones count until the next rewrite)."""
        snap = self.snapshot.df(term) if self.snapshot else 0
        tail = sum(1 for row in self.tail_postings.get(term, ()) if self.tail_alive[row])
        return snap + tail

    def mentioned(self, term: str) -> bool:
        """Whether the corpus uses ``term`` anywhere (bylines, titles and URLs included)."""
        with self._lock:
            # A searchable sentence uses it: known from memory, unless a deletion since the
            # snapshot may have taken the last one (snapshot counts include deleted rows).
            if not self.deleted and self.df(term) > 0:
                return True
        return term_store.mentioned(self.store.db, term)

    def source_terms(self, article_ids: set[int]) -> dict[int, str]:
        """Tokens of these articles' titles, outlets and URLs, space-joined."""
        return term_store.article_terms(self.store.db, article_ids)

    def neighbourhood(self, ids: list[int], before: int, after: int) -> Neighbourhood:
        """Rows and vectors of ``ids`` and of the searchable sentences around each."""
        return neighbourhood(self.store.db, ids, before, after, self.stored_units)

    def dense_search(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``k`` (sentence ids, inner products) nearest to ``vector``, best first."""
        q = np.asarray(vector, np.float32).reshape(1, -1)
        ids: list[np.ndarray] = []
        scores: list[np.ndarray] = []
        with self._lock:
            snap = self.snapshot
            if snap is not None and snap.size:
                fetch = min(snap.size, k + len(self.deleted))
                found_scores, found_ids = snap.dense.search(q, fetch)
                keep = found_ids[0] >= 0
                if self.deleted:
                    keep &= ~np.isin(found_ids[0], np.fromiter(self.deleted, np.int64))
                ids.append(found_ids[0][keep])
                scores.append(found_scores[0][keep])
            if self.tail_index:
                rows = np.fromiter(self.tail_index.values(), np.int64, len(self.tail_index))
                sims = self.tail_vectors[rows] @ q[0]
                best = np.argsort(-sims)[:k]
                ids.append(np.asarray(self.tail_ids, np.int64)[rows[best]])
                scores.append(sims[best].astype(np.float32))
        if not ids:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        all_ids, all_scores = np.concatenate(ids), np.concatenate(scores)
        order = np.argsort(-all_scores, kind="stable")[:k]
        return all_ids[order].astype(np.int64), all_scores[order]

    def lexical(self, terms: list[str]) -> LexicalScores:
        """BM25 of the query ``terms`` (duplicates count twice, as in bm25s) for every
        searchable sentence."""
        with self._lock:
            snap = self.snapshot
            if snap is not None and snap.bm25 is not None:
                known = [t for t in terms if t in snap.bm25.vocab]
                if known:
                    scores = snap.bm25.scores(known, self._idf_scale(known))
                    if len(self._deleted_rows):
                        scores[self._deleted_rows] = 0.0
                else:
                    scores = np.zeros(snap.size, np.float32)
                snapshot_ids = snap.ids
            else:
                scores, snapshot_ids = np.zeros(0, np.float32), np.zeros(0, np.int64)
            return LexicalScores(snapshot_ids, scores, self._tail_bm25(terms))

    def _idf_scale(self, terms: list[str]) -> list[float] | None:
        """Per term, the IDF over the live index (snapshot and tail, as tail sentences are
        scored) over the IDF baked into the snapshot's scores: snapshot and tail sentences are
        then ranked by one IDF between rewrites. None (all 1) when nothing changed since."""
        snap = self.snapshot
        if snap is None or (not self.tail_index and not self.deleted):
            return None
        n = self.size
        return [bm25_idf(self.df(t), n) / bm25_idf(snap.df(t), snap.size) for t in terms]

    def _tail_bm25(self, terms: list[str]) -> dict[int, float]:
        if not self.tail_index:
            return {}
        snap = self.snapshot
        n = self.size
        # The snapshot's mean length, which its precomputed scores use too: one formula for all.
        if snap is not None and snap.size:
            avgdl = snap.avgdl
        else:
            alive = [self.tail_lengths[r] for r in self.tail_index.values()]
            avgdl = sum(alive) / max(len(alive), 1) or 1.0
        out: dict[int, float] = {}
        for term in terms:
            postings = self.tail_postings.get(term)
            if not postings:
                continue
            idf = bm25_idf(self.df(term), n)
            for row, tf in postings.items():
                if not self.tail_alive[row]:
                    continue
                norm = K1 * ((1 - B) + B * self.tail_lengths[row] / avgdl)
                sid = self.tail_ids[row]
                out[sid] = out.get(sid, 0.0) + idf * tf / (norm + tf)
        return out


def bm25_idf(df: int, n: int) -> float:
    """bm25s's "lucene" IDF, the one baked into a snapshot's scores. ``df`` counts deleted
    sentences until the next rewrite, so after an update it can exceed ``n``: taken as at most
    ``n``, the weight stays positive (it went negative, and a sentence holding the word ranked
    below one without it)."""
    df = min(df, n)
    return math.log(1 + (n - df + 0.5) / (df + 0.5))


# -- candidates' rows -------------------------------------------------------------------------
@dataclass
class Neighbourhood:
    """Stored rows of some sentences and of the searchable sentences around them."""

    rows: dict[int, SentenceRow]
    order: list[int]  # the searchable ids among them, in the order of ``matrix``'s rows
    matrix: np.ndarray  # their vectors
    before: dict[int, list[int]]  # id -> searchable ids before it in its article, nearest first
    after: dict[int, list[int]]  # id -> searchable ids after it, nearest first
    # Among the searchable ids returned: the next one in the same article, where no other
    # searchable sentence lies between them (what "the unit before/after" means to ranking).
    next_of: dict[int, int] = field(default_factory=dict)
    prev_of: dict[int, int] = field(default_factory=dict)
    # Stored question-independent features of the searchable ids (index/unit_features.py);
    # an id missing here has none stored (compute them from its text).
    units: dict[int, UnitInfo] = field(default_factory=dict)


def neighbourhood(
    db: sqlite3.Connection, ids: list[int], before: int, after: int, units: bool = True
) -> Neighbourhood:
    """Rows (with vectors) of ``ids`` and of up to ``before``/``after`` searchable sentences
    around each in its own article.

    An article's sentences are written in one transaction, in reading order, and removed only
    with it, so its live rows are one gapless run of ids: the neighbours are found by reading
    a short id window around each id (widened for the rare sentence amid long boilerplate),
    never by scanning articles.
    """
    wanted = sorted(set(ids))
    meta: dict[int, tuple] = {}
    out_before: dict[int, list[int]] = {}
    out_after: dict[int, list[int]] = {}
    # Rows read per candidate are the cost (a few microseconds each): read just the neighbours
    # wanted, and widen the window only for the few whose neighbour is not searchable.
    back, ahead, pending = before, after, wanted
    while pending:
        _read_windows(db, pending, back, ahead, meta)
        retry = []
        for sid in pending:
            row = meta.get(sid)
            if row is None:
                continue
            found_b, open_b = _walk(meta, sid, -1, before, back)
            found_a, open_a = _walk(meta, sid, +1, after, ahead)
            if (open_b and len(found_b) < before) or (open_a and len(found_a) < after):
                retry.append(sid)
            out_before[sid], out_after[sid] = found_b, found_a
        pending, back, ahead = retry, back * 4, ahead * 4
    present = [sid for sid in wanted if sid in meta]
    keep = set(present)
    for sid in present:
        keep.update(out_before.get(sid, ()))
        keep.update(out_after.get(sid, ()))
    rows = {sid: SentenceRow(*meta[sid][:7]) for sid in sorted(keep)}
    order = [sid for sid in rows if meta[sid][7] is not None]
    blobs = b"".join(meta[sid][7] for sid in order)
    matrix = np.frombuffer(blobs, dtype=np.float32).reshape(len(order), -1)
    next_of: dict[int, int] = {}
    for a, b in zip(order, order[1:], strict=False):
        between = range(a + 1, b)
        if meta[a][1] == meta[b][1] and all(i in meta and meta[i][7] is None for i in between):
            next_of[a] = b
    prev_of = {b: a for a, b in next_of.items()}
    stored: dict[int, UnitInfo] = {}
    if units:
        for sid in order:
            terms, flags, names = meta[sid][8:11]
            if flags is not None:
                stored[sid] = decode(terms, flags, names)
    return Neighbourhood(rows, order, matrix, out_before, out_after, next_of, prev_of, stored)


def _read_windows(
    db: sqlite3.Connection, ids: list[int], back: int, ahead: int, meta: dict
) -> None:
    spans: list[list[int]] = []
    for sid in ids:
        lo, hi = sid - back, sid + ahead
        if spans and lo <= spans[-1][1] + 1:
            spans[-1][1] = max(spans[-1][1], hi)
        else:
            spans.append([lo, hi])
    for start in range(0, len(spans), 200):
        chunk = spans[start : start + 200]
        where = " OR ".join("id BETWEEN ? AND ?" for _ in chunk)
        for row in db.execute(
            "SELECT id, article_id, para, seq, position, kind, text, embedding, unit_terms, "
            f"unit_flags, unit_names FROM sentences WHERE {where}",
            [v for span in chunk for v in span],
        ):
            meta[row[0]] = row


def _walk(meta: dict, sid: int, step: int, need: int, window: int) -> tuple[list[int], bool]:
    """Searchable ids next to ``sid`` in its article; True if the window ended first."""
    article = meta[sid][1]
    found: list[int] = []
    at = sid
    for _ in range(window):
        if len(found) >= need:
            return found, False
        at += step
        row = meta.get(at)
        if row is None or row[1] != article:
            return found, False
        if row[7] is not None:
            found.append(at)
    return found, len(found) < need
