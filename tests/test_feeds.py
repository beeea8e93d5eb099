import time
from pathlib import Path

import pytest

from index.embed import HashEmbedder
from index.feeds import add_feed, ingest_url, list_feeds, poll_feeds, remove_feed
from index.fetch import FetchPolicy, fetch_article, fetch_feed, parse_feed
from index.ingest import Ingester
from index.loaders import IngestError, RawArticle, canonical_url
from index.store import Store
from tests.harness.chat import query
from tests.harness.data import run_cli
from tests.harness.stories import POWER, SANCTIONS
from tests.harness.web import FakeWeb, article_html, rss

LOCAL = FetchPolicy.parse("127.0.0.1")
ALLOW = {"TALKSBOT_FETCH_ALLOW_HOSTS": "127.0.0.1"}


def publish(web: FakeWeb, path: str, story: tuple, outlet: str = "Atomic Watch") -> str:
    title, paragraphs = story
    return web.put(path, article_html(title, outlet, "2026-02-26", paragraphs))


def test_fetch_article_extracts_text_and_metadata(web: FakeWeb) -> None:
    url = publish(web, "/power", POWER)
    a = fetch_article(url + "?utm_source=x", LOCAL)
    assert a.title == POWER[0]
    # The page calls itself "Atomic Watch", but 127.0.0.1 is not that site: cited by host.
    assert a.outlet == web.base.removeprefix("http://") and a.published == "2026-02-26"
    assert a.url == url and "backup power line" in a.text and "Subscribe" not in a.text


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda w: w.base + "/missing", "HTTP 404"),
        (
            lambda w: (w.redirect("/loop-a", "/loop-b"), w.redirect("/loop-b", "/loop-a"))[0],
            "too many redirects",
        ),
        (lambda w: w.base + "/huge", "page too large"),
        (lambda w: w.put("/empty", "<html><body><nav>Home</nav></body></html>"), "no article text"),
        (lambda w: "ftp://example.org/x", r"not an http\(s\) URL"),
        (lambda w: "http://127.0.0.1:9/closed", "could not fetch"),
    ],
)
def test_bad_pages_give_clear_messages(web: FakeWeb, setup, message: str) -> None:
    url = setup(web)
    with pytest.raises(IngestError, match=message):
        fetch_article(url, LOCAL)


def test_feed_checks(web: FakeWeb) -> None:
    page = publish(web, "/page", POWER)
    with pytest.raises(IngestError, match="not an RSS or Atom feed"):
        fetch_feed(page, LOCAL)
    bad = web.put(
        "/bad.xml",
        "<?xml version='1.0'?><rss><channel><item><title>x</ti",
        content_type="application/rss+xml",
    )
    with pytest.raises(IngestError, match="malformed feed XML"):
        fetch_feed(bad, LOCAL)
    good = web.put("/feed.xml", rss([("Power", page)]), content_type="application/rss+xml")
    listing = fetch_feed(good, LOCAL)
    assert listing.title == "Peace talks wire" and [e.link for e in listing.entries] == [page]
    assert listing.whole


def test_poll_ingests_new_entries_once_and_dedups_copies(
    web: FakeWeb, data_dir: Path, store: Store
) -> None:
    ingester = Ingester(store, HashEmbedder())
    power = publish(web, "/world/power", POWER)
    feed_url = web.put("/feed.xml", rss([("Power", power)]), content_type="application/rss+xml")
    feed, n = add_feed(store, feed_url, LOCAL)
    assert n == 1 and [f.url for f in list_feeds(store)] == [feed_url]
    with pytest.raises(IngestError, match="already"):
        add_feed(store, feed_url, LOCAL)
    report = poll_feeds(store, ingester, LOCAL)
    assert (report.added, report.errors) == (1, [])
    assert poll_feeds(store, ingester, LOCAL).added == 0  # seen entries are not fetched again
    # The same story under another URL (tracking, AMP, trailing slash) and republished by
    # another outlet with small edits: stored once, the reprint recorded as "also reported".
    amp = publish(web, "/amp/world/power", POWER)
    title, paras = POWER
    reprint = web.put(
        "/wire/42",
        article_html(title, "Wire Daily", "2026-02-26", [paras[0], paras[1] + " ", *paras[2:]]),
    ).replace("127.0.0.1", "localhost")  # another site (the same server under another name)
    web.put(
        "/feed.xml",
        rss(
            [
                ("Power", power),
                ("Power", power + "/?utm_medium=rss"),
                ("Power AMP", amp),
                ("Reprint", reprint),
            ]
        ),
        content_type="application/rss+xml",
    )
    report = poll_feeds(store, ingester, LOCAL)
    assert report.added == 0 and report.duplicates + report.unchanged == 3
    assert store.article_count() == 1
    kinds = {r[0] for r in store.db.execute("SELECT kind FROM article_urls")}
    assert "also_reported" in kinds
    assert remove_feed(store, str(feed.id)) and not list_feeds(store)


def test_entries_a_feed_no_longer_lists_are_forgotten_after_a_month(
    web: FakeWeb, data_dir: Path, store: Store
) -> None:
    ingester = Ingester(store, HashEmbedder())
    power = publish(web, "/world/power", POWER)
    sanctions = publish(web, "/world/sanctions", SANCTIONS)
    feed_url = web.put("/feed.xml", rss([("Power", power)]), content_type="application/rss+xml")
    other_url = web.put("/other.xml", rss([("S", sanctions)]), content_type="application/rss+xml")
    feed, _ = add_feed(store, feed_url, LOCAL)
    other, _ = add_feed(store, other_url, LOCAL)
    assert poll_feeds(store, ingester, LOCAL).added == 2

    def keys(feed_id: int = feed.id) -> set[str]:
        rows = store.db.execute("SELECT entry_key FROM feed_entries WHERE feed_id=?", (feed_id,))
        return {r[0] for r in rows}

    (listed,), (other_key,) = keys(), keys(other.id)
    store.db.execute("UPDATE feed_entries SET seen_at = seen_at - 31 * 86400")
    store.db.commit()
    poll_feeds(store, ingester, LOCAL)
    assert keys() == {listed}  # old, but still listed: kept
    # One feed's listing never touches another's entries: the other feed's old entry was not
    # forgotten and taken again (its first-seen time would be new).
    (seen,) = store.db.execute("SELECT seen_at FROM feed_entries WHERE feed_id=?", (other.id,))
    assert seen[0] < time.time() - 30 * 86400
    # Not read whole: unreadable, empty, or cut off after its first entry: nothing forgotten.
    whole = rss([("S", sanctions), ("S2", sanctions + "?2"), ("S3", sanctions + "?3")])
    cut = whole[: whole.index("<item>", whole.index("S2")) + 12]
    for body in ("<rss><channel><item><ti", rss([]), cut):
        web.put("/feed.xml", body, content_type="application/rss+xml")
        poll_feeds(store, ingester, LOCAL)
        assert listed in keys(), body
    # Read whole, and the old entry is gone from it: forgotten, the fresh ones listed kept; the
    # other feed's old entry likewise, once its own listing drops it.
    web.put("/feed.xml", whole, content_type="application/rss+xml")
    web.put("/other.xml", rss([("P", power)]), content_type="application/rss+xml")
    poll_feeds(store, ingester, LOCAL)
    assert listed not in keys() and len(keys()) == 3
    assert other_key not in keys(other.id)  # its own listing, read whole, dropped it
    # Listed again later: found by its URL, not fetched or stored a second time.
    web.put("/feed.xml", rss([("Power", power)]), content_type="application/rss+xml")
    report = poll_feeds(store, ingester, LOCAL)
    assert (report.added, store.article_count()) == (0, 2) and report.unchanged >= 1
    assert listed in keys() and len(keys()) == 4  # the three fresh ones are not a month old


def test_an_article_an_operator_deleted_is_not_brought_back_by_a_feed(
    web: FakeWeb, data_dir: Path, store: Store
) -> None:
    ingester = Ingester(store, HashEmbedder())
    power = publish(web, "/world/power", POWER)
    amp = publish(web, "/amp/power", POWER)  # the same page under a second URL: an alias
    sanctions = publish(web, "/world/sanctions", SANCTIONS)
    listing = rss([("Power", power), ("Power AMP", amp)])
    add_feed(store, web.put("/first.xml", listing, content_type="application/rss+xml"), LOCAL)
    assert poll_feeds(store, ingester, LOCAL).added == 1
    assert store.delete_article(store.find_article_by_key(canonical_url(power)))
    # Its page changes (most of its text new) and another feed lists it: under its URL with
    # tracking, under its alias, through a redirect, retitled with a sentence added at another
    # URL, and word for word at a third. None is stored again; a new article still comes in.
    title, paragraphs = POWER
    changed = paragraphs[:1] + [
        "Inspectors from the agency arrived at the site on Friday to review the repaired line.",
        "They said the reactors remain in cold shutdown while the line is tested for a week.",
        "Officials in Kyiv and Moscow each blamed the other side for the earlier damage.",
    ]
    web.put("/world/power", article_html(title, "Atomic Watch", "2026-02-27", changed))
    hop = web.redirect("/go/1", power)
    near = web.put("/near", article_html("Plant reconnected", "Mirror", "", [*paragraphs, "End."]))
    same = web.put("/same", article_html(title, "Mirror", "2026-02-27", paragraphs))
    urls = [power + "?utm_source=x", amp, hop, near, same]
    items = list(zip("PAHNS", urls, strict=True))
    second = rss([*items, ("New", sanctions)])
    add_feed(store, web.put("/second.xml", second, content_type="application/rss+xml"), LOCAL)
    web.hits.clear()
    report = poll_feeds(store, ingester, LOCAL)
    assert (report.added, report.withheld, store.article_count()) == (1, 5, 1), report.summary()
    assert "5 deleted earlier left out" in report.summary()
    # Its own URL and its alias are known before fetching: neither is fetched at all.
    assert not {"/world/power?utm_source=x", "/amp/power"} & set(web.hits)
    assert {"/go/1", "/near", "/same"} <= set(web.hits)
    titled = "SELECT COUNT(*) FROM articles WHERE title IN (?, ?)"
    assert store.db.execute(titled, (title, "Plant reconnected")).fetchone()[0] == 0
    # An explicit ingest is the operator's own choice: stored again, said so, and the whole
    # deletion lifted (its alias too): feeds then treat it like any stored article.
    web.put("/world/power", article_html(title, "Atomic Watch", "2026-02-26", paragraphs))
    again = ingest_url(store, ingester, power, LOCAL)
    assert (again.added, again.restored) == (1, 1) and "1 deleted earlier stored again" in (
        again.summary()
    )
    assert not store.deletions([canonical_url(amp)]) and store.article_count() == 2
    assert store.db.execute("SELECT COUNT(*) FROM deleted_keys").fetchone()[0] == 0


def test_an_article_quoting_part_of_a_deleted_one_does_not_lift_its_deletion(
    web: FakeWeb, data_dir: Path, store: Store
) -> None:
    ingester = Ingester(store, HashEmbedder())
    long_one = ("A long report", POWER[1] + SANCTIONS[1])  # eight sentences
    report = publish(web, "/report", long_one)
    assert ingest_url(store, ingester, report, LOCAL).added == 1
    assert store.delete_article(store.find_article_by_key(canonical_url(report)))
    # Another article quotes half of it: stored (it is its own), the deletion stays.
    quoting = ("Analysis", [*POWER[1], "Analysts said the repairs show the truce can hold."])
    assert ingest_url(store, ingester, publish(web, "/analysis", quoting), LOCAL).added == 1
    assert store.db.execute("SELECT COUNT(*) FROM deleted_keys").fetchone()[0] > 0
    feed = web.put("/f.xml", rss([("R", report)]), content_type="application/rss+xml")
    add_feed(store, feed, LOCAL)
    polled = poll_feeds(store, ingester, LOCAL)
    assert (polled.added, polled.withheld) == (0, 1)


def test_broken_feed_is_reported_and_others_go_on(
    web: FakeWeb, data_dir: Path, store: Store
) -> None:
    ingester = Ingester(store, HashEmbedder())
    good = web.put(
        "/good.xml", rss([("S", publish(web, "/s", SANCTIONS))]), content_type="application/rss+xml"
    )
    add_feed(store, good, LOCAL)
    flaky = web.put("/flaky.xml", rss([]), content_type="application/rss+xml")
    add_feed(store, flaky, LOCAL)
    web.put("/flaky.xml", "oops", status=500)
    report = poll_feeds(store, ingester, LOCAL)
    assert report.added == 1 and any("HTTP 500" in e for e in report.errors)
    errors = {f.url: f.last_error for f in list_feeds(store)}
    assert "HTTP 500" in errors[flaky] and errors[good] == ""


def test_ingest_url_keeps_store_intact_on_failure(
    web: FakeWeb, data_dir: Path, store: Store
) -> None:
    ingester = Ingester(store, HashEmbedder())
    assert ingest_url(store, ingester, publish(web, "/p", POWER), LOCAL).added == 1
    report = ingest_url(store, ingester, web.base + "/nope", LOCAL)
    assert report.added == 0 and "HTTP 404" in report.errors[0]
    assert store.article_count() == 1


def test_cli_feeds_and_ingest_url(web: FakeWeb, data_dir: Path) -> None:
    page = publish(web, "/cli", SANCTIONS)
    feed = web.put("/f.xml", rss([("S", page)]), content_type="application/rss+xml")
    assert run_cli(data_dir, "feeds", **ALLOW).stdout.startswith("no feeds")
    added = run_cli(data_dir, "feeds", "add", feed, **ALLOW)
    assert added.returncode == 0 and "added feed 1: Peace talks wire (1 entries" in added.stdout
    bad = run_cli(data_dir, "feeds", "add", page, **ALLOW)
    assert bad.returncode == 1 and "not an RSS or Atom feed" in bad.stderr
    polled = run_cli(data_dir, "feeds", "poll", **ALLOW)
    assert polled.returncode == 0 and polled.stdout.startswith("1 article added")
    listed = run_cli(data_dir, "feeds", "list", **ALLOW).stdout
    assert feed in listed and "[ok]" in listed
    result = run_cli(data_dir, "ingest", page, **ALLOW)
    assert result.returncode == 0 and "1 unchanged" in result.stdout
    missing = run_cli(data_dir, "ingest", web.base + "/gone", **ALLOW)
    assert missing.returncode == 1 and "HTTP 404" in missing.stderr
    assert run_cli(data_dir, "feeds", "remove", "1", **ALLOW).returncode == 0
    assert query(data_dir, "SELECT COUNT(*) FROM articles") == [(1,)]


def test_feed_titles_are_one_clean_line_of_bounded_length() -> None:
    """A feed's and its entries' titles reach the operator's terminal (`feeds list`) and, when
    an entry's page fails, a stored article: escape sequences, bidirectional overrides and
    any length were taken as they came."""
    body = rss(
        [
            ("Monitors \x1b[2J\x1b[31mRED\x1b[0m arrive", "http://example.org/a"),
            ("x" * 5000, "http://example.org/b"),
        ],
        title="Wire \x1b]0;owned\x07 \u202esretueR",
    ).encode()
    listing = parse_feed(body, "http://example.org/feed")
    assert listing.title == "Wire ]0;owned sretueR"
    first, second = listing.entries
    assert first.title == "Monitors [2J [31mRED [0m arrive"
    assert len(second.title) == 1000 and second.title.endswith("…")


def test_a_title_set_later_is_cleaned_too() -> None:
    """``index.feeds`` puts an entry's title on the article it fetched: the same cleaning as
    at reading, however the title is set."""
    a = RawArticle("Talks", "", "", "News", "Text about the talks.", "x", "html")
    a.title = "Entry \x1b[2J title " + "word " * 400
    a.outlet = "\u202esretueR"
    assert "\x1b" not in a.title and len(a.title) <= 1000 and a.title.endswith("…")
    assert a.outlet == "sretueR"
