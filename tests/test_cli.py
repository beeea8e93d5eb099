import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from index.embed import DEFAULT_BACKEND
from tests.harness.data import CORPUS, ROOT, cli_env, refusal, run_cli


@pytest.fixture
def filled(data_dir: Path) -> Path:
    result = run_cli(data_dir, "ingest", str(CORPUS))
    assert result.returncode == 0, result.stderr
    return data_dir


def test_ingest_prints_a_summary(data_dir: Path) -> None:
    result = run_cli(data_dir, "ingest", str(CORPUS))
    assert result.returncode == 0
    assert result.stdout.startswith("3 articles added, 0 updated, 0 unchanged, 1 duplicate skipped")
    # The units made searchable, as `stats` counts them (headings and captions included).
    assert "15 sentences indexed, 0 failed" in result.stdout
    assert stats(data_dir)["indexed_sentences"] == 15
    # The duplicate is named, with the article it copies (the file read second).
    copy = CORPUS / "geneva-talks.md"
    assert f"talksbot: {copy}: a copy of “Geneva round ends without a deal on the Donbas”" in (
        result.stderr
    )
    again = run_cli(data_dir, "ingest", str(CORPUS))
    assert again.stdout.startswith("0 articles added, 0 updated, 4 unchanged, 0 duplicates")


def test_a_file_name_cannot_drive_the_terminal(data_dir: Path, tmp_path: Path) -> None:
    """Messages quote file names; ESC sequences in one are shown escaped, not sent raw."""
    bad = tmp_path / "c\x1b[31mred.md"
    bad.write_text("no front matter here")
    result = run_cli(data_dir, "ingest", str(bad))
    assert "\x1b" not in result.stderr and "c\\x1b[31mred.md" in result.stderr


def test_a_front_matter_url_that_is_no_link_is_said_not_silently_dropped(
    data_dir: Path, tmp_path: Path
) -> None:
    page = tmp_path / "a.md"
    page.write_text(
        '---\ntitle: "Envoys meet"\nurl: "javascript:alert(1)"\noutlet: N\n---\n\n'
        "The envoys met in Riyadh on Monday for a second round of talks on prisoner exchanges.\n"
    )
    result = run_cli(data_dir, "ingest", str(page))
    assert result.returncode == 0 and result.stdout.startswith("1 article added")
    assert "url 'javascript:alert(1)' is no plain http(s) link; stored without one" in (
        result.stderr
    )


def stats(data_dir: Path) -> dict:
    result = run_cli(data_dir, "stats", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.md", b"", "file is empty"),
        ("binary.html", bytes(range(256)) * 4, "binary file"),
        ("latin1.md", "---\ntitle: caf\xe9\n---\nbody".encode("latin-1"), "not valid UTF-8"),
        ("nofm.md", b"Just text, no front matter at all here.", "no YAML front matter"),
        ("badfm.md", b"---\ntitle: 'unclosed\n---\nbody text", "malformed front matter"),
        ("huge.md", None, "file too large"),
        ("missing.md", "absent", "no such file"),
    ],
)
def test_bad_input_gets_one_line_and_loses_nothing(
    filled: Path, tmp_path: Path, name: str, content: bytes | str | None, message: str
) -> None:
    before = stats(filled)
    target = tmp_path / name
    if content is None:
        with target.open("wb") as fh:
            fh.truncate(50 * 1024 * 1024)
    elif isinstance(content, bytes):
        target.write_bytes(content)
    result = run_cli(filled, "ingest", str(target))
    assert message in refusal(result)
    after = stats(filled)
    assert (after["articles"], after["sentences"]) == (before["articles"], before["sentences"])
    assert run_cli(filled, "ask", "prisoners exchanged mediated by the Emirates").returncode == 0


def test_ask_prints_numbered_citations(filled: Path) -> None:
    result = run_cli(filled, "ask", "How long did the second day of talks in Geneva last?")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("[1] “The second day of talks in Geneva ended after just two")
    assert "example-news.org, 2026-02-18" in result.stdout
    assert "#:~:text=" in result.stdout


def test_ask_json_reads_stdin_one_object_per_line_in_order(filled: Path) -> None:
    questions = [
        "How long did the second day of talks in Geneva last?",
        "",
        "easy sourdough starter recipe for beginners",
        "prisoners exchanged mediated by the Emirates",
    ]
    result = run_cli(filled, "ask", "--json", stdin="\n".join(questions) + "\n")
    assert result.returncode == 0, result.stderr
    objs = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["question"] for o in objs] == questions
    assert [o["answered"] for o in objs] == [True, False, False, True]
    assert "two hours" in objs[0]["citations"][0]["quote"]
    assert objs[2]["citations"] == []
    assert result.stderr == ""


def test_overlong_question_is_refused(filled: Path) -> None:
    result = run_cli(filled, "ask", "why" * 3333 + "?")
    assert result.returncode == 2
    assert "10,000 characters" in result.stdout


def test_eval_reports_hits_and_abstention(filled: Path, tmp_path: Path) -> None:
    qfile = tmp_path / "q.jsonl"
    rows = [
        {
            "question": "How long did the second day of talks in Geneva last?",
            "answer_contains": ["after just two hours"],
            "answerable": True,
        },
        {
            "question": "prisoners exchanged mediated by the Emirates",
            "answer_contains": ["exchanged 157 prisoners"],
            "answerable": True,
        },
        {
            "question": "easy sourdough starter recipe for beginners",
            "answer_contains": [],
            "answerable": False,
        },
    ]
    qfile.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result = run_cli(filled, "eval", str(qfile), "--json", "--folds", "0")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    m = out["metrics"]
    assert m["hit@1"] == 1.0 and m["mrr"] == 1.0
    assert m["abstained_unanswerable"] == 1.0 and m["wrongly_abstained"] == 0.0
    assert out["reachable"] == 1.0
    text = run_cli(filled, "eval", str(qfile), "--folds", "3").stdout
    assert "hit@1 1.000" in text
    assert "in-sample" in text and "out-of-fold (3 folds" in text and "reachable 100.0%" in text
    assert "mean of" not in text
    out = json.loads(
        run_cli(filled, "eval", str(qfile), "--json", "--folds", "3", "--splits", "2").stdout
    )
    assert len(out["out_of_fold_splits"]) == 2
    assert out["out_of_fold_mean"]["hit@1"] == pytest.approx(
        sum(s["hit@1"] for s in out["out_of_fold_splits"]) / 2
    )


def test_eval_with_a_broken_file_says_which_line(filled: Path, tmp_path: Path) -> None:
    qfile = tmp_path / "q.jsonl"
    qfile.write_text('{"question": "ok", "answer_contains": [], "answerable": false}\nnot json\n')
    result = run_cli(filled, "eval", str(qfile))
    assert result.returncode == 1
    assert f"{qfile}:2: not a question object" in result.stderr


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"question": 5, "answer_contains": ["x"]}', "non-empty string"),
        ('{"question": " ", "answer_contains": ["x"]}', "non-empty string"),
        ('{"question": "ok"}', 'needs "answer_contains"'),  # answerable, nothing to find
        ('{"question": "ok", "answer_contains": "two hours"}', "list of strings"),
        ('{"question": "ok", "answer_contains": ["x"], "answerable": "no"}', "true or false"),
        ('["question"]', "not a question object"),
    ],
)
def test_eval_refuses_a_question_it_could_not_score(
    filled: Path, tmp_path: Path, line: str, reason: str
) -> None:
    qfile = tmp_path / "q.jsonl"
    qfile.write_text(line + "\n")
    message = refusal(run_cli(filled, "eval", str(qfile)))
    assert f"{qfile}:1: not a question object" in message and reason in message


def test_counts_outside_their_range_are_refused_with_the_range(
    filled: Path, tmp_path: Path
) -> None:
    for args, says in (
        (["ask", "-k", "0", "talks"], "0 is not between 1 and 50"),
        (["ask", "-k", "-3", "talks"], "-3 is not between 1 and 50"),
        (["ask", "-k", "many", "talks"], "'many' is not a whole number"),
        (["eval", "q.jsonl", "--folds", "1"], "1 fold cross-validates nothing: use 0"),
        (["eval", "q.jsonl", "--splits", "0"], "0 is not between 1 and 20"),
    ):
        result = run_cli(filled, *args)
        assert result.returncode == 2 and says in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    # Folds need as many articles as there are folds.
    qfile = tmp_path / "q.jsonl"
    qfile.write_text(
        json.dumps({"question": "How long did the talks last?", "answer_contains": ["hours"]})
    )
    message = refusal(run_cli(filled, "eval", str(qfile), "--folds", "3"))
    assert "needs questions about at least 3 articles" in message and "--folds 0" in message
    # Splits of no cross-validation are refused, not silently ignored.
    message = refusal(run_cli(filled, "eval", str(qfile), "--folds", "0", "--splits", "3"))
    assert "--splits needs cross-validation" in message


def test_stats(filled: Path) -> None:
    s = stats(filled)
    assert (s["articles"], s["indexed_sentences"], s["outlets"]) == (3, 15, 2)
    assert (s["first_published"], s["last_published"]) == ("2026-02-18", "2026-02-20")
    assert s["index_bytes"] > 0
    text = run_cli(filled, "stats").stdout
    assert "articles      3" in text and "2026-02-18 to 2026-02-20" in text


def test_an_empty_data_dir_is_built_from_the_sample_corpus(data_dir: Path) -> None:
    result = run_cli(data_dir, "ask", "Why was the Budapest summit paused?")
    assert result.returncode == 0, result.stderr
    assert "building it from the sample corpus" in result.stderr
    assert "Budapest" in result.stdout
    assert stats(data_dir)["articles"] == 1


def test_main_job_answers_each_stdin_line_and_exits(data_dir: Path) -> None:
    result = run_cli(
        data_dir, stdin="Why was the Budapest summit paused?\n\nWho is Peskov?\n", script="bot.py"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("[1] “") == 2


def test_the_console_chat_says_what_a_command_is(data_dir: Path) -> None:
    """/help typed in the console was searched ("Nothing in the coverage comes close")."""
    result = run_cli(
        data_dir, stdin="/help\n/sources@talksbot now\nWho is Peskov?\n", script="bot.py"
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("/help is a command of the Telegram bot; here every line is a")
    assert lines[2].startswith("/sources@talksbot is a command of the Telegram bot")
    assert result.stdout.count("[1] “") == 1 and "Nothing in the coverage" not in result.stdout


def test_verbose_goes_before_or_after_the_command(filled: Path) -> None:
    question = "how long did the talks in Geneva last"
    for argv in (["-v", "ask", question], ["ask", "-v", question]):
        result = run_cli(filled, *argv)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("[1] “") and "two hours" in result.stdout


def test_a_store_built_by_another_backend_is_refused(filled: Path) -> None:
    for command in (["ask", "anything about Geneva"], ["ingest", str(CORPUS)], ["reindex"]):
        line = refusal(run_cli(filled, *command, backend="onnx-int8"))
        assert "TALKSBOT_BACKEND is 'onnx-int8'" in line and "built with 'hash'" in line
        assert "unset TALKSBOT_BACKEND" in line


def test_with_no_backend_configured_a_store_keeps_the_one_it_was_built_with(
    filled: Path, tmp_path: Path
) -> None:
    # An upgrade that changes the default backend must not lock users out of their store.
    result = run_cli(filled, "ask", "How long did the Geneva talks last?", backend="")
    assert result.returncode == 0, result.stderr
    assert "[1] “" in result.stdout
    assert run_cli(filled, "reindex", backend="").returncode == 0
    params = json.loads((filled / "params.json").read_text())
    assert params["backend"] == "hash"
    # An emptied setting (TALKSBOT_BACKEND= in .env or a compose file) is unset too.
    result = run_cli(filled, "stats", backend="", TALKSBOT_BACKEND="")
    assert result.returncode == 0, result.stderr
    assert "(hash)" in result.stdout
    # A new data dir gets the default; what the store records decides from then on.
    fresh = tmp_path / "fresh"
    result = run_cli(fresh, "delete", "https://example.com/none", backend="")
    assert result.returncode == 1 and "no stored article" in result.stderr
    assert json.loads((fresh / "params.json").read_text())["backend"] == DEFAULT_BACKEND


def test_a_settings_file_naming_an_unknown_backend_is_refused(filled: Path) -> None:
    params = json.loads((filled / "params.json").read_text())
    (filled / "params.json").write_text(json.dumps({**params, "backend": "evil"}))
    with sqlite3.connect(filled / "talksbot.db") as db:  # a store from before the copy
        db.execute("DELETE FROM meta WHERE key='params'")
    for command in (["ask", "anything about Geneva"], ["stats"]):
        line = refusal(run_cli(filled, *command, backend=""))
        assert "does not know ('evil')" in line
    # Nothing of the tampered file was kept: restoring the real one brings the store back.
    with sqlite3.connect(filled / "talksbot.db") as db:
        assert db.execute("SELECT value FROM meta WHERE key='params'").fetchone() is None
    (filled / "params.json").write_text(json.dumps(params))
    assert run_cli(filled, "ask", "How long did the Geneva talks last?", backend="").returncode == 0
    with sqlite3.connect(filled / "talksbot.db") as db:  # accepted, so now kept
        copy = db.execute("SELECT value FROM meta WHERE key='params'").fetchone()[0]
    assert json.loads(copy) == params


def test_bad_configuration_is_one_line(data_dir: Path) -> None:
    result = run_cli(data_dir, "stats", TELEGRAM_ADMIN_IDS="not-a-list")
    refusal(result)
    refusal(run_cli(data_dir, "stats", TELEGRAM_ADMIN_IDS="[1,"))


@pytest.mark.parametrize(
    ("value", "ids"),
    [("123", [123]), ("123, 456", [123, 456]), ("123 456", [123, 456]), ("[123, 456]", [123, 456])],
)
def test_admin_ids_as_json_or_plain(
    monkeypatch: pytest.MonkeyPatch, value: str, ids: list[int]
) -> None:
    from talksbot.config import Settings

    monkeypatch.setenv("TELEGRAM_ADMIN_IDS", value)
    assert Settings().telegram_admin_ids == ids


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TELEGRAM_RATE_LIMIT", "0"),  # the pacer would hold every message forever
        ("TELEGRAM_PUSH_RATE", "0"),
        ("TALKSBOT_FEED_INTERVAL", "0"),  # a job repeating with no pause
        ("TALKSBOT_FANOUT_INTERVAL", "-5"),
        ("TALKSBOT_RETENTION_DAYS", "-1"),  # would delete every answer as it is made
        ("TALKSBOT_FETCH_TIMEOUT", "0"),
        ("TELEGRAM_WEBHOOK_PORT", "abc"),
        ("TELEGRAM_WEBHOOK_PORT", "70000"),
        ("TALKSBOT_FEED_INTERVAL", "inf"),  # passes "> 0"; no timer takes it
        ("TALKSBOT_INDEX_POLL", "Infinity"),
        ("TALKSBOT_FETCH_TIMEOUT", "inf"),
        ("TALKSBOT_FANOUT_INTERVAL", "1e300"),  # finite, but no timer takes it either
        ("TALKSBOT_FETCH_ALLOW_HOSTS", "localhost,host:8080"),  # would allow nothing
        ("TALKSBOT_FETCH_ALLOW_HOSTS", "10.0.0.0/33"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(data_dir: Path, name: str, value: str) -> None:
    """An operator's mistake in the environment stops the bot at once with one clear line,
    never a bot that starts and silently sends nothing."""
    result = run_cli(
        data_dir,
        script="bot.py",
        timeout=60,
        TELEGRAM_BOT_TOKEN="1:x",
        TELEGRAM_API_BASE_URL="http://127.0.0.1:9/bot",
        **{name: value},
    )
    assert name in refusal(result)
    assert "unexpected" not in result.stderr


@pytest.mark.parametrize("token", ["abc", "123:ab cd", "x" * 30])
def test_a_token_that_is_no_bot_token_is_refused_naming_it(data_dir: Path, token: str) -> None:
    """A mistyped token fails at start, not at the first request; and a one-character one
    would have been redacted from every log line as "<token>"."""
    line = refusal(run_cli(data_dir, "stats", TELEGRAM_BOT_TOKEN=token))
    assert "TELEGRAM_BOT_TOKEN: not a bot token" in line and token not in line


def test_empty_settings_mean_unset(data_dir: Path, tmp_path: Path) -> None:
    """An emptied line in .env or a compose file: the default, never the current directory
    as the store (made, or read, wherever the command was run) or a blank token."""
    home = tmp_path / "home"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = {
        **cli_env(data_dir),
        "TALKSBOT_DATA_DIR": "",
        "TALKSBOT_MODEL_CACHE": " ",
        "HOME": str(home),
    }
    env["TELEGRAM_BOT_TOKEN"] = " "
    env.pop("XDG_DATA_HOME", None)
    result = subprocess.run(
        [sys.executable, "-m", "talksbot.cli", "stats"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert f"data dir      {home / '.local/share/talksbot'}" in result.stdout
    assert list(cwd.iterdir()) == []


def test_a_fifo_given_to_ingest_is_refused_not_waited_on(data_dir: Path, tmp_path: Path) -> None:
    """Opening a FIFO for reading blocks until a writer comes: talksbot must not hang."""
    fifo = tmp_path / "pipe.md"
    os.mkfifo(fifo)
    result = run_cli(data_dir, "ingest", str(fifo), timeout=60)
    assert "pipe.md: not a regular file" in refusal(result)


@pytest.mark.parametrize("script", ["talksbot", "bot.py"])
def test_an_unknown_backend_is_one_line_listing_the_choices(tmp_path: Path, script: str) -> None:
    """Refused as settings are read: nothing is created in a new data dir first."""
    data_dir = tmp_path / "data"
    args = ("ingest", str(CORPUS)) if script == "talksbot" else ()
    result = run_cli(
        data_dir,
        *args,
        script=script,
        backend="bogus",
        timeout=60,
        TELEGRAM_BOT_TOKEN="1:x",
        TELEGRAM_API_BASE_URL="http://127.0.0.1:9/bot",
    )
    line = refusal(result)
    assert "TALKSBOT_BACKEND" in line
    for choice in ("onnx-int8", "onnx", "torch", "mpnet", "hash"):
        assert f"'{choice}'" in line
    assert "unexpected" not in result.stderr
    assert not data_dir.exists()


def test_the_backends_settings_accept_are_the_ones_there_are() -> None:
    from typing import get_args

    from index.embed import BACKENDS
    from talksbot.config import Backend

    assert set(get_args(Backend)) == {*BACKENDS, "hash"}


@pytest.mark.parametrize(
    "name", ["TELEGRAM_API_BASE_URL", "TELEGRAM_API_FILE_URL", "TELEGRAM_WEBHOOK_URL"]
)
def test_a_telegram_url_that_is_no_http_url_is_one_line(data_dir: Path, name: str) -> None:
    env = {"TELEGRAM_BOT_TOKEN": "1:x", "TELEGRAM_API_BASE_URL": "http://127.0.0.1:9/bot"}
    result = run_cli(data_dir, script="bot.py", timeout=60, **{**env, name: "javascript:alert(1)"})
    line = refusal(result)
    assert name in line and "must be an http(s) URL" in line
    assert "unexpected" not in result.stderr and not data_dir.exists()


def test_an_alias_bomb_given_to_ingest_is_one_line_and_loses_nothing(
    filled: Path, tmp_path: Path
) -> None:
    from tests.test_loaders import billion_laughs

    before = stats(filled)
    bomb = tmp_path / "bomb.md"
    bomb.write_text(billion_laughs())
    result = run_cli(filled, "ingest", str(bomb))
    line = refusal(result)
    assert "bomb.md" in line and "anchor" in line
    after = stats(filled)
    assert (after["articles"], after["sentences"]) == (before["articles"], before["sentences"])


def test_a_data_dir_file_that_cannot_be_written_is_named_and_nothing_is_lost(
    data_dir: Path,
) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "index").write_text("")  # where the index folder belongs
    line = refusal(run_cli(data_dir, "ingest", str(CORPUS)))
    assert f"cannot use {data_dir / 'index'}" in line and "unexpected" not in line
    (data_dir / "index").unlink()
    answered = run_cli(data_dir, "ask", "Where were the prisoners exchanged?")
    assert answered.returncode == 0 and "Emirates" in answered.stdout


def test_a_token_in_a_failing_path_is_not_printed(tmp_path: Path) -> None:
    token = "123456:AAHsecretTOKENvalue"
    data_dir = tmp_path / token
    data_dir.mkdir()
    (data_dir / "index").write_text("")
    line = refusal(run_cli(data_dir, "ingest", str(CORPUS), TELEGRAM_BOT_TOKEN=token))
    assert "cannot use" in line and token not in line and "<token>" in line


def test_a_symlink_loop_given_to_delete_is_one_line(filled: Path, tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    assert "cannot resolve" in refusal(run_cli(filled, "delete", str(tmp_path / "a")))


def test_delete_names_each_bad_item_and_still_deletes_the_good_ones(filled: Path) -> None:
    """A malformed URL or an empty name had ended the command with an unexpected error,
    leaving the items after it undone."""
    url = "https://www.example-news.org/world/2026/02/18/geneva-round-ends/"
    result = run_cli(filled, "delete", "http://[::1", "", url)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "talksbot: http://[::1: not a valid URL (Invalid IPv6 URL)",
        "talksbot: an empty URL or file name was given",
    ]
    assert result.stdout.strip() == "1 article deleted"


def test_ingest_refuses_an_empty_path(filled: Path) -> None:
    """pathlib reads "" as the current directory, which was ingested unasked."""
    assert "empty path" in refusal(run_cli(filled, "ingest", ""))


@pytest.mark.parametrize("address", ["ftp://example.org/x", "file:///etc/passwd"])
def test_ingest_names_the_addresses_it_can_fetch(filled: Path, address: str) -> None:
    """Not "skipped ftp:/example.org/x: no such file or folder" (a path, with a slash lost)."""
    line = refusal(run_cli(filled, "ingest", address))
    assert f"{address}: only http:// and https:// addresses can be fetched" in line
    assert stats(filled)["articles"] == 3  # nothing stored was touched


def test_ingest_says_a_web_address_without_a_host_is_none(filled: Path) -> None:
    line = refusal(run_cli(filled, "ingest", "https:///x"))
    assert "https:///x: not a web address (no host after https://)" in line


def _facts_corpus(folder: Path) -> list[dict]:
    """Four small articles of six facts each, and a question about each fact."""
    places = ["Geneva", "Istanbul", "Riyadh", "Abu Dhabi"]
    topics = ["prisoners", "grain", "energy", "monitors", "sanctions", "maps"]
    questions = []
    folder.mkdir()
    for a, place in enumerate(places):
        lines = []
        for t, topic in enumerate(topics):
            n = 10 * (a + 1) + t
            lines.append(f"In {place} the delegates settled the {topic} question with {n} pages.")
            questions.append(
                {
                    "question": f"how many pages settled the {topic} question in {place}",
                    "answer_contains": [f"{topic} question with {n} pages"],
                    "answerable": True,
                    "doc": place,
                }
            )
        (folder / f"a{a}.md").write_text(
            f"---\ntitle: Talks in {place}\nurl: https://news.example/{a}\noutlet: News\n---\n\n"
            + " ".join(lines)
            + "\n"
        )
    questions.append(
        {"question": "sourdough starter recipe", "answer_contains": [], "answerable": False}
    )
    return questions


def test_fit_ranker_fits_the_stores_own_ranker_and_leaves_the_shipped_ones(
    data_dir: Path, tmp_path: Path
) -> None:
    """The fitted ranker goes into the data dir and that store answers with it; the shipped
    rankers (code, perhaps installed read-only) are never rewritten by a user's fit."""
    rows = _facts_corpus(tmp_path / "corpus")
    assert run_cli(data_dir, "ingest", str(tmp_path / "corpus")).returncode == 0
    qfile = tmp_path / "q.jsonl"
    shipped = {p: p.read_bytes() for p in (ROOT / "retrieval" / "rankers").iterdir()}

    qfile.write_text("\n".join(json.dumps(r) for r in rows[:3]) + "\n")
    message = refusal(run_cli(data_dir, "fit-ranker", str(qfile)))
    assert "at least 20 answerable questions" in message and "has 3 about 1" in message
    assert not (data_dir / "ranker.json").exists()

    qfile.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    before = run_cli(data_dir, "eval", str(qfile), "--folds", "0").stdout
    assert "ranker in use (not questions fitted)" in before  # no ranker shipped for it
    result = run_cli(data_dir, "fit-ranker", str(qfile))
    assert result.returncode == 0, result.stderr
    assert f"-> {data_dir / 'ranker.json'}" in result.stderr
    assert json.loads((data_dir / "ranker.json").read_text())["meta"]["questions"] == 25
    assert {p: p.read_bytes() for p in (ROOT / "retrieval" / "rankers").iterdir()} == shipped
    after = run_cli(data_dir, "eval", str(qfile), "--folds", "0").stdout
    assert "ranker in use (25 questions fitted)" in after
    # Fitted before the code's features changed: refused, saying it can also be deleted.
    stale = json.loads((data_dir / "ranker.json").read_text())
    stale["features"] = stale["features"][:-1]
    (data_dir / "ranker.json").write_text(json.dumps(stale))
    message = refusal(run_cli(data_dir, "ask", "how many pages settled the grain question"))
    assert "refit it" in message and message.endswith(
        "or delete it to answer with the shipped ranker"
    )


def test_an_unreachable_bot_api_is_one_line_saying_what_to_check(filled: Path) -> None:
    """python-telegram-bot's own two log lines and an "unexpected error" had said it."""
    base = "http://127.0.0.1:9/bot"  # the discard port: nothing listens
    result = run_cli(
        filled, script="bot.py", timeout=60, TELEGRAM_BOT_TOKEN="1:x", TELEGRAM_API_BASE_URL=base
    )
    line = refusal(result)
    assert line.startswith(f"talksbot: cannot reach the Telegram Bot API at {base} (")
    assert line.endswith("check TELEGRAM_API_BASE_URL and the network")
