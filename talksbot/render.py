"""Every piece of Telegram HTML talksbot sends: answers, pushes, digests, /sources, /latest.

Plain text is escaped here and nowhere else; a message is built from whole blocks (``fit``), so
it is never cut inside a tag.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

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

MAX_MESSAGE = 4096


def esc(text: str) -> str:
    return html.escape(text, quote=False)


def cut(text: str, limit: int) -> str:
    """Plain text shortened at a word boundary (escaping comes after, so no tag is ever cut)."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - 1)].rsplit(" ", 1)[0].rstrip(",;:") + "…"


def fit(blocks: Iterable[str], limit: int = MAX_MESSAGE) -> str:
    """Whole blocks joined while they fit; a message is never cut inside a tag."""
    out: list[str] = []
    size = 0
    for block in blocks:
        extra = len(block) + (2 if out else 0)
        if size + extra > limit:
            break
        out.append(block)
        size += extra
    return "\n\n".join(out)


def plain(text: str, limit: int = 4000) -> str:
    """A plain-text message (a summary, an error) as HTML."""
    return esc(cut(text, limit))


def link(url: str, label_html: str) -> str:
    return f'<a href="{html.escape(url)}">{label_html}</a>' if url else label_html


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
    lines = ["<b>Newest articles</b>"]
    for a in articles:
        title = link(a.url, esc(cut(a.title, 150)))
        lines.append(f"• {title}\n  {source_line(a.outlet, a.published)}")
    return fit(["\n".join(lines)])


def subscriptions_html(subs: list[tuple[int, str]]) -> str:
    lines = ["<b>Subscriptions</b>"] + [
        f"• {esc(topic) if topic else 'all new coverage'}" for _, topic in subs
    ]
    return "\n".join(lines)


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
        cite = f' <a href="{html.escape(fragment)}">source</a>' if fragment else ""
        lines.append(f"<blockquote>{quote}</blockquote>{cite}")
    return "\n".join(lines)[:4000]


def digest_html(rows: list[Delivery]) -> str:
    """One message listing a digest chat's new stories."""
    lines = [f"🗞 <b>{len(rows)} new stor{'y' if len(rows) == 1 else 'ies'}</b>"]
    for d in rows:
        b = d.body
        title = link(b["url"], html.escape(b["title"][:150], quote=False))
        meta = html.escape(f"{b['outlet'] or 'unknown outlet'} · {b['published'] or 'undated'}")
        lines.append(f"• {title}\n  {meta}")
    return "\n".join(lines)[:4000]
