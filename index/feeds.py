"""RSS/Atom feeds: register, list, remove, and poll them into the store."""

from __future__ import annotations

import time

from index.fetch import FeedEntry, FeedListing, FetchPolicy, fetch_article, fetch_feed, is_url
from index.ingest import Ingester, IngestReport
from index.live_index import after_write
from index.loaders import (
    IngestError,
    RawArticle,
    canonical_url,
    clean_url,
    outlet_from_url,
    parse_html,
)
from index.store import Store
from index.store_feeds import Feed
from index.text import ascii_int

POLL_BUDGET_SECONDS = 300.0  # a poll takes no new entries after this long


def add_feed(store: Store, url: str, policy: FetchPolicy | None = None) -> tuple[Feed, int]:
    """Fetch and check the feed, then register it; (feed, entries it lists now)."""
    url = url.strip()
    if not is_url(url):
        raise IngestError(f"{url}: not an http(s) URL")
    existing = [f for f in list_feeds(store) if f.url == url]
    if existing:
        raise IngestError(f"{url}: already subscribed as feed {existing[0].id}")
    listing = fetch_feed(url, policy)
    return store.feeds.add(url, listing.title), len(listing.entries)


def list_feeds(store: Store) -> list[Feed]:
    return store.feeds.all()


def remove_feed(store: Store, url_or_id: str) -> bool:
    key = url_or_id.strip()
    feed_id = ascii_int(key)
    if feed_id is not None:
        return store.feeds.remove(feed_id=feed_id)
    return store.feeds.remove(url=key)


def _same_site(a: str, b: str) -> bool:
    def host(url: str) -> str:
        return outlet_from_url(url).lower().removeprefix("www.")

    return bool(host(a)) and host(a) == host(b)


def _entry_article(entry: FeedEntry, feed: Feed, policy: FetchPolicy | None) -> RawArticle:
    """The entry's page. If that fails, the text the feed itself carries (when long enough),
    but only for a link on the feed's own site: a feed's words are never put in the mouth of
    another outlet."""
    try:
        article = fetch_article(entry.link, policy)
    except IngestError:
        if len(entry.content.split()) < 40 or not _same_site(entry.link, feed.url):
            raise
        article = parse_html(
            f"<html><body><article>{entry.content}</article></body></html>",
            name=entry.link,
            url=clean_url(entry.link),
        )
        article.outlet = outlet_from_url(feed.url)
        article.title = entry.title.strip() or article.title  # not the text's first sentence
    article.title = article.title or entry.title
    article.published = article.published or entry.published
    return article


def poll_feeds(
    store: Store,
    ingester: Ingester,
    policy: FetchPolicy | None = None,
    budget: float = POLL_BUDGET_SECONDS,
) -> IngestReport:
    """Fetch every feed and ingest entries not seen before. A feed that fails keeps its error
    (shown by ``feeds list``) and the others go on. An entry that fails is tried again with
    backoff and given up after a few tries. Each fetch has its own deadline, and a poll stops
    taking new entries after ``budget`` seconds (the rest wait for the next poll), so no page
    can stall polling. Each feed may take only a fair share of what is left of the budget (what
    an earlier one leaves unused goes to the later ones), so a feed of slow pages cannot starve
    the feeds after it."""
    report = IngestReport()
    started = time.perf_counter()
    feeds = list_feeds(store)
    for n, feed in enumerate(feeds):
        left = budget - (time.perf_counter() - started)
        share_ends = time.perf_counter() + max(left, 0.0) / (len(feeds) - n)
        try:
            listing, error = fetch_feed(feed.url, policy), ""
        except Exception as exc:  # one bad feed never stops the others
            error = (
                str(exc)
                if isinstance(exc, IngestError)
                else (f"{feed.url}: could not be read ({type(exc).__name__})")
            )
            listing = FeedListing(feed.title, [], whole=False)
            report.errors.append(error)
        skip = store.feeds.not_due(feed.id)
        for entry in listing.entries:
            if entry.key in skip or not entry.link:
                continue
            if time.perf_counter() > share_ends:
                break
            try:
                key = canonical_url(entry.link)
                if store.find_article_by_key(key) is not None:
                    report.unchanged += 1  # a URL we hold already (tracking, AMP, www …)
                elif store.deletions([key]):
                    report.withheld += 1  # an operator deleted it: not fetched again
                else:
                    # Its final URL or its text may still be one an operator deleted.
                    article = _entry_article(entry, feed, policy)
                    ingester.ingest_article(article, report, unless_deleted=True)
            except Exception as exc:  # one bad entry never stops the others
                message = (
                    str(exc)
                    if isinstance(exc, IngestError)
                    else (f"{entry.link}: could not be read ({type(exc).__name__})")
                )
                gave_up = store.feeds.failed(feed.id, entry.key, message)
                report.errors.append(f"{message}{' (given up)' if gave_up else ' (will retry)'}")
                continue
            store.feeds.mark_seen(feed.id, entry.key)
        if listing.whole and listing.entries:
            # Only a listing read whole, and not empty, says what the feed no longer lists.
            store.feeds.forget_unlisted(feed.id, {e.key for e in listing.entries})
        store.feeds.polled(feed.id, listing.title, error)
    after_write(store)  # readers replay the change log; a large tail gets a new snapshot
    report.seconds = time.perf_counter() - started
    return report


def ingest_url(
    store: Store, ingester: Ingester, url: str, policy: FetchPolicy | None = None
) -> IngestReport:
    """``talksbot ingest URL`` and the bot's ``/ingest``: fetch one page and store it."""
    report = IngestReport()
    started = time.perf_counter()
    try:
        ingester.ingest_article(fetch_article(url, policy), report)
    except IngestError as exc:
        report.errors.append(str(exc))
    after_write(store)  # readers replay the change log; a large tail gets a new snapshot
    report.seconds = time.perf_counter() - started
    return report
