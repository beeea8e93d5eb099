"""Read article files (Markdown with YAML front matter, plain text, HTML) into ``RawArticle``s.

Every failure is an ``IngestError`` with a one-line message naming the file, so the CLI can
report it and go on with the other files.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import frontmatter
import yaml

MAX_FILE_BYTES = 20 * 1024 * 1024
MARKDOWN_SUFFIXES = {".md", ".markdown"}
TEXT_SUFFIXES = {".txt"}
HTML_SUFFIXES = {".html", ".htm"}
SUPPORTED_SUFFIXES = MARKDOWN_SUFFIXES | TEXT_SUFFIXES | HTML_SUFFIXES
TRACKING_PARAMS = re.compile(r"^(utm_\w+|fbclid|gclid|mc_cid|mc_eid|ref|cmpid|ocid|smid)$", re.I)


class IngestError(Exception):
    """A file that cannot be ingested; the message is shown to the user as it is."""


@dataclass
class RawArticle:
    """An article as read from its source, before segmentation."""

    title: str
    url: str
    published: str
    outlet: str
    text: str
    source: str
    kind: str  # "markdown", "text" or "html"


def canonical_url(url: str) -> str:
    """A URL's identity: lower-case host without ``www.``/``m.``/``amp.``, no tracking
    parameters, fragment or trailing slash, so one article under cosmetic URL variants is one."""
    url = (url or "").strip()
    if not url:
        return ""
    parts = urlsplit(url)
    host = parts.netloc.lower()
    for prefix in ("www.", "m.", "amp.", "mobile."):
        if host.startswith(prefix):
            host = host[len(prefix) :]
    path = re.sub(r"/(amp/?)?$", "", parts.path) or "/"
    path = re.sub(r"^/amp/", "/", path)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if not TRACKING_PARAMS.match(k)])
    return urlunsplit(("https", host, path.rstrip("/") or "/", query, ""))


def clean_url(url: str) -> str:
    """The URL to show and link: as given, less tracking parameters and fragment."""
    url = (url or "").strip()
    if not url:
        return ""
    parts = urlsplit(url)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if not TRACKING_PARAMS.match(k)])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def outlet_from_url(url: str) -> str:
    host = urlsplit(url).netloc.lower() if url else ""
    return host[4:] if host.startswith("www.") else host


def _compact(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def page_outlet(sitename: str, url: str) -> str:
    """The outlet to cite for a page fetched from ``url``: the name the page gives itself
    (``og:site_name``) only when the site it came from bears that name, else the site's host.

    A page can call itself anything; taken on trust, any blog could have its words cited as
    "Reuters". The name is kept when the registrable domain (public-suffix aware: ``bbc`` for
    ``www.bbc.co.uk``) is the whole name or its first words run together ("BBC News" on
    bbc.co.uk, "The Guardian" on theguardian.com); a page with no URL keeps its name."""
    import tld

    name = " ".join(sitename.split())
    if not url:
        return name
    host = outlet_from_url(url)
    parsed = tld.get_tld(url, as_object=True, fail_silently=True, fix_protocol=True)
    if parsed:
        domain = _compact(parsed.domain)
    else:  # not a public suffix (a test or intranet name): the label before the last one
        labels = (urlsplit(url).hostname or "").split(".")
        numeric = all(label.isdigit() for label in labels)
        domain = _compact(labels[-2]) if len(labels) >= 2 and not numeric else ""
    words = [_compact(w) for w in name.split()]
    prefixes = {"".join(words[: i + 1]) for i in range(len(words))}
    if name and domain and domain in prefixes:
        return name
    return host or name


def iter_article_files(paths: list[Path]) -> Iterator[Path]:
    """Expand files and folders (recursively) into article files, sorted for a stable order."""
    for path in paths:
        if not path.exists():
            raise IngestError(f"{path}: no such file or folder")
        if path.is_dir():
            yield from sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in SUPPORTED_SUFFIXES
                and not p.name.startswith(".")
            )
        else:
            yield path


def _as_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value).strip()


def _decode(data: bytes, name: str) -> str:
    if not data.strip():
        raise IngestError(f"{name}: file is empty")
    if b"\x00" in data[:8192]:
        raise IngestError(f"{name}: looks like a binary file, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IngestError(f"{name}: not valid UTF-8 text (byte {exc.start})") from None


def parse_markdown(text: str, name: str) -> RawArticle:
    if not text.lstrip().startswith("---"):
        raise IngestError(
            f"{name}: no YAML front matter (expected '---' with title, url, published, outlet)"
        )
    try:
        post = frontmatter.loads(text)
    except (yaml.YAMLError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise IngestError(f"{name}: malformed front matter: {first}") from None
    meta = post.metadata
    if not isinstance(meta, dict) or not meta:
        raise IngestError(f"{name}: malformed front matter: expected 'key: value' lines")
    body = post.content
    url = clean_url(_as_text(meta.get("url")))
    title = _as_text(meta.get("title")) or _first_line(body) or Path(name).stem
    return RawArticle(
        title=title,
        url=url,
        published=_as_text(meta.get("published") or meta.get("date")),
        outlet=_as_text(meta.get("outlet")) or outlet_from_url(url),
        text=body,
        source=name,
        kind="markdown",
    )


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip().lstrip("#").strip()[:200]
    return ""


def parse_html(html: str, name: str, url: str = "") -> RawArticle:
    """Main text and metadata via trafilatura; paragraphs come back one a line."""
    import trafilatura

    doc = trafilatura.bare_extraction(
        html, url=url or None, with_metadata=True, include_comments=False, include_tables=False
    )
    text = (getattr(doc, "text", None) or "") if doc is not None else ""
    if len(text.split()) < 20:
        raise IngestError(f"{name}: no article text found in the page")
    page_url = clean_url(url or (doc.url or ""))
    return RawArticle(
        title=(doc.title or "").strip() or _first_line(text),
        url=page_url,
        published=(doc.date or "").strip(),
        outlet=page_outlet(doc.sitename or "", page_url),
        text=text,
        source=name,
        kind="html",
    )


def load_file(path: Path) -> RawArticle:
    """Read one file; raise ``IngestError`` with a clear message for anything unusable."""
    name = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise IngestError(
                f"{name}: file too large ({size / 1e6:.0f} MB; the limit is "
                f"{MAX_FILE_BYTES / 1e6:.0f} MB)"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise IngestError(f"{name}: cannot read ({exc.strerror or exc})") from None
    text = _decode(data, name)
    suffix = path.suffix.lower()
    if suffix in MARKDOWN_SUFFIXES:
        return parse_markdown(text, name)
    if suffix in HTML_SUFFIXES:
        return parse_html(text, name)
    if suffix in TEXT_SUFFIXES:
        if text.lstrip().startswith("---"):
            return parse_markdown(text, name)
        return RawArticle(
            title=_first_line(text) or path.stem,
            url="",
            published="",
            outlet="",
            text=text,
            source=name,
            kind="text",
        )
    raise IngestError(
        f"{name}: unsupported file type '{suffix or '(none)'}' (use .md, .txt, .html)"
    )
