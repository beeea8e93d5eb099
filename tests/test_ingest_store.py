import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from index.embed import HashEmbedder
from index.ingest import Ingester, IngestReport
from index.live_index import LiveIndex, current_snapshot_name
from index.loaders import RawArticle
from index.store import Store, StoreError
from tests.harness.chat import query
from tests.harness.data import (
    CORPUS,
    ROOT,
    answering,
    cli_env,
    ingest,
    open_answerer,
    refusal,
    run_cli,
)


def counts(data_dir: Path) -> tuple[int, int]:
    return query(
        data_dir, "SELECT (SELECT COUNT(*) FROM articles), (SELECT COUNT(*) FROM sentences)"
    )[0]


def test_ingest_summary_and_duplicate_under_another_url(data_dir: Path, store: Store) -> None:
    report = ingest(data_dir, CORPUS)
    assert (report.added, report.duplicates, report.errors) == (3, 1, [])
    indexed = store.db.execute("SELECT COUNT(*) FROM sentences WHERE embedding IS NOT NULL")
    assert report.sentences == indexed.fetchone()[0] == 15  # every unit made searchable
    urls = dict(store.db.execute("SELECT url, kind FROM article_urls").fetchall())
    # Both files of the Geneva story point at one article; its URL is shown without tracking.
    geneva = [a for a in store.articles() if a.title.startswith("Geneva")]
    assert len(geneva) == 1
    assert geneva[0].url == "https://example-news.org/world/2026/02/18/geneva-round-ends"
    assert sum(1 for u in urls if u.endswith(("geneva-talks.md", "geneva-talks-copy.md"))) == 2


def test_an_article_written_twice_in_one_run_is_counted_once(
    data_dir: Path, store: Store, tmp_path: Path
) -> None:
    """Two files under one URL with different text: the second replaces the first, and the
    summary counts one article with the sentences it now has, also across a merged report."""
    folder = tmp_path / "twice"
    folder.mkdir()
    head = (
        '---\ntitle: "Talks resume"\nurl: https://news.example/talks\noutlet: News Example\n---\n\n'
    )
    (folder / "a.md").write_text(
        head + "Delegates met in Geneva on Monday. They talked for hours.\n"
    )
    (folder / "b.md").write_text(head + "Delegates met in Geneva on Tuesday.\n")
    report = ingest(data_dir, folder)
    assert (report.added, report.updated, report.errors) == (1, 0, [])
    indexed = store.db.execute("SELECT COUNT(*) FROM sentences WHERE embedding IS NOT NULL")
    assert report.sentences == indexed.fetchone()[0] == 1
    assert report.summary().startswith("1 article added, 0 updated")

    (folder / "b.md").write_text(head + "Delegates met in Geneva on Wednesday. Talks ended.\n")
    again = ingest(data_dir, folder / "b.md")
    report.merge(again)  # the same article, updated by a later ingest in one command
    assert (report.added, report.updated, report.sentences) == (1, 0, 2)


def test_reingest_changes_nothing(data_dir: Path, store: Store) -> None:
    ingest(data_dir, CORPUS)
    before = counts(data_dir)
    generation = store.generation()
    report = ingest(data_dir, CORPUS)
    assert (report.added, report.updated, report.duplicates, report.unchanged) == (0, 0, 0, 4)
    assert counts(data_dir) == before
    assert store.generation() == generation


def test_changed_file_updates_its_article_in_place(data_dir: Path, corpus_dir: Path) -> None:
    ingest(data_dir, corpus_dir)
    f = corpus_dir / "prisoner-exchange.txt"
    f.write_text(f.read_text() + "A further exchange is planned for March, the mediators said.\n")
    report = ingest(data_dir, corpus_dir)
    assert (report.added, report.updated) == (0, 1)
    with answering(data_dir) as answerer:
        assert answerer.searcher.store.article_count() == 3
        added = "A further exchange is planned for March, the mediators said."
        assert answerer.searcher.search(added, limit=1)[0].content == added


def test_corrected_front_matter_updates_the_article_and_another_copy_decides_nothing(
    data_dir: Path, corpus_dir: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same text, a corrected date or title in its own file: the stored article takes it (it
    was "unchanged" before, so a fix never reached the store). A second file of the same
    article with other metadata changes nothing, or two files would take turns."""
    ingest(data_dir, corpus_dir)
    (geneva,) = [a for a in store.articles() if a.title.startswith("Geneva")]
    own = corpus_dir / Path(geneva.source).name  # the file it was written from
    other = ({"geneva-talks.md", "geneva-talks-copy.md"} - {own.name}).pop()
    own.write_text(
        own.read_text()
        .replace("published: 2026-02-18", "published: 2026-02-19")
        .replace('title: "Geneva round ends', 'title: "Geneva talks end')
    )
    copy = corpus_dir / other
    copy.write_text(copy.read_text().replace('title: "Geneva', 'title: "Other title for Geneva'))
    report = ingest(data_dir, corpus_dir)
    assert (report.added, report.updated, report.unchanged, report.errors) == (0, 1, 3, [])
    now = store.article(geneva.id)
    assert now is not None
    assert (now.published, now.title) == (
        "2026-02-19",
        geneva.title.replace("round ends", "talks end"),
    )
    again = ingest(data_dir, corpus_dir)
    assert (again.updated, again.unchanged) == (0, 4)
    # The same file named another way (a relative path from elsewhere) is still its own.
    own.write_text(own.read_text().replace("published: 2026-02-19", "published: 2026-02-20"))
    monkeypatch.chdir(corpus_dir.parent)
    relative = ingest(data_dir, Path(corpus_dir.name))
    assert (relative.updated, relative.unchanged) == (1, 3)
    geneva_now = store.article(geneva.id)
    assert geneva_now is not None and geneva_now.published == "2026-02-20"
    with answering(data_dir) as answerer:
        hit = answerer.searcher.search("second day of talks in Geneva", limit=1)[0]
        assert answerer.searcher.article(hit.article_id).published == "2026-02-20"


def test_an_edited_copy_never_rewrites_the_article_it_copied(
    data_dir: Path, store: Store, tmp_path: Path
) -> None:
    """A copy stored as a duplicate (its file and URL recorded against the original), edited
    and ingested again, must not replace the original's text, URL or outlet: anyone could
    take over a stored article that way. Still a near copy, it stays a duplicate; changed
    beyond that, it is an article of its own."""
    original = (CORPUS / "geneva-talks.md").read_text()
    (tmp_path / "a.md").write_text(original)
    copy = original.replace("example-news.org", "other.example")  # its URL and outlet
    (tmp_path / "b.md").write_text(copy)
    ingest(data_dir, tmp_path / "a.md")
    ((first,),) = query(data_dir, "SELECT id FROM articles")
    kept = store.article(first)
    assert ingest(data_dir, tmp_path / "b.md").duplicates == 1

    # One sentence added to the copy: still nearly all the original's, still a duplicate.
    edited = copy.replace("on Wednesday.", "on Wednesday. Observers expect a round in March.")
    assert edited != copy
    (tmp_path / "b.md").write_text(edited)
    report = ingest(data_dir, tmp_path / "b.md")
    assert (report.updated, report.added, report.duplicates) == (0, 0, 1)
    assert store.article(first) == kept

    # Rewritten: its own article now, under its own URL; the original is untouched.
    (tmp_path / "b.md").write_text(
        copy.split("---\n\n", 1)[0]
        + "---\n\nA wholly different report about a prisoner exchange in the Gulf.\n"
    )
    report = ingest(data_dir, tmp_path / "b.md")
    assert (report.updated, report.added) == (0, 1)
    assert store.article(first) == kept
    assert ingest(data_dir, tmp_path / "a.md").unchanged == 1
    assert store.article(first) == kept
    with answering(data_dir) as answerer:
        hit = answerer.searcher.search("prisoner exchange in the Gulf", limit=1)[0]
        assert hit.article_id != first
        assert "other.example" in answerer.searcher.article(hit.article_id).url


def _article_file(folder: Path, name: str, url: str, outlet: str, text: str) -> Path:
    f = folder / name
    f.write_text(f"---\ntitle: Talks\nurl: {url}\noutlet: {outlet}\n---\n\n{text}\n")
    return f


OLD_TEXT = "Delegates met in Geneva on Monday. They agreed to meet again in March. " * 2
NEW_TEXT = "A wholly different report about a prisoner exchange in the Gulf on Friday. " * 2


def test_a_copy_under_the_articles_own_address_never_rewrites_it(
    data_dir: Path, store: Store, tmp_path: Path
) -> None:
    """A copy whose address is the article's own (a tracking-parameter variant) is a copy
    however it changes: it had rewritten the article, and then the two files took turns
    rewriting it on every ingest of the folder."""
    _article_file(tmp_path, "a.md", "https://news.example/talks", "News", OLD_TEXT)
    copy = _article_file(
        tmp_path, "b.md", "https://news.example/talks?utm_source=x", "News", OLD_TEXT
    )
    ingest(data_dir, tmp_path)
    ((first,),) = query(data_dir, "SELECT id FROM articles")
    kept = store.article(first)
    copy.write_text(copy.read_text().replace(OLD_TEXT, NEW_TEXT))
    for _ in range(2):
        report = ingest(data_dir, tmp_path)
        assert (report.added, report.updated, report.unchanged, report.duplicates) == (0, 0, 1, 1)
        assert store.article(first) == kept


def test_a_new_file_under_an_articles_address_updates_it_once_and_for_all(
    data_dir: Path, store: Store, tmp_path: Path
) -> None:
    """A file never seen, under a stored article's address with new text, is the page changed
    (a newer save): the article takes it, and the older file no longer takes turns with it."""
    _article_file(tmp_path, "a.md", "https://news.example/talks", "News", OLD_TEXT)
    ingest(data_dir, tmp_path)
    ((first,),) = query(data_dir, "SELECT id FROM articles")
    _article_file(tmp_path, "b.md", "https://news.example/talks", "News", NEW_TEXT)
    assert ingest(data_dir, tmp_path / "b.md").updated == 1
    for _ in range(2):
        report = ingest(data_dir, tmp_path)
        assert (report.added, report.updated) == (0, 0)
    assert query(data_dir, "SELECT id FROM articles") == [(first,)]
    with answering(data_dir) as answerer:
        assert (
            answerer.searcher.search("prisoner exchange in the Gulf", limit=1)[0].article_id
            == first
        )


def test_an_article_whose_source_now_copies_another_is_folded_into_it(
    data_dir: Path, store: Store, tmp_path: Path
) -> None:
    """Its own file now holds another stored article's text: it is a copy of that one and is
    folded into it (addresses kept as aliases), never rewriting it and never left stale."""
    original = _article_file(tmp_path, "a.md", "https://news.example/a", "News", OLD_TEXT)
    copy = _article_file(tmp_path, "b.md", "https://other.example/b", "Other", OLD_TEXT)
    ingest(data_dir, tmp_path)
    copy.write_text(copy.read_text().replace(OLD_TEXT, NEW_TEXT))
    assert ingest(data_dir, copy).added == 1  # changed past a near copy: its own article
    (_, b) = (r[0] for r in query(data_dir, "SELECT id FROM articles ORDER BY id"))
    kept = store.article(b)
    original.write_text(original.read_text().replace(OLD_TEXT, NEW_TEXT))
    assert ingest(data_dir, original).duplicates == 1
    assert query(data_dir, "SELECT id FROM articles") == [(b,)] and store.article(b) == kept
    assert store.find_article_by_key("https://news.example/a") == b
    again = ingest(data_dir, tmp_path)
    assert (again.added, again.updated) == (0, 0)
    # The copy put back to the first text, once folded, leaves no orphan either.
    copy.write_text(copy.read_text().replace(NEW_TEXT, OLD_TEXT))
    original.write_text(original.read_text().replace(NEW_TEXT, OLD_TEXT))
    ingest(data_dir, tmp_path)
    assert len(query(data_dir, "SELECT id FROM articles")) == 1


def test_an_edited_copy_of_a_page_never_rewrites_the_page_it_copied(store: Store) -> None:
    """The same for fetched pages (an address is their only key): a page stored as a copy of
    another, re-fetched with other text, never becomes the original's text or address."""
    body = "Delegates met in Geneva on Monday. They agreed to meet again in March. " * 3

    def page(url: str, text: str) -> RawArticle:
        return RawArticle("Talks", url, "2026-02-18", "News", text, url, "html")

    ingester = Ingester(store, HashEmbedder())
    report = IngestReport()
    first = ingester.ingest_article(page("https://news.example/a", body), report)
    assert first is not None
    kept = store.article(first)
    ingester.ingest_article(page("https://copy.example/b", body), report)
    assert report.duplicates == 1
    other = "A wholly different report about a prisoner exchange in the Gulf on Friday."
    second = ingester.ingest_article(page("https://copy.example/b", other), report)
    assert second not in (None, first) and report.updated == 0
    assert store.article(first) == kept


def test_near_copy_by_another_outlet_is_stored_once(data_dir: Path, tmp_path: Path) -> None:
    ingest(data_dir, CORPUS / "geneva-talks.md")
    copy = (CORPUS / "geneva-talks-copy.md").read_text()
    copy = copy.replace("example-news.org", "wire-reprint.example").replace(
        "on Wednesday.", "on Wednesday, the agency said."
    )
    (tmp_path / "reprint.md").write_text(copy)
    report = ingest(data_dir, tmp_path / "reprint.md")
    assert report.duplicates == 1 and report.added == 0
    kinds = [r[0] for r in query(data_dir, "SELECT kind FROM article_urls")]
    assert "also_reported" in kinds


def test_bad_files_are_skipped_and_nothing_stored_is_lost(data_dir: Path, tmp_path: Path) -> None:
    ingest(data_dir, CORPUS)
    before = counts(data_dir)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.md").write_bytes(b"")
    (bad / "bin.md").write_bytes(b"\x00\x01\x02")
    (bad / "yaml.md").write_text("---\ntitle: [x\n---\ntext\n")
    report = ingest(data_dir, bad, tmp_path / "missing")
    assert len(report.errors) == 4 and report.added == 0
    assert counts(data_dir) == before
    with answering(data_dir) as answerer:
        assert answerer.answer("prisoners exchanged Emirates").answered


def test_a_file_that_breaks_the_reader_is_skipped_and_the_run_goes_on(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error the reader did not foresee, met in one file, skips that file by name; the
    files after it are still stored (it had ended the run and rolled back its batch)."""
    import index.ingest

    real = index.ingest.load_file

    def load(path: Path, within: Path | None = None) -> object:
        if path.name == "geneva-talks.md":
            raise ValueError("Exceeds the limit (4300 digits) for integer string conversion")
        return real(path, within)

    monkeypatch.setattr(index.ingest, "load_file", load)
    report = ingest(data_dir, CORPUS)
    assert report.added == 3 and len(report.errors) == 1
    assert "geneva-talks.md: could not be read (ValueError" in report.errors[0]


def test_index_built_by_another_model_is_refused(data_dir: Path, store: Store) -> None:
    ingest(data_dir, CORPUS)
    params = json.loads((data_dir / "params.json").read_text())
    params["model"] = "some-other-model"
    (data_dir / "params.json").write_text(json.dumps(params))
    with sqlite3.connect(data_dir / "talksbot.db") as db:  # and the store's copy says so too
        db.execute("UPDATE meta SET value=? WHERE key='params'", (json.dumps(params),))
    with pytest.raises(StoreError, match="different settings.*model"):
        open_answerer(data_dir)
    with pytest.raises(StoreError, match="different settings"):
        Ingester(store, HashEmbedder())


@pytest.mark.parametrize("content", ["[1, 2]", '"hash"', "null", "{", "[" * 100_000])
def test_a_settings_file_that_is_not_an_object_is_refused_in_one_line(
    data_dir: Path, content: str
) -> None:
    ingest(data_dir, CORPUS)
    (data_dir / "params.json").write_text(content)
    for command in (["ask", "Where were the talks held?"], ["ingest", str(CORPUS)], ["stats"]):
        assert "params.json" in refusal(run_cli(data_dir, *command))


def test_a_lost_settings_file_is_written_again_from_the_store(data_dir: Path) -> None:
    ingest(data_dir, CORPUS)
    recorded = (data_dir / "params.json").read_text()
    (data_dir / "params.json").unlink()
    result = run_cli(data_dir, "ask", "Where were the prisoners exchanged?")
    assert result.returncode == 0 and "Emirates" in result.stdout
    assert (data_dir / "params.json").read_text() == recorded
    # A store from before the copy was kept: the model is unknown, so nothing is guessed.
    (data_dir / "params.json").unlink()
    with sqlite3.connect(data_dir / "talksbot.db") as db:
        db.execute("DELETE FROM meta WHERE key='params'")
    for command in (["ask", "Where were the talks held?"], ["ingest", str(CORPUS)]):
        assert "params.json is missing" in refusal(run_cli(data_dir, *command))
    assert not (data_dir / "params.json").exists()


def test_a_settings_file_that_disagrees_with_the_stores_copy_is_refused(data_dir: Path) -> None:
    ingest(data_dir, CORPUS)
    recorded = json.loads((data_dir / "params.json").read_text())
    other = {**recorded, "model": "some-other-model", "dim": 384}
    (data_dir / "params.json").write_text(json.dumps(other))
    for command in (["ingest", str(CORPUS)], ["ask", "Where were the talks held?"], ["reindex"]):
        assert "disagrees with the copy" in refusal(run_cli(data_dir, *command))
    with sqlite3.connect(data_dir / "talksbot.db") as db:  # the copy was not overwritten
        copy = db.execute("SELECT value FROM meta WHERE key='params'").fetchone()[0]
    assert json.loads(copy) == recorded
    (data_dir / "params.json").unlink()  # what the refusal advises
    assert run_cli(data_dir, "ask", "Where were the prisoners exchanged?").returncode == 0
    assert json.loads((data_dir / "params.json").read_text()) == recorded


@pytest.mark.parametrize("copy", ["{bad", "[]", "42", "null"])
def test_a_damaged_copy_of_the_settings_is_one_line_and_writes_nothing(
    data_dir: Path, copy: str
) -> None:
    ingest(data_dir, CORPUS)
    (data_dir / "params.json").unlink()
    with sqlite3.connect(data_dir / "talksbot.db") as db:
        db.execute("UPDATE meta SET value=? WHERE key='params'", (copy,))
    for command in (["ask", "Where were the talks held?"], ["ingest", str(CORPUS)], ["stats"]):
        assert "copy of params.json" in refusal(run_cli(data_dir, *command))
    assert not (data_dir / "params.json").exists()


def test_stale_or_damaged_index_files_are_rebuilt_from_the_store(
    data_dir: Path, store: Store
) -> None:
    ingest(data_dir, CORPUS)
    good = LiveIndex.open(store)
    directory = data_dir / "index" / current_snapshot_name(store.db)
    (directory / "dense.faiss").write_bytes(b"garbage")
    rebuilt = LiveIndex.open(store)
    assert rebuilt.size == good.size == 15  # 12 sentences, headings and boilerplate lines
    assert rebuilt.snapshot.name != good.snapshot.name
    # Snapshot files gone altogether (a copied database without its index folder): rebuilt.
    for path in (data_dir / "index").iterdir():
        if path.is_dir():
            for f in path.iterdir():
                f.unlink() if f.is_file() else None
    assert LiveIndex.open(store).size == 15


KILL_SCRIPT = """
import sys
from pathlib import Path
from index.embed import HashEmbedder
from index.ingest import Ingester
from index.store import Store

class Slow(HashEmbedder):
    def embed(self, texts):
        import time
        time.sleep(0.03)
        return super().embed(texts)

Ingester(Store(Path(sys.argv[1])), Slow()).ingest_paths([Path(sys.argv[2])], progress=False)
"""


def make_many(folder: Path, n: int) -> None:
    folder.mkdir()
    for i in range(n):
        body = "\n\n".join(
            f"Report {i} paragraph {j}: negotiators in Geneva discussed item {i * 100 + j} "
            f"of the framework on day {j} of the talks."
            for j in range(6)
        )
        (folder / f"a{i:03d}.md").write_text(
            f"---\ntitle: Article {i}\nurl: https://example.org/{i}\npublished: 2026-02-01\n"
            f"outlet: example.org\n---\n\n{body}\n"
        )


def wait_for_articles(data_dir: Path, n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if counts(data_dir)[0] >= n:
                return
        except sqlite3.Error:
            pass
        time.sleep(0.005)
    raise AssertionError(f"ingest never reached {n} articles")


@pytest.mark.parametrize("kill_at", [1, 17, 42])
def test_killed_ingest_leaves_a_store_that_loads_and_rerun_finishes(
    data_dir: Path, tmp_path: Path, kill_at: int
) -> None:
    folder = tmp_path / "many"
    make_many(folder, 60)
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(data_dir), str(folder)],
        cwd=ROOT,
        env={**cli_env(data_dir), "PYTHONPATH": str(ROOT)},
    )
    wait_for_articles(data_dir, kill_at)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    articles, _ = counts(data_dir)
    assert 0 < articles < 60, "the kill should land mid-run"
    # What was committed loads and answers, whatever the index files' state.
    with answering(data_dir) as answerer:
        assert answerer.searcher.store.article_count() == articles
        assert answerer.searcher.size == articles * 6
    # Running again finishes the job, adding only what was missing.
    report = ingest(data_dir, folder)
    assert report.added == 60 - articles and report.errors == []
    assert counts(data_dir) == (60, 360)
    with answering(data_dir) as answerer:
        assert answerer.searcher.size == 360


def test_a_store_made_by_the_schema_before_migrations_is_migrated_in_place(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from index import schema

    ingest(data_dir, CORPUS)
    before = counts(data_dir)
    # The database as the code before numbered migrations left it: schema 1, no user_version.
    query(data_dir, "PRAGMA user_version = 0")
    query(data_dir, "DROP INDEX deliveries_chat")  # what migrations 2 and 4 added
    for statement in (
        "DROP TABLE leases",
        "DROP INDEX answers_created",
        "DROP INDEX feedback_created",
        "ALTER TABLE deliveries DROP COLUMN lease_holder",
        "ALTER TABLE deliveries DROP COLUMN lease_until",
        "ALTER TABLE subscriptions DROP COLUMN thread_id",
    ):
        query(data_dir, statement)
    # A later release adds a column; the existing database gains it when opened.
    monkeypatch.setattr(
        schema,
        "MIGRATIONS",
        [*schema.MIGRATIONS, "ALTER TABLE subscriptions ADD COLUMN muted INTEGER;"],
    )
    with Store(data_dir) as store:
        assert store.pushes.subscribe(1, "", None)
    assert query(data_dir, "PRAGMA user_version") == [(len(schema.MIGRATIONS),)]
    columns = [r[1] for r in query(data_dir, "PRAGMA table_info(subscriptions)")]
    assert "thread_id" in columns and "muted" in columns
    indexes = [r[1] for r in query(data_dir, "PRAGMA index_list(deliveries)")]
    assert "deliveries_chat" in indexes
    assert counts(data_dir) == before  # nothing stored is lost
    with Store(data_dir):  # opening again applies nothing twice
        pass
    assert query(data_dir, "PRAGMA user_version") == [(len(schema.MIGRATIONS),)]


def test_a_write_batch_keeps_each_write_whole_and_commits_what_was_done(data_dir: Path) -> None:
    """Bulk ingest writes many articles per transaction: a write that fails inside the batch
    leaves nothing behind, the others are kept (also when the batch ends in an error), and
    another connection sees them once the batch commits."""
    from index.store import NewArticleRow, NewSentenceRow

    def article(name: str) -> tuple[NewArticleRow, list[str], list[NewSentenceRow]]:
        text = f"The {name} delegation arrived in Geneva for a second round of talks."
        row = NewArticleRow(f"https://n.example/{name}", "", name, "N", "", "t", f"{name}-hash")
        vec = HashEmbedder().embed([text])[0]
        return row, [f"file:{name}"], [NewSentenceRow(0, 0, 0, "sentence", text, "h", vec)]

    store = Store(data_dir)
    other = sqlite3.connect(data_dir / "talksbot.db")

    def titles() -> list[str]:
        return [r[0] for r in other.execute("SELECT title FROM articles ORDER BY id")]

    with pytest.raises(RuntimeError), store.batch(seconds=3600) as batch:
        store.write_article(*article("first"))
        with pytest.raises(sqlite3.IntegrityError):  # the same content hash: refused whole
            store.write_article(*article("first"))
        assert titles() == []  # not committed yet
        store.write_article(*article("second"))
        batch.due()  # not due for an hour
        assert titles() == []
        raise RuntimeError("the run fails after two whole articles")
    assert titles() == ["first", "second"]
    assert other.execute("SELECT COUNT(*) FROM sentences").fetchone()[0] == 2
    with store.batch(seconds=0) as batch:
        store.write_article(*article("third"))
        batch.due()
        assert titles() == ["first", "second", "third"]
    other.close()
    store.close()
