import os
from pathlib import Path

import pytest

from index.loaders import (
    IngestError,
    canonical_url,
    clean_url,
    iter_article_files,
    load_file,
    page_outlet,
    parse_html,
)
from tests.harness.data import CORPUS


def test_markdown_front_matter_is_read() -> None:
    a = load_file(CORPUS / "geneva-talks.md")
    assert a.title == "Geneva round ends without a deal on the Donbas"
    assert a.url == "https://www.example-news.org/world/2026/02/18/geneva-round-ends/"
    assert a.published == "2026-02-18"
    assert a.outlet == "example-news.org"
    assert "InterContinental" in a.text and "title:" not in a.text


def test_html_main_text_and_metadata_via_trafilatura() -> None:
    a = load_file(CORPUS / "energy-truce.html")
    assert a.title == "Local truce lets engineers repair nuclear plant power line"
    assert a.outlet == "Atomic Watch"
    assert a.published == "2026-02-20"
    assert a.url == "https://atomic-watch.example/news/znpp-truce"
    assert "backup power line" in a.text
    assert "Subscribe" not in a.text and "All rights reserved" not in a.text


@pytest.mark.parametrize(
    ("name", "url", "outlet"),
    [
        ("Reuters", "https://www.reuters.com/world/x", "Reuters"),
        ("BBC News", "https://www.bbc.co.uk/news/x", "BBC News"),
        ("The Guardian", "https://www.theguardian.com/x", "The Guardian"),
        ("Reuters", "https://reuters.example-blog.com/x", "reuters.example-blog.com"),
        ("Reuters", "https://notreuters.com/x", "notreuters.com"),
        ("Reuters", "http://127.0.0.1:8080/x", "127.0.0.1:8080"),
        ("", "https://www.kyivindependent.com/x", "kyivindependent.com"),
        ("Sky News", "https://news.sky.com/x", "Sky News"),
        ("The Washington Post", "https://www.washingtonpost.com/x", "The Washington Post"),
        # A domain that is only the first word of a famous name is not that outlet.
        ("The Washington Post", "https://the.com/x", "the.com"),
        ("Financial Times", "https://financial.xyz/x", "financial.xyz"),
        ("Kyiv Post", "https://kyiv.info/x", "kyiv.info"),
        ("New York Times", "https://newyork.io/x", "newyork.io"),
        ("Wall Street Journal", "https://wall.st/x", "wall.st"),
    ],
)
def test_a_page_is_cited_under_its_own_name_only_on_its_own_site(
    name: str, url: str, outlet: str
) -> None:
    assert page_outlet(name, url) == outlet


@pytest.mark.parametrize(
    ("title", "first_line", "expected"),
    [
        # Only the section as the title, the headline in the page's title line after it.
        ("Opinion", "Opinion | The shadow war that is strengthening Europe - The Post", None),
        ("World", "World | Talks in Geneva end early as delegations leave | Wire", None),
        # The title line adds only the site, or the title is a headline already: kept.
        ("Ukraine emergency", "Ukraine emergency | UNHCR US", "Ukraine emergency"),
        ("Ukraine", "Ukraine - European Civil Protection", "Ukraine"),
        ("Opinion", "Opinion | Too short - The Post", "Opinion"),
        (
            "Talks end early",
            "Talks end early | Russia-Ukraine war news live updates - Wire",
            "Talks end early",
        ),
    ],
)
def test_a_section_name_as_title_gives_way_to_the_headline(
    tmp_path: Path, title: str, first_line: str, expected: str | None
) -> None:
    f = tmp_path / "a.md"
    f.write_text(f'---\ntitle: "{title}"\n---\n\n{first_line}\nSkip to main content\nText.\n')
    if expected is None:  # section | headline | site
        expected = first_line.split(" | ", 1)[1].rsplit(" - ", 1)[0].rsplit(" | ", 1)[0]
    assert load_file(f).title == expected


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        ("2026-02-18", "2026-02-18"),
        ("'2026-02-18T10:30:00Z'", "2026-02-18"),
        ("Nov 23, 2025", "2025-11-23"),
        ("23 November 2025 10:00 GMT", "2025-11-23"),
        # Not a full date: undated, rather than a day made up (or text compared as a date).
        ("Friday", ""),
        ("Feb 2026", ""),
        ("sometime last week", ""),
        ("'2026-02-30'", ""),
        ("'0001-01-01'", ""),  # no news article's date, nor 9999-12-31
        ("'9999-12-31'", ""),
        ("3/4/5", ""),  # which century?
        ("23 Nov 2025 10:00 EST", "2025-11-23"),
    ],
)
def test_publication_dates_are_stored_as_iso_dates(
    tmp_path: Path, written: str, stored: str
) -> None:
    f = tmp_path / "a.md"
    f.write_text(f"---\ntitle: A title\npublished: {written}\n---\n\nText about the talks.\n")
    assert load_file(f).published == stored


@pytest.mark.parametrize(
    ("published", "url", "shown"),
    [
        # A page is not published before the date in its own address: a scraper's pick of a
        # day the text recounts gives way (a Guardian long read of 2026 came dated 2022).
        (
            "2022-02-07",
            "https://www.theguardian.com/world/2026/feb/20/a-war-foretold",
            "2026-02-20",
        ),
        ("", "https://fortune.com/2026/02/27/paper-bear/", "2026-02-27"),
        ("2026-02-01", "https://example.org/news/2026/2/7", "2026-02-07"),
        ("2026-01-01", "https://example.org/2025/september/30/x", "2026-01-01"),  # an update
        ("2026-03-01", "https://fortune.com/2026/02/27/paper-bear/", "2026-03-01"),
        # No whole date in the address: the date found stands.
        ("2022-02-07", "https://example.org/2026/decisions/3/", "2022-02-07"),
        ("2022-02-07", "https://example.org/2026/13/45/x", "2022-02-07"),
        ("2022-02-07", "https://example.org/story-2026-02-20", "2022-02-07"),
        ("2022-02-07", "https://example.org/a?from=/2026/02/20/", "2022-02-07"),
        ("", "", ""),
        # A date no page can have been published on yet (an event's page) is not taken.
        ("2026-02-01", "https://example.org/events/2099/01/01/", "2026-02-01"),
    ],
)
def test_a_date_before_the_one_in_the_address_gives_way_to_it(
    tmp_path: Path, published: str, url: str, shown: str
) -> None:
    f = tmp_path / "a.md"
    f.write_text(
        f"---\ntitle: A title\nurl: {url}\npublished: '{published}'\n---\n\nText about the talks.\n"
    )
    assert load_file(f).published == shown


def test_a_fetched_page_dated_before_its_address_takes_the_address_date() -> None:
    html = (
        "<html><head><title>Talks</title><meta property='article:published_time' "
        "content='2022-02-07T10:00:00Z'></head><body><article><h1>Talks resume</h1><p>"
        + " ".join(["The delegations met again in Geneva to discuss the ceasefire lines."] * 3)
        + "</p></article></body></html>"
    )
    assert parse_html(html, "a.html", url="https://example.org/w/2026/02/20/t").published == (
        "2026-02-20"
    )
    assert parse_html(html, "a.html", url="https://example.org/w/talks").published == "2022-02-07"


def test_inline_html_in_markdown_is_read_as_its_text(tmp_path: Path) -> None:
    f = tmp_path / "a.md"
    f.write_text(
        "---\ntitle: A title\n---\n\nTalks <b>resumed</b> &amp; ended.<br>Then <i>a pause, "
        "R&D and a < b.<!-- hidden --> See <https://example.org/x>. &lt;b&gt; is a tag.\n"
    )
    text = load_file(f).text
    assert "Talks resumed & ended.\nThen a pause, R&D and a < b." in text
    assert "hidden" not in text and "<https://example.org/x>" in text
    assert text.rstrip().endswith("<b> is a tag.")
    # Only HTML's own tags are markup; code is left as written; scripts are no text.
    f.write_text(
        "---\ntitle: A title\n---\n\nA List<String> for <user at host>, `<b>code</b>`. "
        "<script>alert(1)</script>Seen. <!-- never closed <b>kept</b>\n"
    )
    text = load_file(f).text
    assert "A List<String> for <user at host>, `<b>code</b>`. Seen. <!-- never closed kept" in text


def test_control_characters_never_reach_a_title_or_outlet(tmp_path: Path) -> None:
    """``talksbot ask`` prints titles and outlets to a terminal: an escape sequence in them
    would drive it."""
    (tmp_path / "a.txt").write_text(
        "Evil\x1b]0;owned\x07 title\n\nText about the talks in Geneva.\n"
    )
    assert load_file(tmp_path / "a.txt").title == "Evil ]0;owned title"
    (tmp_path / "b.md").write_text(
        '---\ntitle: "T \\e[31m\\a"\noutlet: "O\\e[2J"\n---\n\nText about the talks.\n'
    )
    b = load_file(tmp_path / "b.md")
    assert (b.title, b.outlet) == ("T [31m", "O [2J")


def test_plain_text_takes_its_first_line_as_title() -> None:
    a = load_file(CORPUS / "prisoner-exchange.txt")
    assert a.title == "Prisoner exchange completed before the anniversary"
    assert a.url == "" and a.kind == "text"


def test_missing_metadata_is_allowed(tmp_path: Path) -> None:
    f = tmp_path / "a.md"
    f.write_text(
        "---\ntitle: Only a title\nurl:\n---\n\nSome text about the talks in Geneva today.\n"
    )
    a = load_file(f)
    assert (a.title, a.url, a.published, a.outlet) == ("Only a title", "", "", "")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.md", b"", "file is empty"),
        ("blank.txt", b"  \n\n ", "file is empty"),
        ("binary.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file"),
        ("latin1.txt", "Zelensky in Kyiv: caf\xe9 talks".encode("latin-1"), "not valid UTF-8"),
        ("nofront.md", b"# Just a heading\n\nSome text.\n", "no YAML front matter"),
        ("badyaml.md", b"---\ntitle: [unclosed\nurl: x\n---\nbody\n", "malformed front matter"),
        ("listyaml.md", b"---\n- a\n- b\n---\nbody text\n", "malformed front matter"),
        # Hex of any length reads as an integer too long to print (it had ended the ingest).
        ("hex.md", b"---\npublished: 0x" + b"f" * 5000 + b"\n---\nbody text\n", "too long to read"),
        ("page.html", b"<html><body><nav>Home</nav></body></html>", "no article text"),
        ("notes.pdf", b"%PDF-1.4 something", "unsupported file type"),
    ],
)
def test_bad_files_give_one_line_messages(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    f = tmp_path / name
    f.write_bytes(content)
    with pytest.raises(IngestError) as err:
        load_file(f)
    text = str(err.value)
    assert message in text and name in text and "\n" not in text


def test_huge_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    f = tmp_path / "huge.md"
    with f.open("wb") as fh:
        fh.truncate(50 * 1024 * 1024)
    with pytest.raises(IngestError, match="too large"):
        load_file(f)


def test_missing_path_is_reported(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="no such file"):
        list(iter_article_files([tmp_path / "nope"]))


def test_folders_are_walked_for_supported_files(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for name in ("a.md", "sub/b.html", "c.txt", "d.jpg", ".hidden.md"):
        (tmp_path / name).write_text("x")
    found = sorted(p.relative_to(tmp_path).as_posix() for p in iter_article_files([tmp_path]))
    assert found == ["a.md", "c.txt", "sub/b.html"]


def test_url_identity_ignores_cosmetic_differences() -> None:
    base = canonical_url("https://example.org/world/story")
    for variant in (
        "http://www.example.org/world/story/",
        "https://m.example.org/world/story?utm_source=x&fbclid=y",
        "https://example.org/world/story#comments",
        "https://amp.example.org/world/story/amp",
    ):
        assert canonical_url(variant) == base
    assert canonical_url("https://example.org/world/other") != base
    assert clean_url("https://www.x.org/a?utm_medium=m&id=3#frag") == "https://www.x.org/a?id=3"


def billion_laughs(levels: int = 9) -> str:
    """The classic YAML alias bomb: each level lists the one before nine times."""
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [{','.join([f'*l{i - 1}'] * 9)}]")
    return "---\n" + "\n".join(lines) + f"\ntitle: *l{levels - 1}\n---\n\nTalks resumed.\n"


def test_a_yaml_alias_bomb_in_front_matter_is_refused(tmp_path: Path) -> None:
    """Nine levels expand to 387 million strings; refused at the first anchor, before any
    expansion, with the field it is in."""
    f = tmp_path / "bomb.md"
    f.write_text(billion_laughs())
    with pytest.raises(IngestError) as err:
        load_file(f)
    text = str(err.value)
    assert "bomb.md" in text and "'l0'" in text and "anchor" in text and "\n" not in text


def test_a_lone_alias_in_front_matter_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "alias.md"
    f.write_text("---\ntitle: *t\n---\n\nTalks resumed.\n")
    with pytest.raises(IngestError, match=r"alias\.md: .*'title'.*alias"):
        load_file(f)


@pytest.mark.parametrize(
    ("field", "value", "kind"),
    [
        ("title", "[Talks, resume]", "list"),
        ("title", "{a: b}", "mapping"),
        ("url", "[https://example.org/a]", "list"),
        ("published", "[2026-02-18]", "list"),
        ("outlet", "{name: Reuters}", "mapping"),
        ("date", "[2026-02-18]", "list"),
    ],
)
def test_front_matter_fields_must_be_plain_values(
    tmp_path: Path, field: str, value: str, kind: str
) -> None:
    f = tmp_path / "a.md"
    f.write_text(f"---\n{field}: {value}\n---\n\nTalks resumed in Geneva today.\n")
    with pytest.raises(IngestError) as err:
        load_file(f)
    text = str(err.value)
    assert "a.md" in text and f"'{field}'" in text and kind in text and "\n" not in text


def test_plain_front_matter_values_of_any_scalar_type_are_read(tmp_path: Path) -> None:
    f = tmp_path / "a.md"
    f.write_text(
        "---\ntitle: 1984\nurl: 'https://example.org/a'\npublished: 2026-02-18 10:30:00\n"
        "outlet: Reuters\ntags: [a, b]\n---\n\nTalks resumed in Geneva today.\n"
    )
    a = load_file(f)
    assert (a.title, a.url, a.published, a.outlet) == (
        "1984",
        "https://example.org/a",
        "2026-02-18",
        "Reuters",
    )


@pytest.mark.parametrize(
    ("front", "message"),
    [
        (f"title: {'x' * 1001}", "'title' is longer than 1,000 characters"),
        (f"outlet: {'x' * 201}", "'outlet' is longer than 200 characters"),
        (f"published: {'x' * 101}", "'published' is longer than 100 characters"),
        (f"note: {'x' * 70_000}", "front matter too large"),
        ("title: " + "[" * 5000 + "]" * 5000, "nested too deeply"),
    ],
)
def test_oversized_front_matter_is_refused(tmp_path: Path, front: str, message: str) -> None:
    f = tmp_path / "a.md"
    f.write_text(f"---\n{front}\n---\n\nTalks resumed in Geneva today.\n")
    with pytest.raises(IngestError) as err:
        load_file(f)
    assert message in str(err.value) and "a.md" in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "'javascript://example.org/%0aalert(1)'",
        "file:///etc/passwd",
        "tg://resolve?domain=x",
        "'https://user:secret@example.org/a'",
        "https://example.org/" + "a" * 2100,
    ],
)
def test_a_url_that_is_no_http_link_is_dropped_and_the_article_kept(
    tmp_path: Path, url: str
) -> None:
    f = tmp_path / "a.md"
    f.write_text(f"---\ntitle: Talks\nurl: {url}\n---\n\nTalks resumed in Geneva today.\n")
    a = load_file(f)
    assert (a.title, a.url, a.outlet) == ("Talks", "", "")
    assert "Geneva" in a.text


def test_a_symlink_to_a_device_is_refused(tmp_path: Path) -> None:
    """stat gives a device 0 bytes; reading /dev/zero would never end."""
    link = tmp_path / "z.md"
    link.symlink_to("/dev/zero")
    with pytest.raises(IngestError) as err:
        load_file(link)
    assert "z.md" in str(err.value) and "not a regular file" in str(err.value)


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.md"
    os.mkfifo(fifo)
    with pytest.raises(IngestError, match=r"pipe\.md: not a regular file"):
        load_file(fifo)


@pytest.mark.skipif(not Path("/proc/self/pagemap").exists(), reason="Linux only")
def test_a_file_whose_size_stat_understates_is_read_only_up_to_the_limit(
    tmp_path: Path,
) -> None:
    """/proc/self/pagemap is a regular file stat calls empty that reads on for gigabytes."""
    link = tmp_path / "p.md"
    link.symlink_to("/proc/self/pagemap")
    with pytest.raises(IngestError, match=r"p\.md: file too large"):
        load_file(link)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        # The line of the problem, counted in the file (the opening '---' is line 1).
        ("---\ntitle: Talks: day two\nurl: x\n---\nbody\n", "line 2: mapping values"),
        # An unclosed quote is named where it opens, not where the file ends.
        ('---\ntitle: ok\noutlet: "BBC\n---\nbody\n', "line 3: while scanning a quoted scalar"),
        # An impossible date names its value and line (PyYAML's own error said neither).
        ("\n\n---\ntitle: ok\npublished: 2026-02-30\n---\nbody\n", "line 5: '2026-02-30' is not"),
        ("---\r\ntitle: ok\r\npublished: 2026-13-01\r\n---\r\nbody\r\n", "line 3: '2026-13-01'"),
    ],
)
def test_malformed_front_matter_names_the_line(tmp_path: Path, content: str, expected: str) -> None:
    f = tmp_path / "a.md"
    f.write_bytes(content.encode())
    with pytest.raises(IngestError, match="malformed front matter") as err:
        load_file(f)
    assert expected in str(err.value)


def test_front_matter_dates_and_times_still_read(tmp_path: Path) -> None:
    for value, expected in (("2026-02-20", "2026-02-20"), ("2026-02-20T09:30:00Z", "2026-02-20")):
        f = tmp_path / "a.md"
        f.write_text(f"---\ntitle: Talks\npublished: {value}\n---\n\nTalks resumed in Geneva.\n")
        assert load_file(f).published == expected


@pytest.mark.parametrize(
    ("content", "title"),
    [
        ("----------\nTalks resumed in Geneva on Monday.\n", "Talks resumed in Geneva on Monday."),
        ("---\nTalks resumed in Geneva.\n---\nMore about the talks.\n", "Talks resumed in Geneva."),
        # Prose that reads as YAML is not metadata (it had been taken, or refused).
        ("---\nUpdated: talks resumed.\n---\nMore about the talks.\n", "Updated: talks resumed."),
        ("---\nNote: he said: talks resumed.\n---\nMore.\n", "Note: he said: talks resumed."),
    ],
)
def test_a_text_file_opening_with_a_rule_is_read_as_text(
    tmp_path: Path, content: str, title: str
) -> None:
    """A rule of dashes is no front matter (it was refused as malformed), nor a title."""
    f = tmp_path / "a.txt"
    f.write_text(content)
    a = load_file(f)
    assert (a.title, a.kind) == (title, "text") and a.text == content
    # With 'key: value' lines it is front matter, as in Markdown; broken YAML is still named.
    f.write_text("---\ntitle: Geneva\n---\nTalks resumed.\n")
    assert load_file(f).title == "Geneva"
    f.write_text("---\ntitle: [bad\n---\nTalks resumed.\n")
    with pytest.raises(IngestError, match="malformed front matter, line 2"):
        load_file(f)


def test_a_link_out_of_a_walked_folder_is_not_followed(tmp_path: Path) -> None:
    """A folder others can write to must not get any file this user can read ingested (and
    quoted to strangers) through a link; a link within the folder, or a file named on the
    command line, is read."""
    secret = tmp_path / "secret.txt"
    secret.write_text("Private notes nobody should ever see quoted.\n")
    folder = tmp_path / "drop"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("Talks resumed in Geneva.\n")
    (folder / "leak.txt").symlink_to(secret)
    (folder / "sub" / "inside.txt").symlink_to(folder / "a.txt")
    skipped: list[str] = []
    found = [p.relative_to(folder).as_posix() for p in iter_article_files([folder], skipped)]
    assert found == ["a.txt", "sub/inside.txt"]
    assert skipped == [f"{folder / 'leak.txt'}: a link to a file outside {folder}, not followed"]
    assert list(iter_article_files([folder / "leak.txt"])) == [folder / "leak.txt"]


def test_a_file_swapped_for_a_link_after_listing_is_refused(tmp_path: Path) -> None:
    """The listing's check alone is a race: a file replaced by a link out of the folder
    between listing and reading is caught where it is read, on the opened file."""
    secret = tmp_path / "secret.txt"
    secret.write_text("Private notes nobody should ever see quoted.\n")
    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / "a.txt").write_text("Talks resumed in Geneva.\n")
    (listed,) = iter_article_files([folder])
    assert load_file(listed, within=folder).title == "Talks resumed in Geneva."
    listed.unlink()
    listed.symlink_to(secret)  # swapped after the listing
    with pytest.raises(IngestError, match="a link to a file outside .*drop, not followed"):
        load_file(listed, within=folder)
    assert "Private" in load_file(listed).text  # named on the command line: read
