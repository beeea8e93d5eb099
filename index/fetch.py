"""Fetch article pages and feeds over HTTP, with limits, and read them.

Every failure is an ``IngestError`` with a one-line message: 404, a redirect loop, a page too
large, a page with no article text, a URL that is not a feed, malformed XML.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx

from index.loaders import IngestError, RawArticle, clean_url, parse_html

MAX_PAGE_BYTES = 5 * 1024 * 1024
MAX_REDIRECTS = 5
TIMEOUT = httpx.Timeout(15.0, connect=5.0)
USER_AGENT = "talksbot/0.1 (+news citation bot)"


def is_url(text: str) -> bool:
    return bool(re.match(r"^https?://[^\s/]+", text or "", re.I))


def fetch(url: str) -> tuple[str, bytes, str]:
    """(final URL, body, content type) of a GET, or ``IngestError``."""
    if not is_url(url):
        raise IngestError(f"{url}: not an http(s) URL")
    try:
        with (
            httpx.Client(
                follow_redirects=True,
                max_redirects=MAX_REDIRECTS,
                timeout=TIMEOUT,
                headers={"User-Agent": USER_AGENT},
            ) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code >= 400:
                raise IngestError(f"{url}: HTTP {response.status_code} {response.reason_phrase}")
            declared = int(response.headers.get("Content-Length") or 0)
            if declared > MAX_PAGE_BYTES:
                raise IngestError(f"{url}: page too large ({declared / 1e6:.0f} MB)")
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_PAGE_BYTES:
                    raise IngestError(f"{url}: page too large (over {MAX_PAGE_BYTES / 1e6:.0f} MB)")
                chunks.append(chunk)
            return str(response.url), b"".join(chunks), response.headers.get("Content-Type", "")
    except httpx.TooManyRedirects:
        raise IngestError(f"{url}: too many redirects (a redirect loop?)") from None
    except httpx.HTTPError as exc:
        raise IngestError(f"{url}: could not fetch ({type(exc).__name__}: {exc})") from None


def _decode(body: bytes, content_type: str) -> str:
    match = re.search(r"charset=([\w-]+)", content_type, re.I)
    try:
        return body.decode(match.group(1) if match else "utf-8")
    except (LookupError, UnicodeDecodeError):
        return body.decode("utf-8", errors="replace")


def fetch_article(url: str) -> RawArticle:
    """Fetch a page and extract its article text and metadata (trafilatura)."""
    final_url, body, content_type = fetch(url)
    if b"\x00" in body[:4096]:
        raise IngestError(f"{url}: not a web page ({content_type or 'binary'})")
    article = parse_html(_decode(body, content_type), name=url, url=clean_url(final_url))
    article.source = clean_url(final_url)
    return article


@dataclass
class FeedEntry:
    key: str  # id or link: what marks the entry as seen
    link: str
    title: str
    published: str
    content: str  # HTML or text the feed itself carries, if any


def parse_feed(body: bytes, url: str) -> tuple[str, list[FeedEntry]]:
    """(feed title, entries) of RSS or Atom; ``IngestError`` for anything else."""
    import feedparser

    parsed = feedparser.parse(body)
    if not parsed.entries and not parsed.get("version"):
        if parsed.bozo:
            reason = str(parsed.get("bozo_exception", "")).splitlines()[0][:120]
            raise IngestError(f"{url}: not an RSS or Atom feed ({reason or 'malformed XML'})")
        raise IngestError(f"{url}: not an RSS or Atom feed")
    entries = []
    for e in parsed.entries:
        link = e.get("link", "")
        key = e.get("id") or link
        if not key:
            continue
        content = ""
        if e.get("content"):
            content = e.content[0].get("value", "")
        content = content or e.get("summary", "")
        published = ""
        if e.get("published_parsed"):
            t = e.published_parsed
            published = f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
        entries.append(FeedEntry(key, link, e.get("title", ""), published, content))
    if parsed.bozo and not entries:
        reason = str(parsed.get("bozo_exception", "")).splitlines()[0][:120]
        raise IngestError(f"{url}: malformed feed XML ({reason or 'unreadable'})")
    return parsed.feed.get("title", "") or url, entries


def fetch_feed(url: str) -> tuple[str, list[FeedEntry]]:
    _, body, _ = fetch(url)
    return parse_feed(body, url)
