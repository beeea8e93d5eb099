"""Fetching what strangers control: only public http(s) destinations (checked at every hop),
bounded decompression, one deadline per fetch, and feed text kept to its own outlet."""

from __future__ import annotations

import ipaddress
import time
import tracemalloc
import zlib
from pathlib import Path

import pytest

from index.embed import HashEmbedder
from index.feeds import add_feed, ingest_url, poll_feeds
from index.fetch import (
    FetchError,
    FetchPolicy,
    fetch,
    fetch_article,
    is_public,
    parse_feed,
)
from index.ingest import Ingester
from index.store import Store
from index.store_feeds import MAX_TRIES
from tests.harness.chat import query
from tests.harness.data import run_cli
from tests.harness.stories import POWER, SANCTIONS
from tests.harness.web import FakeWeb, article_html, rss

LOCAL = FetchPolicy.parse("127.0.0.1")


def gzip_of_zeros(megabytes: int) -> bytes:
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    return b"".join(z.compress(block) for _ in range(megabytes)) + z.flush()


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "64:ff9b::a00:1",
        "2002:7f00:1::",
    ],
)
def test_non_public_addresses_are_not_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_are_public(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


def test_loopback_is_refused_unless_allowed(web: FakeWeb) -> None:
    url = web.put("/internal", article_html(*POWER[:1], "Intranet", "2026-02-26", POWER[1]))
    port = web.base.rsplit(":", 1)[1]
    for target in (url, f"http://localhost:{port}/internal", f"http://[::1]:{port}/internal"):
        with pytest.raises(FetchError, match="not a public address"):
            fetch(target)
    assert web.hits == []  # refused before any connection
    assert fetch(url, LOCAL).body.startswith(b"<!DOCTYPE html>")
    assert fetch(url, FetchPolicy.parse("127.0.0.0/8")).url == url


def test_every_redirect_hop_is_checked(web: FakeWeb) -> None:
    port = web.base.rsplit(":", 1)[1]
    web.put("/secret", "internal")
    hop = web.redirect("/hop", f"http://127.0.0.2:{port}/secret")
    with pytest.raises(FetchError, match="127.0.0.2 is not a public address"):
        fetch(hop, LOCAL)
    assert "/secret" not in web.hits
    web.redirect("/to-file", "file:///etc/passwd")
    with pytest.raises(FetchError, match=r"not an http\(s\) URL"):
        fetch(web.base + "/to-file", LOCAL)


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "javascript:alert(1)", "tg://resolve?domain=x", "gopher://a/"]
)
def test_only_http_urls(url: str) -> None:
    with pytest.raises(FetchError, match="not an http"):
        fetch(url)


def test_credentials_in_url_are_refused(web: FakeWeb) -> None:
    with pytest.raises(FetchError, match="credentials"):
        fetch(web.base.replace("http://", "http://user:pw@") + "/x", LOCAL)


def test_gzip_bomb_stops_at_the_cap_in_bounded_memory(web: FakeWeb) -> None:
    bomb = gzip_of_zeros(300)  # 300 MB of zeros, ~300 KB on the wire
    web.put("/bomb", bomb, headers={"Content-Encoding": "gzip"})
    tracemalloc.start()
    try:
        with pytest.raises(FetchError, match="page too large"):
            fetch(web.base + "/bomb", LOCAL)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40 * 1024 * 1024


def test_a_page_cannot_claim_another_outlets_name(web: FakeWeb, data_dir: Path) -> None:
    """A page that calls itself "Reuters" (og:site_name, a canonical link to reuters.com) is
    cited under the host it was fetched from, in the store and in the answer."""
    spoof = article_html(POWER[0], "Reuters", "2026-02-26", POWER[1], url="https://reuters.com/x")
    url = web.put("/spoof", spoof)
    assert fetch_article(url, LOCAL).outlet == web.base.removeprefix("http://")
    allow = {"TALKSBOT_FETCH_ALLOW_HOSTS": "127.0.0.1"}
    assert run_cli(data_dir, "ingest", url, **allow).returncode == 0
    answer = run_cli(data_dir, "ask", "--json", POWER[0], **allow)
    assert "Reuters" not in answer.stdout and web.base.removeprefix("http://") in answer.stdout


def test_more_than_one_content_encoding_is_refused(web: FakeWeb) -> None:
    double = zlib.compress(gzip_of_zeros(20), wbits=16 + zlib.MAX_WBITS)
    web.put("/double", double, headers={"Content-Encoding": "gzip, gzip"})
    with pytest.raises(FetchError, match="more than one content-encoding"):
        fetch(web.base + "/double", LOCAL)


def test_small_gzip_page_is_read(web: FakeWeb) -> None:
    html = article_html(POWER[0], "Atomic Watch", "2026-02-26", POWER[1])
    web.put(
        "/gz",
        zlib.compress(html.encode(), wbits=16 + zlib.MAX_WBITS),
        headers={"Content-Encoding": "gzip"},
    )
    article = fetch_article(web.base + "/gz", LOCAL)
    assert article.title == POWER[0] and "backup power line" in article.text


def test_one_deadline_per_fetch_cuts_a_drip(web: FakeWeb) -> None:
    started = time.monotonic()
    with pytest.raises(FetchError, match="timed out"):
        fetch(web.base + "/drip", FetchPolicy.parse("127.0.0.1", deadline=2.0))
    assert time.monotonic() - started < 5  # the whole fetch, not each read


def test_feed_links_that_are_not_http_are_dropped() -> None:
    body = rss(
        [
            ("a", "javascript:alert(1)"),
            ("b", "tg://resolve?domain=x"),
            ("c", "https://example.org/ok"),
        ]
    ).encode()
    entries = parse_feed(body, "https://example.org/feed").entries
    assert [e.link for e in entries] == ["", "", "https://example.org/ok"]


def test_a_feed_read_to_its_end_is_whole_even_when_its_declared_encoding_is_wrong() -> None:
    items = [("Kyiv é", f"https://example.org/{n}") for n in range(3)]
    body = rss(items).replace('encoding="UTF-8"', 'encoding="us-ascii"', 1)
    listing = parse_feed(body.encode(), "https://example.org/feed")
    # feedparser flags the override, but read the document to its end: all three, whole.
    assert (len(listing.entries), listing.whole) == (3, True)
    cut = body.encode()[: body.encode().index(b"<item>", body.encode().index(b"/1<")) + 8]
    assert not parse_feed(cut, "https://example.org/feed").whole  # cut off: not whole
    # A stray byte that is not UTF-8: read as windows-1252, its keys may be garbled: not whole.
    stray = body.replace("Kyiv", "Ky\udcffiv", 1).encode("utf-8", "surrogateescape")
    assert not parse_feed(stray, "https://example.org/feed").whole


def feed_with_summary(link: str, words: int = 60) -> str:
    summary = " ".join(["Negotiators met again in Geneva on the ceasefire terms."] * (words // 9))
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        "<title>Wire</title><link>http://example.org/</link><description>d</description>"
        f"<item><title>Story</title><link>{link}</link><guid>{link}</guid>"
        f"<description>{summary}</description></item></channel></rss>"
    )


def test_feed_text_is_never_attributed_to_another_outlet(web: FakeWeb, data_dir: Path) -> None:
    store = Store(data_dir)
    try:
        ingester = Ingester(store, HashEmbedder())
        port = web.base.rsplit(":", 1)[1]
        # The entry's link is on another host (localhost, not the feed's 127.0.0.1) and 404s:
        # the feed's summary must not be stored as that host's article.
        other = f"http://localhost:{port}/gone"
        feed = web.put("/f.xml", feed_with_summary(other), content_type="application/rss+xml")
        add_feed(store, feed, LOCAL)
        report = poll_feeds(store, ingester, LOCAL)
        assert report.added == 0 and any("404" in e for e in report.errors)
        # On the feed's own site the feed's text stands in, under the feed's own outlet.
        own = web.base + "/gone-too"
        web.put("/f.xml", feed_with_summary(own), content_type="application/rss+xml")
        report = poll_feeds(store, ingester, LOCAL)
        assert report.added == 1
        outlets = [a.outlet for a in store.articles()]
        assert outlets == [web.base.removeprefix("http://")]
    finally:
        store.close()


def test_ingest_url_refuses_internal_page(web: FakeWeb, data_dir: Path) -> None:
    url = web.put("/internal", article_html(POWER[0], "Intranet", "2026-02-26", POWER[1]))
    store = Store(data_dir)
    try:
        report = ingest_url(store, Ingester(store, HashEmbedder()), url)
        assert report.added == 0 and "not a public address" in report.errors[0]
        assert store.article_count() == 0
    finally:
        store.close()


def test_cli_ingest_refuses_internal_page_in_one_line(web: FakeWeb, data_dir: Path) -> None:
    url = web.put("/internal", article_html(POWER[0], "Intranet", "2026-02-26", POWER[1]))
    result = run_cli(data_dir, "ingest", url)
    assert result.returncode == 1 and "not a public address" in result.stderr
    assert "Traceback" not in result.stderr and web.hits == []
    allowed = run_cli(data_dir, "ingest", url, TALKSBOT_FETCH_ALLOW_HOSTS="127.0.0.1")
    assert allowed.returncode == 0 and "1 article added" in allowed.stdout


def test_failed_entries_back_off_and_are_given_up_and_a_drip_stalls_nothing(
    web: FakeWeb, data_dir: Path
) -> None:
    policy = FetchPolicy.parse("127.0.0.1", deadline=1.5)
    good = web.put("/good", article_html(POWER[0], "Atomic Watch", "2026-02-26", POWER[1]))
    feed = web.put(
        "/f.xml",
        rss([("Drip", web.base + "/drip"), ("Gone", web.base + "/gone"), ("Good", good)]),
        content_type="application/rss+xml",
    )
    store = Store(data_dir)
    try:
        ingester = Ingester(store, HashEmbedder())
        add_feed(store, feed, policy)
        started = time.monotonic()
        report = poll_feeds(store, ingester, policy)
        assert time.monotonic() - started < 10  # the drip cost one deadline, not forever
        assert report.added == 1 and len(report.errors) == 2
        assert all(e.endswith("(will retry)") for e in report.errors)
        hits = len(web.hits)
        assert poll_feeds(store, ingester, policy).errors == []  # backing off: not fetched
        assert len(web.hits) == hits + 1  # the feed itself only
        states = dict(query(data_dir, "SELECT entry_key, state FROM feed_entries"))
        assert states == {good: "done", web.base + "/drip": "retry", web.base + "/gone": "retry"}
        for _ in range(MAX_TRIES - 1):
            query(data_dir, "UPDATE feed_entries SET next_try_at = 0")
            report = poll_feeds(store, ingester, policy)
        assert all(e.endswith("(given up)") for e in report.errors) and len(report.errors) == 2
        query(data_dir, "UPDATE feed_entries SET next_try_at = 0")
        hits = len(web.hits)
        assert poll_feeds(store, ingester, policy).errors == []
        assert len(web.hits) == hits + 1  # given up: never fetched again
        assert store.article_count() == 1
    finally:
        store.close()


@pytest.mark.parametrize(
    "link", ["http://xn--/", "http://127.0.0.1:99999/x", "http://[zz]/", "http://a b.example/"]
)
def test_malformed_links_fail_one_line_and_never_stop_a_poll(
    web: FakeWeb, data_dir: Path, link: str
) -> None:
    with pytest.raises(FetchError):
        fetch(link, LOCAL)
    redirect = web.redirect("/to-bad", link)
    with pytest.raises(FetchError):
        fetch(redirect, LOCAL)
    good = web.put("/good", article_html(POWER[0], "Atomic Watch", "2026-02-26", POWER[1]))
    hostile = web.put(
        "/hostile.xml",
        rss([("Bad", link), ("Redirect", redirect)]),
        content_type="application/rss+xml",
    )
    fine = web.put("/fine.xml", rss([("Good", good)]), content_type="application/rss+xml")
    store = Store(data_dir)
    try:
        ingester = Ingester(store, HashEmbedder())
        add_feed(store, hostile, LOCAL)
        add_feed(store, fine, LOCAL)
        report = poll_feeds(store, ingester, LOCAL)
        assert report.added == 1 and store.article_count() == 1
    finally:
        store.close()


@pytest.mark.parametrize("address", ["fec0::1", "192.88.99.1", "64:ff9b:1::a00:1"])
def test_deprecated_and_local_translation_ranges_are_not_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


def test_dns_lookup_counts_against_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    real = socket.getaddrinfo

    def slow(*args: object, **kwargs: object) -> object:
        time.sleep(4)
        return real(*args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow)
    started = time.monotonic()
    with pytest.raises(FetchError, match="timed out"):
        fetch("http://localhost:9/x", FetchPolicy.parse("127.0.0.1", deadline=1.0))
    assert time.monotonic() - started < 3


def test_a_feed_of_slow_pages_cannot_starve_the_other_feeds(web: FakeWeb, data_dir: Path) -> None:
    """A hostile feed lists fresh entries on every poll, each a page that drips until the fetch
    deadline: it may use its share of a poll's time, never all of it, so the feeds after it
    are still read, poll after poll."""
    policy = FetchPolicy.parse("127.0.0.1", deadline=1.0)
    good = [
        web.put(f"/good-{n}", article_html(story[0], "Good Wire", "2026-02-26", story[1]))
        for n, story in enumerate([POWER, SANCTIONS])
    ]
    store = Store(data_dir)
    try:
        ingester = Ingester(store, HashEmbedder())
        hostile = web.put("/hostile.xml", "", content_type="application/rss+xml")
        good_feed = web.put("/good.xml", rss([]), content_type="application/rss+xml")
        for n, link in enumerate(good):
            slow = [(f"slow {n}-{i}", f"{web.base}/drip?{n}-{i}") for i in range(8)]
            web.put("/hostile.xml", rss(slow), content_type="application/rss+xml")
            web.put("/good.xml", rss([("good", link)]), content_type="application/rss+xml")
            if n == 0:
                add_feed(store, hostile, policy)
                add_feed(store, good_feed, policy)
            poll_feeds(store, ingester, policy, budget=4.0)
            assert len(store.articles()) == n + 1, f"poll {n}: the good feed's entry not taken"
    finally:
        store.close()


def test_feed_text_standing_in_for_a_failed_page_keeps_the_entrys_title(
    web: FakeWeb, data_dir: Path
) -> None:
    own = web.base + "/gone-again"
    feed = web.put("/t.xml", feed_with_summary(own), content_type="application/rss+xml")
    store = Store(data_dir)
    try:
        add_feed(store, feed, LOCAL)
        assert poll_feeds(store, Ingester(store, HashEmbedder()), LOCAL).added == 1
        assert [a.title for a in store.articles()] == ["Story"]  # not its first sentence
    finally:
        store.close()
