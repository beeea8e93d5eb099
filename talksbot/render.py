"""Every piece of Telegram HTML talksbot sends: answers, pushes, digests, /sources, /latest.

Plain text is escaped here and nowhere else. A message is built from whole blocks (``fit``,
``paginate``): never empty, never cut inside a tag or an entity, never over Telegram's 4,096
characters; a block too long for a message on its own is shortened with its tags closed
(``shorten_html``). Links go out only for http(s) URLs.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence

from index.fetch import is_url
from index.store import ArticleRow
from index.store_pushes import Delivery
from retrieval.answer import (
    ABSTAINED,
    ANSWERED,
    Answer,
    Citation,
    describe_coverage,
    text_fragment_link,
)

MAX_MESSAGE = 4096  # Telegram counts UTF-16 code units: see ``width``


def width(text: str) -> int:
    """Length as Telegram counts it, in UTF-16 code units: an emoji or a flag outside the Basic
    Multilingual Plane counts two (or four), so ``len`` would let such text run over."""
    return len(text.encode("utf-16-le")) // 2


def esc(text: str) -> str:
    return html.escape(text, quote=False)


def cut(text: str, limit: int) -> str:
    """Plain text shortened at a word boundary (escaping comes after, so no tag is ever cut)."""
    if width(text) <= limit:
        return text
    size, end = 0, 0
    for end, char in enumerate(text):  # noqa: B007 (end is used after the loop)
        size += width(char)
        if size > limit - 1:
            break
    return text[:end].rsplit(" ", 1)[0].rstrip(",;:") + "…"


_PIECE = re.compile(r"<[^>]*>|&#?\w+;|[^<&]+|[<&]")
_TAG = re.compile(r"<(/?)([a-z-]+)")


def shorten_html(block: str, limit: int) -> str:
    """``block`` cut to at most ``limit`` characters between whole tags and entities, with "…"
    and every tag still open closed (Telegram refuses unbalanced HTML)."""
    if width(block) <= limit:
        return block
    out: list[str] = []
    size = 0
    open_tags: list[str] = []

    def closing() -> int:
        return sum(len(t) + 3 for t in open_tags) + 1  # "</t>" each, and "…"

    for piece in _PIECE.findall(block):
        tag = _TAG.match(piece) if piece.startswith("<") and len(piece) > 1 else None
        if tag:
            if size + width(piece) + closing() + len(tag[2]) + 3 > limit:
                break
            if tag[1]:
                if open_tags and open_tags[-1] == tag[2]:
                    open_tags.pop()
            elif not piece.endswith("/>"):
                open_tags.append(tag[2])
            out.append(piece)
            size += width(piece)
            continue
        units = [piece] if piece.startswith("&") else list(piece)
        for unit in units:
            if size + width(unit) + closing() > limit:
                break
            out.append(unit)
            size += width(unit)
        else:
            continue
        break
    return "".join(out).rstrip() + "…" + "".join(f"</{t}>" for t in reversed(open_tags))


def paginate(blocks: Iterable[str], limit: int = MAX_MESSAGE) -> list[str]:
    """Messages of whole blocks (blank-line separated), each within ``limit``; a block too long
    on its own is shortened. Never an empty message: no blocks give no messages."""
    pages: list[list[str]] = []
    size = 0
    for block in blocks:
        block = shorten_html(block, limit)
        if not block:
            continue
        units = width(block)
        if pages and size + 2 + units <= limit:
            pages[-1].append(block)
            size += 2 + units
        else:
            pages.append([block])
            size = units
    return ["\n\n".join(page) for page in pages]


def fit(blocks: Iterable[str], limit: int = MAX_MESSAGE) -> str:
    """The first message's worth of whole blocks (see ``paginate``); "" only for no blocks."""
    pages = paginate(blocks, limit)
    return pages[0] if pages else ""


def plain(text: str, limit: int = 4000) -> str:
    """A plain-text message (a summary, an error) as HTML."""
    return esc(cut(text, limit))


def link(url: str, label_html: str) -> str:
    """A link for http(s) URLs only (never ``javascript:``, ``tg:`` …); else the bare label."""
    if not is_url(url):
        return label_html
    return f'<a href="{html.escape(url)}">{label_html}</a>'


def source_line(outlet: str, published: str, sep: str = " · ") -> str:
    return f"{esc(outlet or 'unknown outlet')}{sep}{esc(published or 'undated')}"


# -- answers ---------------------------------------------------------------------------------
def question_header(question: str) -> str:
    return f"🔎 <b>{esc(cut(question, 300))}</b>"


def citation_html(n: int, c: Citation, quote: str | None = None) -> str:
    source = link(c.link or c.url, esc(c.outlet or "unknown outlet"))
    date = esc(c.published or "undated")
    return (
        f"<b>[{n}]</b> <i>{esc(cut(c.title, 150))}</i>\n"
        f"<blockquote>{esc(quote if quote is not None else c.quote)}</blockquote>\n"
        f"{source} · {date}"
    )


def answer_html(answer: Answer, first_number: int = 1) -> str:
    if answer.status == ANSWERED:
        blocks = [question_header(answer.question)] + [
            citation_html(first_number + i, c) for i, c in enumerate(answer.citations)
        ]
        return fit(blocks)
    if answer.status == ABSTAINED:
        blocks = [esc(answer.message), esc(describe_coverage(answer.coverage))]
        if answer.nearest:
            lines = ["Nearest articles:"]
            for a in answer.nearest:
                title = link(a.url, esc(cut(a.title, 120)))
                lines.append(
                    f"• {title} ({esc(a.outlet or 'unknown outlet')}, "
                    f"{esc(a.published or 'undated')})"
                )
            blocks.append("\n".join(lines))
        return fit(blocks)
    return esc(answer.message)


def context_html(
    question: str,
    citations: Sequence[Citation],
    first_number: int,
    sentence_id: int,
    context: list[str],
) -> str:
    """A page of citations with the sentences around one of them quoted in its place."""
    blocks = [question_header(question)]
    for i, c in enumerate(citations, first_number):
        quote = cut(" ".join(context), 2500) if c.sentence_id == sentence_id else None
        blocks.append(citation_html(i, c, quote))
    return fit(blocks)


def inline_html(question: str, n: int, c: Citation) -> str:
    return fit([question_header(question), citation_html(n, c)])


# -- coverage --------------------------------------------------------------------------------
def welcome_html(coverage: dict) -> str:
    return (
        "I answer questions about news coverage of the Russia–Ukraine peace talks with quotes "
        "from the articles, each linked to its source. I never make things up: if the coverage "
        f"does not say, I tell you.\n\n{esc(describe_coverage(coverage))}\n\nTry one:"
    )


def help_html(username: str, commands: Iterable[tuple[str, str]]) -> str:
    """How to ask, then the commands of this kind of chat (from the one command table)."""
    listing = "\n".join(f"/{name} — {esc(description)}" for name, description in commands)
    return (
        "<b>Ask a question</b> about the peace talks and the war as the news covered them.\n"
        "• Private chat: just write your question.\n"
        "• Groups: <code>/ask your question</code>, mention me, or reply to my message.\n"
        f"• Any chat: type <code>@{esc(username or 'bot')} question</code>.\n\n"
        "Each answer quotes the articles, with outlet, date and a link to the passage. "
        "/sources lists what I have read, /latest the newest articles."
        + (f"\n\n<b>Commands</b>\n{listing}" if listing else "")
    )


def sources_html(coverage: dict) -> str:
    names = ", ".join(coverage.get("outlet_names", [])[:40])
    more = len(coverage.get("outlet_names", [])) - 40
    text = esc(describe_coverage(coverage))
    if names:
        text += f"\n\n<b>Outlets:</b> {esc(names)}" + (f" and {more} more" if more > 0 else "")
    return fit([text])


def latest_html(articles: list[ArticleRow]) -> str:
    blocks = ["<b>Newest articles</b>"]
    for a in articles:
        title = link(a.url, esc(cut(a.title, 150)))
        blocks.append(f"• {title}\n  {source_line(a.outlet, a.published)}")
    return fit(blocks)


def subscriptions_html(subs: list[tuple[int, str]]) -> str:
    lines = ["<b>Subscriptions</b>"] + [
        f"• {esc(cut(topic, 200)) if topic else 'all new coverage'}" for _, topic in subs
    ]
    return fit(["\n".join(lines)])


# -- pushes ----------------------------------------------------------------------------------
def push_html(body: dict) -> str:
    """One new story: headline, outlet and date, other outlets, the topic, quoted passages."""
    title = esc(body["title"][:200])
    head = link(body["url"], title)
    lines = [
        f"🆕 <b>{head}</b>",
        f"{esc(body['outlet'] or 'unknown outlet')} · {esc(body['published'] or 'undated')}",
    ]
    if body.get("also"):
        lines.append("Also reported by " + esc(", ".join(body["also"][:5])))
    if body.get("topic"):
        lines.append(f"Topic: <i>{esc(body['topic'])}</i>")
    for p in body["passages"]:
        quote = esc(p["text"][:400])
        fragment = text_fragment_link(body["url"], p["text"][:400])
        cite = " " + link(fragment, "source") if link(fragment, "") else ""
        lines.append(f"<blockquote>{quote}</blockquote>{cite}")
    return shorten_html("\n".join(lines), MAX_MESSAGE)


def _digest_item(d: Delivery) -> str:
    b = d.body
    title = link(b["url"], html.escape(b["title"][:150], quote=False))
    meta = html.escape(f"{b['outlet'] or 'unknown outlet'} · {b['published'] or 'undated'}")
    return f"• {title}\n  {meta}"


def digest_pages(
    rows: list[Delivery], limit: int = MAX_MESSAGE
) -> list[tuple[list[Delivery], str]]:
    """A digest chat's new stories as messages of whole items, each under ``limit``, with the
    rows each message lists (each message's stories are marked when it is accepted)."""
    pages: list[tuple[list[Delivery], list[str]]] = []
    size = limit
    for d in rows:
        item = shorten_html(_digest_item(d), limit - 60)  # (a giant URL, say)
        if size + 1 + width(item) > limit - 40:  # room for the header line
            pages.append(([], []))
            size = 0
        pages[-1][0].append(d)
        pages[-1][1].append(item)
        size += 1 + width(item)
    count = f"{len(rows)} new stor{'y' if len(rows) == 1 else 'ies'}"
    out = []
    for n, (page, items) in enumerate(pages, 1):
        part = f" ({n}/{len(pages)})" if len(pages) > 1 else ""
        out.append((page, "\n".join([f"🗞 <b>{count}{part}</b>", *items])))
    return out
