"""Read article files (Markdown with YAML front matter, plain text, HTML) into ``RawArticle``s.

Every failure is an ``IngestError`` with a one-line message naming the file, so the CLI can
report it and go on with the other files.
"""

from __future__ import annotations

import datetime as dt
import html
import itertools
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import frontmatter
import yaml
from frontmatter.default_handlers import YAMLHandler

from index.text import one_line

MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_FRONT_MATTER_BYTES = 64 * 1024
MAX_FRONT_MATTER_DEPTH = 20
# Longest value kept per front-matter field: longer is refused (a "title" of a page is a
# mistake or an attack, not a title), except the URL, which is dropped like any unusable link.
MAX_FIELD_CHARS = {"title": 1_000, "outlet": 200, "published": 100, "date": 100}
MAX_URL_CHARS = 2_048
MARKDOWN_SUFFIXES = {".md", ".markdown"}
_METADATA_LINE = re.compile(r"(title|url|published|date|outlet)\s*:", re.I)
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
    # What the reader should know of how it was read (a link left out, say): not errors, the
    # article is stored.
    notes: list[str] = field(default_factory=list)

    def __setattr__(self, name: str, value: object) -> None:
        # A title or outlet is one clean line of bounded length however it is set: from front
        # matter, a page, or a feed entry's title put in later (``index.feeds``).
        if name in ("title", "outlet") and isinstance(value, str):
            value = one_line(value, MAX_FIELD_CHARS[name])
        super().__setattr__(name, value)


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
    ``www.bbc.co.uk``) is the whole name run together, less at most a leading "The" and a
    trailing "News" ("BBC News" on bbc.co.uk, "The Washington Post" on washingtonpost.com).
    Never only its first words: a site at financial.xyz is not "Financial Times", nor the.com
    "The Washington Post". A page with no URL keeps its name."""
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
    words = [w for w in (_compact(w) for w in name.split()) if w]
    bare = words[1:] if words[:1] == ["the"] else words
    forms = {"".join(words), "".join(bare)}
    if len(bare) > 1 and bare[-1] == "news":
        forms |= {"".join(words[:-1]), "".join(bare[:-1])}
    if name and domain and domain in forms:
        return name
    return host or name


def iter_article_files(paths: list[Path], skipped: list[str] | None = None) -> Iterator[Path]:
    """Expand files and folders (recursively) into article files, sorted for a stable order.

    A link inside a folder to a file outside it is left out (and named in ``skipped``): a
    folder others can write to could otherwise have any file this user can read ingested and
    quoted to strangers. A file named on the command line is read wherever it points."""
    for path in paths:
        if not path.exists():
            raise IngestError(f"{path}: no such file or folder")
        if path.is_dir():
            root = path.resolve()
            for p in sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in SUPPORTED_SUFFIXES
                and not p.name.startswith(".")
            ):
                if p.is_symlink() and not p.resolve().is_relative_to(root):
                    if skipped is not None:
                        skipped.append(f"{p}: a link to a file outside {path}, not followed")
                    continue
                yield p
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


def published_date(text: str) -> str:
    """A publication date as ISO ``YYYY-MM-DD``, the form citations show and the store orders
    and compares by ("Nov 23, 2025", "2025-11-23T10:00:00Z", "23 November 2025 10:00 GMT");
    "" when the text is no full date (shown as undated rather than as something invented). A
    numeric day and month ("03/04/2026") is read month first."""
    text = text.strip()
    if not text:
        return ""
    try:
        day = dt.datetime.fromisoformat(text.replace("Z", "+00:00")).date()
    except ValueError:
        day = _written_date(text)
    return day.isoformat() if day is not None and 1900 <= day.year <= 2200 else ""


_MONTHS = (
    "january february march april may june july august september october november december"
).split()
_MONTH_WORDS = (
    {m: i for i, m in enumerate(_MONTHS, 1)}
    | {m[:3]: i for i, m in enumerate(_MONTHS, 1)}
    | {"sept": 9}
)
# A date a site writes into an article's address: /2026/02/27/, /2026/feb/20/, /2026/2/7/.
_URL_DATE = re.compile(
    r"/((?:19|20)\d\d)/(\d{1,2}|" + "|".join(_MONTH_WORDS) + r")/(\d{1,2})(?=/|$)", re.I
)


def url_date(url: str) -> dt.date | None:
    """The date in an article's address, if it holds a whole one."""
    match = _URL_DATE.search(urlsplit(url).path) if url else None
    if match is None:
        return None
    year, month, day = match.groups()
    number = int(month) if month.isdigit() else _MONTH_WORDS[month.lower()]
    try:
        return dt.date(int(year), number, int(day))
    except ValueError:
        return None  # /2026/13/45/: no date


def reconcile_published(published: str, url: str) -> str:
    """The publication date to show, given the one found (ISO, or "") and the address: a page
    is not published before the date its own address holds, so an earlier date (a scraper's
    pick of a day the text recounts: a Guardian long read of 20 February 2026 came dated
    2022-02-07) and a missing one give way to the address's. A later date stays (an update)."""
    in_url = url_date(url)
    if in_url is None or in_url > dt.date.today() + dt.timedelta(days=1):
        return published  # none, or one no page can have been published on yet (an event's)
    if published and published >= in_url.isoformat():
        return published
    return in_url.isoformat()


def _written_date(text: str) -> dt.date | None:
    """A date as people write it, with its year in full ("3/4/5" names no century)."""
    if not re.search(r"(?<!\d)\d{4}(?!\d)", text):
        return None
    import warnings

    from dateutil import parser

    with warnings.catch_warnings():  # an unknown zone name ("EST") still gives the local day
        warnings.simplefilter("ignore")
        try:  # parsed twice with different defaults: a part it had to fill in differs
            when = parser.parse(text, default=dt.datetime(2004, 1, 1))
            again = parser.parse(text, default=dt.datetime(2008, 2, 2))
        except (ValueError, OverflowError):
            return None
    # No year, month or day given ("Friday", "Feb 2026"): not a date to show.
    return when.date() if when.date() == again.date() else None


def _decode(data: bytes, name: str) -> str:
    if not data.strip():
        raise IngestError(f"{name}: file is empty")
    if b"\x00" in data[:8192]:
        raise IngestError(f"{name}: looks like a binary file, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IngestError(f"{name}: not valid UTF-8 text (byte {exc.start})") from None


class FrontMatterError(yaml.YAMLError):
    """Front matter refused before or while it is composed; the message says why."""


class _PlainLoader(yaml.SafeLoader):
    """``SafeLoader`` without anchors and aliases, and with nesting capped.

    Aliases are how a few hundred bytes become gigabytes (the "billion laughs" bomb: nine
    levels of nine aliases each are 387 million strings once expanded); article metadata never
    needs them. Refused as the composer meets them, naming the top-level key they are under."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._field = ""

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        if self._depth == 1 and isinstance(index, yaml.ScalarNode):
            self._field = str(index.value)[:40]
        where = f"field '{self._field}'" if self._field else "front matter"
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise FrontMatterError(
                f"{where} uses a YAML alias (*{event.anchor}); aliases are not allowed"
            )
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            raise FrontMatterError(
                f"{where} uses a YAML anchor (&{anchor}); anchors are not allowed"
            )
        if self._depth >= MAX_FRONT_MATTER_DEPTH:
            raise FrontMatterError(f"{where} is nested too deeply")
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _FrontMatterHandler(YAMLHandler):
    def load(self, fm: str, **kwargs: object) -> object:
        self.text = fm  # where a YAML error's line counts from
        size = len(fm.encode("utf-8", "surrogatepass"))
        if size > MAX_FRONT_MATTER_BYTES:
            raise FrontMatterError(
                f"front matter too large ({size // 1024} KB; the limit is "
                f"{MAX_FRONT_MATTER_BYTES // 1024} KB)"
            )
        return yaml.load(fm, Loader=_PlainLoader)  # noqa: S506 - a SafeLoader subclass


def _timestamp(loader: _PlainLoader, node: yaml.ScalarNode) -> object:
    """YAML's date, with the value and its place named when it is no date ("2026-02-30"):
    PyYAML raises a bare ``ValueError`` there, which says neither."""
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except ValueError as exc:
        raise yaml.constructor.ConstructorError(
            None, None, f"{node.value!r} is not a date ({exc})", node.start_mark
        ) from None


_PlainLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)


def _field(meta: dict, key: str, name: str) -> str:
    """A metadata field as text. Only a plain value (text, number, date) is metadata: a list
    or mapping is refused rather than turned into its ``repr``."""
    value = meta.get(key)
    if isinstance(value, dict | list | set | tuple | bytes):
        kind = "mapping" if isinstance(value, dict) else "list"
        raise IngestError(f"{name}: front matter field '{key}' must be a plain value, not a {kind}")
    try:
        text = _as_text(value)
    except ValueError:  # an integer too long to print: YAML reads hex and octal of any length
        raise IngestError(
            f"{name}: front matter field '{key}' is a number too long to read"
        ) from None
    limit = MAX_FIELD_CHARS.get(key)
    if limit is not None and len(text) > limit:
        raise IngestError(f"{name}: front matter field '{key}' is longer than {limit:,} characters")
    return text


def _link(url: str) -> str:
    """``url`` cleaned if it is a plain http(s) link we would show, else "": ``javascript:``,
    ``file:``, credentials or a 2 KB+ URL never become an article's link (the article stays)."""
    from index.fetch import FetchError, check_url

    if not url or len(url) > MAX_URL_CHARS:
        return ""
    try:
        check_url(url)
    except FetchError:
        return ""
    return clean_url(url)


_HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)
_HIDDEN = re.compile(r"<(script|style)\b[^<>]*>.*?</\1\s*>", re.S | re.I)  # contents no text
_BLOCK_TAG = re.compile(
    r"</?(?:br|p|div|li|ul|ol|h[1-6]|tr|table|blockquote|section|article|hr|figure)\b[^<>]*>",
    re.I,
)
# HTML's own inline elements only: "List<String>" or "<user at host>" is text.
_INLINE_TAG = re.compile(
    r"</?(?:a|abbr|b|big|cite|del|em|figcaption|font|i|iframe|img|ins|kbd|mark|q|s|small|span"
    r"|strike|strong|sub|sup|td|th|thead|tbody|time|u|center|caption)\b(?:\s[^<>]*)?/?>",
    re.I,
)
_CODE = re.compile(r"(```.*?```|`[^`\n]*`)", re.S)  # code spans and fences: left as written
# An entity with its semicolon ("&amp;", "&#8212;"); "R&D" or "&copy" without one stays.
_ENTITY = re.compile(r"&(?:#\d{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")


def _markdown_text(body: str) -> str:
    """A Markdown body as its reader sees it: inline HTML (``<b>``, ``<br>``, comments) is
    markup, not text, so tags go (block tags end a line) and entities (``&amp;``) are read.
    A ``<`` that opens no tag ("a < b", an autolink ``<https://…>``) stays."""
    if "<" not in body and "&" not in body:
        return body
    parts = _CODE.split(body)
    for i in range(0, len(parts), 2):  # the odd parts are code
        part = _HIDDEN.sub("", _HTML_COMMENT.sub("", parts[i]))
        part = _INLINE_TAG.sub("", _BLOCK_TAG.sub("\n", part))
        parts[i] = _ENTITY.sub(lambda m: html.unescape(m.group()), part)
    return "".join(parts)


def parse_markdown(text: str, name: str) -> RawArticle:
    """An article from Markdown with YAML front matter.

    ``title``, ``url``, ``published`` (or ``date``) and ``outlet`` must be plain values (text,
    numbers; a date or time for ``published``); a list, mapping, YAML anchor or alias is
    refused with the field's name. Front matter over 64 KB, a title over 1,000 characters, an
    outlet over 200 or a date over 100 are refused; a URL that is not a plain http(s) link
    (or is over 2,048 characters) is dropped and the article kept without it."""
    if not text.lstrip().startswith("---"):
        raise IngestError(
            f"{name}: no YAML front matter (expected '---' with title, url, published, outlet)"
        )
    handler = _FrontMatterHandler()
    try:
        post = frontmatter.loads(text, handler=handler)
    except FrontMatterError as exc:
        raise IngestError(f"{name}: {exc}") from None
    except yaml.MarkedYAMLError as exc:
        # Named at the file's line: where an unclosed construct began (its context), else
        # where the problem was met; the YAML's lines counted from its place in the file.
        mark = exc.context_mark if exc.context else exc.problem_mark
        what = "; ".join(p for p in (exc.context, exc.problem) if p) or type(exc).__name__
        flat = text.replace("\r\n", "\n")  # as the front matter reaches YAML
        start = flat.find(getattr(handler, "text", "\0").replace("\r\n", "\n"))
        at = flat[:start].count("\n") + 1 + mark.line if mark and start >= 0 else None
        line = f", line {at}" if at else ""
        raise IngestError(f"{name}: malformed front matter{line}: {what}") from None
    except (yaml.YAMLError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise IngestError(f"{name}: malformed front matter: {first}") from None
    except TypeError:  # a key that is not text (``1: x``) cannot be a metadata name
        raise IngestError(f"{name}: malformed front matter: every key must be text") from None
    meta = post.metadata
    if not isinstance(meta, dict) or not meta:
        raise IngestError(f"{name}: malformed front matter: expected 'key: value' lines")
    body = _markdown_text(post.content)
    fields = {key: _field(meta, key, name) for key in ("title", "url", "published", "date")}
    url = _link(fields["url"])
    title = _headline(fields["title"], body) or _first_line(body) or Path(name).stem
    notes = []
    if fields["url"] and not url:
        given = one_line(fields["url"], 80)
        notes.append(f"{name}: url {given!r} is no plain http(s) link; stored without one")
    return RawArticle(
        title=title,
        url=url,
        published=reconcile_published(published_date(fields["published"] or fields["date"]), url),
        outlet=_field(meta, "outlet", name) or outlet_from_url(url),
        text=body,
        source=name,
        kind="markdown",
        notes=notes,
    )


_SITE_SUFFIX = re.compile(r"\s+(?:-|–|—|\|)\s+[^|–—]{2,60}$")


def _headline(title: str, body: str) -> str:
    """The front matter's title, or the headline when that title is only the page's section
    ("Opinion") and the page's own title line gives the headline after it: "Opinion | The
    shadow war … - The Washington Post" (section, headline, site). A title line that adds only
    the site ("Ukraine emergency | UNHCR US") leaves the title as it is."""
    first = _first_line(body)
    if not title or len(title.split()) > 2 or not first.startswith(title + " | "):
        return title  # a headline already (a section is a word or two)
    rest = first[len(title) + 3 :].strip()
    headline = _SITE_SUFFIX.sub("", rest).strip()
    if headline == rest or len(headline.split()) < 4:
        return title  # no site after it: "rest" may itself be the site's name
    return headline


def _first_line(text: str) -> str:
    """The first line with a word in it (a rule of dashes or stars is no title)."""
    for line in text.splitlines():
        if re.search(r"\w", line):
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
        published=reconcile_published(published_date(doc.date or ""), page_url),
        outlet=page_outlet(doc.sitename or "", page_url),
        text=text,
        source=name,
        kind="html",
    )


def _too_large(name: str, size: int) -> IngestError:
    return IngestError(
        f"{name}: file too large ({size / 1e6:.0f} MB; the limit is {MAX_FILE_BYTES / 1e6:.0f} MB)"
    )


def read_capped(path: Path, name: str, within: Path | None = None) -> bytes:
    """The bytes of a regular file (symlinks followed), at most ``MAX_FILE_BYTES``.

    A FIFO would block the open until a writer comes, and a device (``z.md -> /dev/zero``)
    says it is empty yet never ends, so anything but a regular file is refused, checked before
    the open and again on the open file (opened non-blocking, so even a FIFO swapped in between
    cannot hang us). The read stops at one byte past the limit whatever ``stat`` said: files
    in /proc report 0 bytes too. With ``within`` (the folder it was listed in), the file as
    opened must lie inside that folder: a file swapped for a link out of it after the folder
    was listed is refused (``iter_article_files`` checked only at listing)."""
    not_regular = IngestError(f"{name}: not a regular file (a pipe, device or socket?)")
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise not_regular
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as fh:
            info = os.fstat(fh.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise not_regular
            if within is not None and not _opened_path(fh.fileno(), path).is_relative_to(within):
                raise IngestError(f"{name}: a link to a file outside {within}, not followed")
            if info.st_size > MAX_FILE_BYTES:
                raise _too_large(name, info.st_size)
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise IngestError(f"{name}: cannot read ({exc.strerror or exc})") from None
    if len(data) > MAX_FILE_BYTES:
        raise IngestError(f"{name}: file too large (over {MAX_FILE_BYTES / 1e6:.0f} MB, the limit)")
    return data


def _opened_path(fd: int, path: Path) -> Path:
    """Where an open file really is: from the descriptor where the system says (Linux), so no
    link swapped in since the open can change the answer; else the path resolved now."""
    try:
        return Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return path.resolve()


def load_file(path: Path, within: Path | None = None) -> RawArticle:
    """Read one file; raise ``IngestError`` with a clear message for anything unusable.
    ``within``: the folder it was listed in, which the file read must lie inside."""
    name = str(path)
    data = read_capped(path, name, within.resolve() if within is not None else None)
    text = _decode(data, name)
    suffix = path.suffix.lower()
    if suffix in MARKDOWN_SUFFIXES:
        return parse_markdown(text, name)
    if suffix in HTML_SUFFIXES:
        return parse_html(text, name)
    if suffix in TEXT_SUFFIXES:
        # Front matter only when a line of just "---" opens a block naming one of its fields
        # ("title: …"): a plain text may open with a rule ("----------", or "---" before
        # prose that happens to read as YAML, "Updated: the talks resumed").
        lines = text.lstrip().splitlines()
        if lines and lines[0].strip() == "---":
            block = list(itertools.takewhile(lambda line: line.strip() != "---", lines[1:]))
            if any(_METADATA_LINE.match(line) for line in block):
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
