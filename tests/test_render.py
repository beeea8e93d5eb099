"""One renderer: messages of whole blocks, never empty, never tag-broken, never too long."""

from __future__ import annotations

import pytest

from index.store import ArticleRow
from talksbot.render import (
    MAX_MESSAGE,
    fit,
    latest_html,
    link,
    paginate,
    push_html,
    shorten_html,
    sources_html,
)
from tests.harness.chat import check_html
from tests.harness.telegram_rules import check_text


def test_a_block_too_long_for_a_message_is_shortened_with_tags_closed() -> None:
    block = "<b>[1]</b> <i>Title</i>\n<blockquote>" + "peace &amp; talks " * 600 + "</blockquote>"
    text = fit([block])
    assert text and len(text) <= MAX_MESSAGE
    assert text.endswith("…</blockquote>") and "&amp" in text
    check_html(text)
    assert not text.rsplit("…", 1)[0].endswith("&amp")  # never inside an entity


@pytest.mark.parametrize("limit", [20, 37, 64, 100, 500])
def test_shorten_html_at_any_limit_stays_balanced(limit: int) -> None:
    block = '<b>x</b> <a href="https://e.org/a?b=1&amp;c=2">' + "word " * 100 + "</a> tail"
    text = shorten_html(block, limit)
    assert len(text) <= limit
    check_html(text)


def test_paginate_keeps_blocks_whole_and_covers_all_of_them() -> None:
    blocks = [f"<b>{i}</b> " + "x" * 900 for i in range(10)]
    pages = paginate(blocks)
    assert len(pages) == 3 and all(len(p) <= MAX_MESSAGE for p in pages)
    assert "\n\n".join(pages) == "\n\n".join(blocks)
    assert paginate([]) == [] and fit([]) == ""


def test_emoji_count_as_telegram_counts_them() -> None:
    """Flags and emoji are two UTF-16 units a code point: 3,000 flags are 3,000 characters to
    Python but 12,000 units to Telegram, which refuses more than 4,096."""
    flags = "<b>🇺🇦</b> " + "🇺🇦" * 1500
    for text in [fit([flags]), *paginate([flags, "🕊 " * 1500, "peace"])]:
        check_html(text)
        assert check_text(text, "HTML") is None
    assert len(paginate(["🕊" * 1500, "🕊" * 1500])) == 2  # 3,000 units each: one per message


def test_latest_with_a_huge_title_is_never_empty() -> None:
    rows = [ArticleRow(1, "https://e.org/1", "T" * 9000, "Outlet", "2026-02-20", "")]
    rows.append(ArticleRow(2, "https://e.org/2", "Short title", "Outlet", "2026-02-19", ""))
    text = latest_html(rows)
    assert "Short title" in text and len(text) <= MAX_MESSAGE
    check_html(text)


def test_sources_with_an_enormous_outlet_list_is_never_empty() -> None:
    coverage = {"articles": 1, "outlets": 1, "outlet_names": ["x" * 5000]}
    text = sources_html(coverage)
    assert text and len(text) <= MAX_MESSAGE
    check_html(text)


@pytest.mark.parametrize("url", ["javascript:alert(1)", "tg://resolve?domain=x", "data:x", ""])
def test_links_only_for_http_urls(url: str) -> None:
    assert link(url, "label") == "label"
    body = {
        "title": "T",
        "url": url,
        "outlet": "O",
        "published": "",
        "passages": [{"text": "A sentence."}],
    }
    text = push_html(body)
    assert "href" not in text
    check_html(text)


def test_a_push_with_long_passages_is_cut_between_tags() -> None:
    body = {
        "title": "T" * 300,
        "url": "https://e.org/" + "p" * 3000,
        "outlet": "O",
        "published": "2026-02-20",
        "also": ["A", "B"],
        "passages": [{"text": "Quote & more " * 60}, {"text": "Second <quote> " * 60}],
    }
    text = push_html(body)
    assert len(text) <= MAX_MESSAGE
    check_html(text)


def test_a_long_subscription_list_fits_one_message() -> None:
    from talksbot.render import subscriptions_html

    text = subscriptions_html([(i, "ceasefire monitoring " * 5 + str(i)) for i in range(60)])
    assert len(text) <= MAX_MESSAGE and text.startswith("<b>Subscriptions</b>")
    check_html(text)
