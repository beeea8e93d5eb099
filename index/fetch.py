"""Fetch article pages and feeds that strangers control, safely, and read them.

A URL from a user, a feed or a redirect is hostile until checked:

- only ``http``/``https``, with a host and no credentials;
- every connection (the first and each redirect hop) resolves the host itself and connects only
  to public addresses (no loopback, private, link-local, CGNAT, multicast or reserved ranges,
  IPv4 or IPv6, IPv4 hidden in IPv6 included) unless the operator allows them
  (``TALKSBOT_FETCH_ALLOW_HOSTS``); the address checked is the address connected to, so DNS
  rebinding gains nothing;
- the body is read as a raw stream through at most one content-encoding layer, decompressed
  incrementally with a hard cap on decompressed bytes (a gzip bomb stops at the cap);
- one deadline covers the whole fetch, redirects and every read, so a server that drips a byte
  at a time is cut off.

Every failure is a ``FetchError`` (an ``IngestError``) with a one-line message.
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import re
import socket
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urljoin

import httpcore
import httpx

from index.loaders import MAX_FIELD_CHARS, IngestError, RawArticle, clean_url, parse_html
from index.text import one_line

MAX_PAGE_BYTES = 5 * 1024 * 1024
MAX_REDIRECTS = 5
DEADLINE_SECONDS = 20.0
CONNECT_SECONDS = 5.0
USER_AGENT = "talksbot/0.1 (+news citation bot)"
REDIRECTS = {301, 302, 303, 307, 308}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_ALSO_NOT_PUBLIC = (
    ipaddress.ip_network("192.88.99.0/24"),  # the deprecated 6to4 relay anycast range
    ipaddress.ip_network("fec0::/10"),  # deprecated IPv6 site-local
)
_RESOLVER = concurrent.futures.ThreadPoolExecutor(4, "talksbot-dns")


class FetchError(IngestError):
    """A fetch that failed; ``transient`` ones (network faults, time-outs, 5xx) may be retried."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class FetchPolicy:
    """What a fetch may reach and how much it may take."""

    allow_hosts: frozenset[str] = frozenset()
    allow_networks: tuple[IPNetwork, ...] = ()
    deadline: float = DEADLINE_SECONDS
    max_bytes: int = MAX_PAGE_BYTES
    max_redirects: int = MAX_REDIRECTS

    @classmethod
    def parse(cls, allow: str | Iterable[str] = "", **kwargs: float) -> FetchPolicy:
        """From ``TALKSBOT_FETCH_ALLOW_HOSTS``: comma-separated host names, IPs or CIDRs."""
        items = allow.split(",") if isinstance(allow, str) else list(allow)
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for item in (i.strip().lower() for i in items):
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item.strip("[]"), strict=False))
            except ValueError:
                if not _HOST_NAME.fullmatch(item.rstrip(".")):
                    # "[::1", "10.0.0.0/33", "host:8080": no host or network, so allowing
                    # it would silently allow nothing.
                    raise ValueError(f"{item!r} is no host name, IP address or network") from None
                hosts.add(item.rstrip("."))
        return cls(frozenset(hosts), tuple(networks), **kwargs)  # type: ignore[arg-type]

    def allows_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.allow_hosts

    def allows_address(self, ip: IPAddress) -> bool:
        return any(ip.version == net.version and ip in net for net in self.allow_networks)


_HOST_NAME = re.compile(
    r"(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*"
)


def is_public(ip: IPAddress) -> bool:
    """True for an address on the public internet, looking through IPv4 wrapped in IPv6."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if inner is None and ip in _NAT64:
            inner = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if inner is not None:
            return is_public(inner)
        if ip in _NAT64_LOCAL:
            return False
    if any(ip.version == net.version and ip in net for net in _ALSO_NOT_PUBLIC):
        return False
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


def is_url(text: str) -> bool:
    return bool(re.match(r"^https?://[^\s/]+", text or "", re.I))


def check_url(url: str) -> httpx.URL:
    """The URL parsed, or ``FetchError`` if it is not a plain http(s) URL with a host."""
    try:
        parsed = httpx.URL(url)
        scheme, host, port, userinfo = parsed.scheme, parsed.host, parsed.port, parsed.userinfo
        host.encode("idna" if not host.isascii() else "ascii")
    except (httpx.InvalidURL, TypeError, ValueError, UnicodeError):
        raise FetchError(f"{_short(url)}: not a valid URL") from None
    if scheme not in ("http", "https") or not host:
        raise FetchError(f"{_short(url)}: not an http(s) URL")
    if port is not None and not 0 < port < 65536:
        raise FetchError(f"{_short(url)}: not a valid URL (port {port})")
    if userinfo:
        raise FetchError(f"{_short(url)}: URLs with credentials are not fetched")
    return parsed


def _short(url: str, limit: int = 200) -> str:
    url = re.sub(r"\s+", " ", str(url))
    return url if len(url) <= limit else url[: limit - 1] + "…"


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def left(self, cap: float | None = None) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise httpcore.ReadTimeout("deadline passed")
        return left if cap is None else min(left, cap)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write ends by the fetch's one deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: _Deadline) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._deadline.left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._deadline.left(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None):  # noqa: ANN001, ANN201
        inner = self._inner.start_tls(ssl_context, server_hostname, self._deadline.left(timeout))
        return _DeadlineStream(inner, self._deadline)

    def get_extra_info(self, info: str) -> object:
        return self._inner.get_extra_info(info)


class _GuardedBackend(httpcore.SyncBackend):
    """Resolves each host itself and connects only to addresses the policy allows."""

    def __init__(self, policy: FetchPolicy, deadline: _Deadline) -> None:
        self.policy = policy
        self.deadline = deadline

    def addresses(self, host: str, port: int) -> list[str]:
        # The lookup counts against the fetch's deadline too (a resolver that never answers
        # must not stall a poll); the thread is left to finish on its own.
        lookup = _RESOLVER.submit(
            socket.getaddrinfo, host.strip("[]"), port, type=socket.SOCK_STREAM
        )
        try:
            infos = lookup.result(timeout=self.deadline.left())
        except concurrent.futures.TimeoutError:
            raise httpcore.ConnectTimeout(f"{host}: no DNS answer in time") from None
        except (OSError, UnicodeError, ValueError):
            raise FetchError(f"{host}: the host name does not resolve", transient=True) from None
        allowed, refused = [], []
        for info in infos:
            address = str(info[4][0]).split("%")[0]
            ip = ipaddress.ip_address(address)
            ok = is_public(ip) or self.policy.allows_host(host) or self.policy.allows_address(ip)
            (allowed if ok else refused).append(address)
        if not allowed:
            shown = refused[0] if refused else host
            raise FetchError(f"{host}: refused, {shown} is not a public address")
        return list(dict.fromkeys(allowed))

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable | None = None,
    ) -> httpcore.NetworkStream:
        error: Exception | None = None
        for address in self.addresses(host, port):
            try:
                stream = super().connect_tcp(
                    address,
                    port,
                    timeout=self.deadline.left(timeout),
                    local_address=local_address,
                    socket_options=socket_options,
                )
                return _DeadlineStream(stream, self.deadline)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise error or httpcore.ConnectError(f"{host}: no address to connect to")


class _Decoder:
    """At most one content-encoding layer, decompressed incrementally under a byte cap."""

    def __init__(self, header: str, cap: int, url: str) -> None:
        codings = [c.strip().lower() for c in header.split(",") if c.strip()]
        codings = [c for c in codings if c != "identity"]
        self.cap, self.url, self.size = cap, url, 0
        if len(codings) > 1:
            raise FetchError(f"{url}: refused, more than one content-encoding ({header.strip()})")
        coding = codings[0] if codings else ""
        if coding in ("gzip", "x-gzip"):
            self._z: zlib._Decompress | None = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif coding == "deflate":
            self._z = zlib.decompressobj(zlib.MAX_WBITS | 32)  # zlib or gzip wrapper
        elif coding == "":
            self._z = None
        else:
            raise FetchError(f"{url}: unsupported content-encoding {coding!r}")

    def _count(self, data: bytes) -> bytes:
        self.size += len(data)
        if self.size > self.cap:
            raise FetchError(f"{self.url}: page too large (over {self.cap / 1e6:.0f} MB)")
        return data

    def feed(self, chunk: bytes) -> bytes:
        if self._z is None:
            return self._count(chunk)
        out = []
        try:
            data = chunk
            while data:
                # Never inflate more than the cap allows, whatever the chunk expands to.
                out.append(self._count(self._z.decompress(data, self.cap - self.size + 1)))
                data = self._z.unconsumed_tail
        except zlib.error:
            raise FetchError(f"{self.url}: corrupt compressed body") from None
        return b"".join(out)


@dataclass
class Fetched:
    url: str  # after redirects
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)


def fetch(url: str, policy: FetchPolicy | None = None) -> Fetched:
    """GET ``url`` under ``policy`` (default: public addresses only), or ``FetchError``."""
    policy = policy or FetchPolicy()
    first = _short(url)
    current = check_url(url)
    deadline = _Deadline(policy.deadline)
    backend = _GuardedBackend(policy, deadline)
    try:
        with httpcore.ConnectionPool(network_backend=backend, max_connections=2) as pool:
            for _ in range(policy.max_redirects + 1):
                left = deadline.left()
                timeout = {"connect": min(left, CONNECT_SECONDS), "read": left, "write": left}
                headers = {
                    "User-Agent": USER_AGENT,
                    "Accept-Encoding": "gzip, deflate",
                    "Accept": "text/html, application/xhtml+xml, application/rss+xml, "
                    "application/atom+xml, application/xml;q=0.9, */*;q=0.5",
                }
                with pool.stream(
                    "GET", str(current), headers=headers, extensions={"timeout": timeout}
                ) as response:
                    head = {
                        k.decode("latin-1").lower(): v.decode("latin-1")
                        for k, v in response.headers
                    }
                    status = response.status
                    if status in REDIRECTS:
                        location = head.get("location", "").strip()
                        if not location:
                            raise FetchError(f"{first}: redirect without a Location")
                        current = check_url(urljoin(str(current), location))
                        continue
                    if status >= 400:
                        reason = response.extensions.get("reason_phrase", b"").decode(
                            "latin-1", "replace"
                        )
                        raise FetchError(f"{first}: HTTP {status} {reason}".rstrip(), status >= 500)
                    declared = head.get("content-length", "")
                    if (
                        declared.isascii()
                        and declared.isdigit()
                        and int(declared) > policy.max_bytes
                    ):
                        raise FetchError(f"{first}: page too large ({int(declared) / 1e6:.0f} MB)")
                    decoder = _Decoder(head.get("content-encoding", ""), policy.max_bytes, first)
                    raw = 0
                    body = []
                    for chunk in response.iter_stream():
                        raw += len(chunk)
                        if raw > policy.max_bytes:
                            raise FetchError(
                                f"{first}: page too large (over {policy.max_bytes / 1e6:.0f} MB)"
                            )
                        body.append(decoder.feed(chunk))
                        deadline.left()
                    return Fetched(str(current), b"".join(body), head.get("content-type", ""), head)
            raise FetchError(f"{first}: too many redirects (a redirect loop?)")
    except FetchError:
        raise
    except httpcore.TimeoutException:
        raise FetchError(
            f"{first}: timed out (no complete answer within {policy.deadline:g} s)", transient=True
        ) from None
    except (httpcore.ConnectError, OSError) as exc:
        raise FetchError(f"{first}: could not fetch (connection failed: {exc})", True) from None
    except (httpcore.ProtocolError, httpcore.NetworkError) as exc:
        raise FetchError(f"{first}: could not fetch ({type(exc).__name__})", True) from None
    except httpcore.UnsupportedProtocol:
        raise FetchError(f"{first}: not an http(s) URL") from None
    except (ValueError, UnicodeError) as exc:  # a URL httpcore cannot use after all
        raise FetchError(f"{first}: not a valid URL ({type(exc).__name__})") from None


def _decode(body: bytes, content_type: str) -> str:
    match = re.search(r"charset=([\w-]+)", content_type, re.I)
    try:
        return body.decode(match.group(1) if match else "utf-8")
    except (LookupError, UnicodeDecodeError):
        return body.decode("utf-8", errors="replace")


def fetch_article(url: str, policy: FetchPolicy | None = None) -> RawArticle:
    """Fetch a page and extract its article text and metadata (trafilatura)."""
    got = fetch(url, policy)
    if b"\x00" in got.body[:4096]:
        raise FetchError(f"{_short(url)}: not a web page ({got.content_type or 'binary'})")
    article = parse_html(_decode(got.body, got.content_type), name=url, url=clean_url(got.url))
    article.source = clean_url(got.url)
    return article


@dataclass
class FeedEntry:
    key: str  # id or link: what marks the entry as seen
    link: str  # an http(s) URL, or "" when the feed gave none we would follow
    title: str
    published: str
    content: str  # HTML or text the feed itself carries, if any


def _http_link(link: str) -> str:
    try:
        return str(check_url(link.strip()))
    except FetchError:
        return ""


@dataclass
class FeedListing:
    title: str
    entries: list[FeedEntry]
    whole: bool  # well-formed to the end: what it does not list, the feed no longer lists


def parse_feed(body: bytes, url: str) -> FeedListing:
    """Title and entries of RSS or Atom; ``FetchError`` for anything else. Links that are not
    http(s) (``javascript:``, ``tg:``, ``file:`` …) are dropped here: never followed or
    shown. A feed cut off or broken after some entries gives those, not ``whole``."""
    import feedparser

    parsed = feedparser.parse(body)
    if not parsed.entries and not parsed.get("version"):
        if parsed.bozo:
            reason = str(parsed.get("bozo_exception", "")).splitlines()[0][:120]
            raise FetchError(f"{url}: not an RSS or Atom feed ({reason or 'malformed XML'})")
        raise FetchError(f"{url}: not an RSS or Atom feed")
    entries = []
    for e in parsed.entries:
        link = _http_link(str(e.get("link", "")))
        key = str(e.get("id") or e.get("link") or "")[:2000]
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
        title = one_line(str(e.get("title", "")), MAX_FIELD_CHARS["title"])
        entries.append(FeedEntry(key, link, title, published, str(content)))
    if parsed.bozo and not entries:
        reason = str(parsed.get("bozo_exception", "")).splitlines()[0][:120]
        raise FetchError(f"{url}: malformed feed XML ({reason or 'unreadable'})")
    # A declared encoding feedparser had to override (``us-ascii`` over UTF-8 text) is the one
    # fault after which the whole document was still read by the strict parser; but only as
    # UTF-8: a stray byte makes it fall back to windows-1252, which garbles non-ASCII keys.
    whole = not parsed.bozo or (
        isinstance(parsed.get("bozo_exception"), feedparser.CharacterEncodingOverride)
        and str(parsed.get("encoding", "")).lower() == "utf-8"
    )
    title = one_line(str(parsed.feed.get("title", "")), MAX_FIELD_CHARS["title"])
    return FeedListing(title or url, entries, whole)


def fetch_feed(url: str, policy: FetchPolicy | None = None) -> FeedListing:
    return parse_feed(fetch(url, policy).body, url)
