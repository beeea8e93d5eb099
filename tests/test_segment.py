from index.segment import BOILERPLATE, HEADING, SENTENCE, clean_line, segment, split_sentences


def test_abbreviations_do_not_split_sentences() -> None:
    text = (
        "The U.S. and European allies met Mr. Lavrov at 4.50am on Feb. 3 in Geneva. "
        "Talks resumed on Tuesday."
    )
    assert split_sentences(text) == [
        "The U.S. and European allies met Mr. Lavrov at 4.50am on Feb. 3 in Geneva.",
        "Talks resumed on Tuesday.",
    ]


def test_sentences_are_exact_slices_of_the_source() -> None:
    text = "He said: “We are ready.”  Then he left,   quietly. A third one?"
    for sentence in split_sentences(text):
        assert sentence in text


def test_headings_and_one_line_paragraphs_stay_units() -> None:
    body = (
        "The first paragraph has enough words to be prose about the talks in Geneva.\n\n"
        "Moscow refuses to ease demands\n\n"
        "The second paragraph also has enough words to count as a real sentence here.\n"
    )
    units = segment(body)
    assert [(u.kind, u.text) for u in units] == [
        (SENTENCE, "The first paragraph has enough words to be prose about the talks in Geneva."),
        (HEADING, "Moscow refuses to ease demands"),
        (SENTENCE, "The second paragraph also has enough words to count as a real sentence here."),
    ]
    assert [u.para for u in units] == [0, 1, 2]


def test_menus_share_bars_cookie_text_and_link_lists_are_boilerplate() -> None:
    body = "\n".join(
        [
            "Home",
            "World",
            "Politics",
            "Sport",
            "Subscribe",
            "Negotiators met for six hours in Geneva on Thursday without a breakthrough.",
            "The next round is expected in Abu Dhabi in early March, officials said.",
            "Share this article",
            "Facebook",
            "Twitter",
            "WhatsApp",
            "We use cookies to improve your experience. Accept all cookies to continue.",
            "- [Privacy policy](https://example.org/privacy)",
            "- [Terms of use](https://example.org/terms)",
            "Read more: other stories you may like…",
        ]
    )
    units = segment(body)
    citable = [u.text for u in units if u.kind != BOILERPLATE]
    assert citable == [
        "Negotiators met for six hours in Geneva on Thursday without a breakthrough.",
        "The next round is expected in Abu Dhabi in early March, officials said.",
    ]


def test_repeated_lines_are_cited_once() -> None:
    line = "Russia launched 420 drones and 39 missiles at Ukraine overnight, officials said."
    units = segment(f"{line}\n{line}\n")
    assert [u.kind for u in units] == [SENTENCE, BOILERPLATE]


def test_markdown_syntax_is_removed_but_link_text_kept() -> None:
    assert (
        clean_line("## The [Geneva talks](https://x.org/a) were **tense**")
        == "The Geneva talks were tense"
    )
    assert clean_line("- item with <https://x.org/b> autolink") == "item with autolink"


def test_quote_blocks_underscore_emphasis_and_invisible_characters_are_removed() -> None:
    # A pull quote as Markdown writes it reads as plain text, as on the page.
    assert clean_line("> _All three sides agreed that the Americans will lead._") == (
        "All three sides agreed that the Americans will lead."
    )
    assert clean_line("> **_Hong Kong functions as a hub._**") == "Hong Kong functions as a hub."
    assert clean_line(">> nested") == "nested"
    # Zero-width spaces and soft hyphens inside words would break search and the quote's link.
    assert clean_line("Luk\u200boil sold its as\u00adsets\ufeff") == "Lukoil sold its assets"
    # Underscores inside words and URLs, ">" inside a line or before a figure, are text.
    assert clean_line("the snake_case_name and x > y") == "the snake_case_name and x > y"
    assert clean_line(">50% of Ukrainians reject it") == ">50% of Ukrainians reject it"
    for kept in ("https://x.example/_private_/page?_t=1", "see snake_case_name here"):
        assert clean_line(kept) == kept
    assert clean_line("_Northern Axis_(Russian objective: buffer zones)") == (
        "Northern Axis(Russian objective: buffer zones)"
    )
    assert clean_line("an aside (_in italics_) here") == "an aside (in italics) here"


def test_hard_wrapped_prose_is_joined() -> None:
    body = (
        "Negotiators explored the viability of a demilitarised zone in the\n"
        "Donbas region, officials said on Friday.\n"
    )
    units = segment(body)
    assert [u.kind for u in units] == [SENTENCE]
    assert units[0].text.endswith("zone in the Donbas region, officials said on Friday.")


def test_weather_widget_islanded_in_menus_is_boilerplate() -> None:
    body = "\n".join(
        [
            "Home",
            "News",
            "Weather",
            "Clear to partly cloudy. Low 57F. Winds SSE at 5 to 10 mph.",
            "Tonight",
            "Sports",
            "Video",
        ]
    )
    assert all(u.kind == BOILERPLATE for u in segment(body))


def test_a_giant_unpunctuated_page_is_stored_in_bounded_pieces() -> None:
    """Five hundred kilobytes without a full stop (or a space) is not one "sentence"."""
    from index.segment import MAX_UNIT_CHARS

    words = " ".join(f"talks{i}" for i in range(60_000))
    body = f"{words}\n\n{'x' * 9_000}\n\nThe talks in Geneva ended without a deal."
    units = segment(body)
    assert all(len(u.text) <= MAX_UNIT_CHARS for u in units)
    texts = [u.text for u in units]
    assert " ".join(texts[: len(texts) - 6]) == words  # nothing lost, nothing reordered
    assert "".join(texts[-6:-1]) == "x" * 9_000
    assert texts[-1] == "The talks in Geneva ended without a deal."


def test_prose_citing_its_sources_in_footnote_links_stays_citable_and_clean() -> None:
    """ISW's reports link every sentence to an endnote: ``[[ii]](url)``. The links go, the
    prose stays prose (it was boilerplate while two URLs made a line "link-heavy"), and a
    reference line that is only URLs stays boilerplate."""
    note = "https://criticalthreats.org/analysis/<#_edn2857074cd291a8a37b94fc0b258232552>"
    body = (
        f"Ukrainian forces have liberated multiple settlements in recent weeks.[[ii]]({note}) "
        "ISW has observed evidence that Ukrainian forces advanced near Novopavlivka."
        f"[[iii]]({note})\n\n"
        "https://t.me/example/1 ; https://x.com/example/status/2 ; https://t.me/example/3\n"
    )
    units = segment(body)
    assert [(u.kind, u.text) for u in units] == [
        (SENTENCE, "Ukrainian forces have liberated multiple settlements in recent weeks."),
        (SENTENCE, "ISW has observed evidence that Ukrainian forces advanced near Novopavlivka."),
        (
            BOILERPLATE,
            "https://t.me/example/1 ; https://x.com/example/status/2 ; https://t.me/example/3",
        ),
    ]
    # A link whose text holds brackets keeps that text; only a bare footnote mark is dropped.
    assert clean_line("see [[the report]](https://x.org/r) and [[12]](https://x.org/n)") == (
        "see [the report] and"
    )


def test_bracket_floods_from_a_hostile_page_are_boilerplate() -> None:
    """Lines built to make a link pattern backtrack ("[x](" and "[" repeated: seconds a line
    before the link pattern's repeats were made possessive) are read once and dropped."""
    sentence = "Negotiators met for six hours in Geneva on Thursday without a breakthrough."
    body = "\n\n".join([sentence, "[x](" * 30_000, "[" * 50_000, "[[a]](" * 20_000, sentence])
    units = segment(body)
    assert all(u.kind == BOILERPLATE for u in units if "[" in u.text)
    assert [u.text for u in units if "[" not in u.text] == [sentence, sentence]


def test_lines_of_footnote_marks_read_as_blank_lines() -> None:
    """An extraction that puts each endnote mark on a line of its own ("[v]", "[vi]") made the
    report's lead sentences look islanded in menu-like runs of short lines: boilerplate."""
    body = "\n".join(
        [
            "Russia launched another massive missile and drone strike against Ukraine overnight.",
            "[v]",
            "[vi] [vii]",
            "The US and Ukraine continue bilateral engagements as part of the peace talks.",
            "[ix]",
            "[x]",
            "China remains a critical enabler of Russia's war in Ukraine, officials said.",
        ]
    )
    assert [(u.kind, u.para) for u in segment(body)] == [
        (SENTENCE, 0),
        (SENTENCE, 1),
        (SENTENCE, 2),
    ]


def test_news_about_us_sponsored_talks_is_not_an_advert() -> None:
    sentence = (
        "Two-thirds of respondents said they did not believe the US-sponsored peace "
        "negotiations would lead to lasting peace."
    )
    other = "Zelenskyy favours freezing the current line of contact as a basis for a ceasefire."
    units = segment(f"{other}\n\n{sentence}\n\n{other} He said so on Tuesday.\n\nSponsored\n")
    assert [u.kind for u in units if u.text == sentence] == [SENTENCE]


def test_a_sentence_broken_before_its_figure_is_one_unit() -> None:
    """A figure block breaks its sentence before the number; the two lines are one sentence
    (the answer to "how many civilians were killed" is in neither half alone). A figure line
    that ends no sentence ("Over" / "12.7 million people …") is left as it was."""
    body = "\n".join(
        [
            "Civilian casualties rose by 31% compared to 2024, and since February 2022, at least",
            "14,383 civilian deaths and 37,541 injuries have been documented.",
            "Over",
            "12.7 million people inside Ukraine required humanitarian assistance",
        ]
    )
    texts = [u.text for u in segment(body)]
    assert texts[0] == (
        "Civilian casualties rose by 31% compared to 2024, and since February 2022, at least "
        "14,383 civilian deaths and 37,541 injuries have been documented."
    )
    assert "12.7 million people inside Ukraine required humanitarian assistance" in texts


def test_only_numbers_and_letters_of_notes_count_as_footnote_marks() -> None:
    """A bracketed word is text, not an endnote mark: "[[Kremlin]](url)" in prose, a menu of
    "[[Home]](/)" links and a transcript's "[Applause]" line all stay in the units."""
    assert clean_line("The [[Kremlin]](https://k.example/a) said talks would resume.") == (
        "The [Kremlin] said talks would resume."
    )
    menu = "[[Home]](/) [[News]](/news) [[World]](/world) [[Opinion]](/opinion)"
    assert [(u.kind, u.text) for u in segment(menu)] == [
        (BOILERPLATE, "[Home] [News] [World] [Opinion]")
    ]
    assert [u.text for u in segment("[Applause]\n\n[UPDATE]")] == ["[Applause]", "[UPDATE]"]
    # Endnote marks proper (numbers, roman numerals, single letters) still go.
    assert clean_line("Talks resumed.[[12]](u) Then[[xiv]](v) they[[IV]](w) ended.[[a]](x)") == (
        "Talks resumed. Then they ended."
    )
    assert segment("[12] [xiv] [b]") == []


def test_a_flood_of_unclosed_autolinks_is_read_once() -> None:
    """A line of "<http://<http://…" without a space: every "<" scanned the rest of the line for
    its ">" (a minute for this line before the URL part stopped at the next "<")."""
    sentence = "Negotiators met for six hours in Geneva on Thursday without a breakthrough."
    flood = "<http://" * 25_000
    units = segment("\n\n".join([sentence, flood, sentence]))
    assert [u.text for u in units if "<" not in u.text] == [sentence, sentence]
    assert "".join(u.text for u in units if "<" in u.text) == flood  # kept, in pieces
    assert clean_line("See <https://example.org/a?b=1> and <https://x.example>.") == "See and ."


def test_a_flood_of_comment_words_is_read_once() -> None:
    """The phrase "comments … policy" (a comment-policy notice) spans a short line, not a page: a
    200 KB "comment.comment.…" line scanned to its end once per "comment" (a minute and more)."""
    flood = "comment." * 25_000
    units = segment(f"{flood}\n\nRead our comments policy.")
    assert "".join(u.text for u in units[:-1]) == flood
    assert (units[-1].kind, units[-1].text) == (BOILERPLATE, "Read our comments policy.")


def test_thousands_of_hard_wrapped_lines_are_joined_in_one_pass() -> None:
    """Each line joined to a paragraph re-read the whole paragraph (its end, its words): 5,000
    wrapped lines, each followed by an endnote mark's line, took minutes."""
    line = "the delegations said that they would meet again in"
    body = "\n".join([line, "[v]"] * 5_000 + ["due course."])
    units = segment(body)
    assert {u.para for u in units} == {0}
    words = " ".join([*[line] * 5_000, "due course."]).split()
    assert " ".join(u.text for u in units).split() == words


def test_a_linked_image_reads_as_its_alt_text() -> None:
    """A thumbnail linking to a story, "[![alt](img)](url)": the link's text is an image, whose
    syntax and address were quoted as they stood."""
    line = "[![Witkoff arrives in Geneva](https://img.example/a.jpg)](https://example.org/s) Talks"
    assert clean_line(line) == "Witkoff arrives in Geneva Talks"


def test_a_footnote_mark_line_inside_a_wrapped_sentence_is_skipped() -> None:
    body = (
        "Negotiators from both sides met for six hours in\n[v]\nGeneva on Thursday, officials said."
    )
    assert [u.text for u in segment(body)] == [
        "Negotiators from both sides met for six hours in Geneva on Thursday, officials said."
    ]


def test_endnote_marks_after_a_full_stop_end_the_sentence() -> None:
    """Reports number their endnotes right after the full stop ("control.1 Western …",
    "negotiations.[7] Russia …"); syntok does not split there, so three sentences were one unit
    of 850 characters, over the quote limit. The mark goes and the sentences part. Numbers that
    only look like marks stay: a version, a frequency, a file size, a decimal at a line's end."""
    body = (
        "The talks produced no breakthrough on political control.1 Western assessments remain "
        "highly confident that the Kremlin's aims are unchanged.2 Consequently, concessions "
        "would not satisfy it.2\n\n"
        "Russia launches larger strike packages around peace negotiations.[7][8] Russia "
        "notably launched one on the eve of talks in Geneva.[9]\n\n"
        "Russia seized 6,700 square kilometers throughout 2025.24 However, the claim is "
        "inflated.\n\n"
        "It relies on an Inertial Navigation System (INS).32 While vulnerable, it is cheap.\n"
    )
    assert [u.text for u in segment(body)] == [
        "The talks produced no breakthrough on political control.",
        "Western assessments remain highly confident that the Kremlin's aims are unchanged.",
        "Consequently, concessions would not satisfy it.",
        "Russia launches larger strike packages around peace negotiations.",
        "Russia notably launched one on the eve of talks in Geneva.",
        "Russia seized 6,700 square kilometers throughout 2025.",
        "However, the claim is inflated.",
        "It relies on an Inertial Navigation System (INS).",
        "While vulnerable, it is cheap.",
    ]
    for kept in (
        "Licensed under CC BY 4.0 International.",
        "Listen on 94.1 FM in Fargo.",
        "Download the report (PDF | 10.81 MB | English)",
        "Growth was 2.5",
        "Troops gathered near the border[5] that week.",
    ):
        assert clean_line(kept) == kept


def test_an_advert_label_inside_a_sentence_and_alert_promos_stay_out_of_prose() -> None:
    body = (
        "The battle for Pokrovsk appears to have ended in victory for Russia in recent weeks,\n"
        "Advertisement\n"
        "but the campaign took two years for a town with a pre-war population of 60,000.\n\n"
        "Get instant alerts and updates based on your interests. Be the first to know when big "
        "stories happen.\n"
        "But Zelenskyy said it was not fair to press Ukraine alone for concessions.\n"
    )
    units = segment(body)
    assert units[0].kind == SENTENCE
    assert units[0].text == (
        "The battle for Pokrovsk appears to have ended in victory for Russia in recent weeks, "
        "but the campaign took two years for a town with a pre-war population of 60,000."
    )
    promo = [u for u in units if "first to know" in u.text or "instant alerts" in u.text]
    assert promo and {u.kind for u in promo} == {BOILERPLATE}
    # The word stays where it is prose: a line of its own between sentences, or in a sentence.
    ad = segment("Talks resumed.\n\nAdvertisement\n\nThe delegations met for five hours.")
    assert [u.text for u in ad][1] == "Advertisement"
    assert segment("The ad ran for a week, officials said.")[0].kind == SENTENCE


def test_control_characters_never_reach_a_quote() -> None:
    """A terminal escape in a page or file is no text: quoted by `talksbot ask`, it would drive
    the operator's terminal."""
    units = segment(
        "Talks\x07 resumed in Geneva \x1b]0;owned\x07 after a long pause between the rounds. "
        "The \u202esretueR\u202c report was read as written by \u2066Reuters\u2069 itself."
    )
    text = " ".join(u.text for u in units)
    assert not any(ch in text for ch in "\x07\x1b\u202e\u202c\u2066\u2069") and "Geneva" in text
    # A mark inside a word is dropped, not made a space: the quote still matches the page.
    assert clean_line("Kyiv\u200e's envoy met \u2066Witkoff\u2069.") == "Kyiv's envoy met Witkoff."
    assert clean_line("tab\there, line\x0bfeed\x7f") == "tab here, line feed"
