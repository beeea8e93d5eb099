"""The talksbot command: serve, ingest, ask, eval, fit-ranker, stats, reindex, delete, feeds.

Every failure a user can cause ends in a one-line message on stderr and a non-zero exit code,
never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

from talksbot.config import Settings, SettingsError, load_settings
from talksbot.logs import setup_logging
from talksbot.wiring import backend_of, open_answerer, run_ingest, with_ingester

log = logging.getLogger("talksbot")


class CliError(Exception):
    """A failure to report in one line (exit code 1)."""


def _echo(*parts: object) -> None:
    """A message to stderr, control characters shown escaped: a message may quote a file
    name or a page's text, and a name holding ESC sequences would drive the terminal."""
    from index.text import CONTROL

    text = " ".join(str(p) for p in parts)
    print(CONTROL.sub(lambda m: repr(m.group())[1:-1], text), file=sys.stderr, flush=True)


# -- commands -------------------------------------------------------------------------------
def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from index.fetch import is_url

    if any(not p.strip() for p in args.paths):
        # An empty argument is the current directory to pathlib: ingested, unasked.
        raise CliError("ingest was given an empty path; name files, folders or URLs")
    for p in args.paths:
        scheme = re.match(r"([a-z][a-z0-9+.-]+)://", p, re.I)  # two letters or more: not C://
        if scheme and not is_url(p):
            if scheme.group(1).lower() in ("http", "https"):
                raise CliError(f"{p}: not a web address (no host after {scheme.group(0)})")
            raise CliError(f"{p}: only http:// and https:// addresses can be fetched")
    urls = [p for p in args.paths if is_url(p)]
    files = [Path(p) for p in args.paths if not is_url(p)]
    report = run_ingest(settings, files, urls=urls)
    for error in report.errors:
        _echo(f"talksbot: skipped {error}")
    for note in report.notes:
        _echo(f"talksbot: {note}")
    print(report.summary())
    if report.errors and not (
        report.added or report.updated or report.unchanged or report.duplicates
    ):
        return 1
    return 1 if report.errors else 0


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    from retrieval.answer import INVALID, render_text

    if not args.question and not args.json and sys.stdin.isatty():
        raise CliError('ask needs a question, e.g.: talksbot ask "Why was the summit paused?"')
    answerer = open_answerer(settings, quiet=args.json)

    def show(question: str) -> str:
        answer = answerer.answer(question, k=args.k)
        if args.json:
            print(json.dumps(answer.to_json(), ensure_ascii=False), flush=True)
        else:
            print(render_text(answer), flush=True)
        return answer.status

    if args.question:
        return 2 if show(" ".join(args.question)) == INVALID else 0
    # Questions keep coming: load now what the first ones would wait for (as the bot does).
    answerer.searcher.warm_up()
    for line in sys.stdin:  # one question a line, answered in order
        question = line.rstrip("\r\n")
        if question.strip() or args.json:  # --json keeps one output line per input line
            show(question)
            if not args.json:
                print(flush=True)
    return 0


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    from retrieval.cv import evaluate_with_cv
    from retrieval.evaluate import load_questions

    if args.splits > 1 and args.folds == 0:
        raise CliError("--splits needs cross-validation: use it with --folds 2-50, not --folds 0")
    questions = load_questions(Path(args.file))
    answerer = open_answerer(settings, quiet=args.json)
    started = time.perf_counter()
    result = evaluate_with_cv(answerer, questions, folds=args.folds, splits=args.splits)
    result["metrics"]["seconds"] = round(time.perf_counter() - started, 2)
    if args.json:
        if not args.verbose:
            result.pop("rows")
        print(json.dumps(result, ensure_ascii=False))
    else:
        if args.verbose:
            for r in result["rows"]:
                mark = "abstain" if not r["answered"] else f"rank {r['rank']}"
                print(f"{r['id']:>10} {r['kind']:<20} {mark:<8} {r['question']}")
        print(result["text"])
    return 0


def cmd_fit_ranker(args: argparse.Namespace, settings: Settings) -> int:
    from retrieval.cv import fit
    from retrieval.evaluate import load_questions
    from retrieval.rank import MIN_FIT_ARTICLES, MIN_FIT_QUESTIONS, STORE_RANKER

    questions = load_questions(Path(args.file))
    answerable = [q for q in questions if q.answerable]
    articles = {q.group for q in answerable}
    if len(answerable) < MIN_FIT_QUESTIONS or len(articles) < MIN_FIT_ARTICLES:
        raise CliError(
            f"fit-ranker needs at least {MIN_FIT_QUESTIONS} answerable questions about "
            f"{MIN_FIT_ARTICLES} or more articles; {args.file} has {len(answerable)} about "
            f"{len(articles)}"
        )
    searcher = open_answerer(settings, quiet=True, refit=True).searcher
    searcher.pool_cache = {}
    ranker = fit(searcher, questions)
    # The store's own ranker by default; ``--out`` writes elsewhere (a shipped ranker:
    # retrieval/rankers/<model>.json).
    path = Path(args.out) if args.out else settings.data_dir / STORE_RANKER
    try:
        ranker.save(path)
    except OSError as exc:
        raise CliError(f"cannot write the ranker to {path}: {exc.strerror or exc}") from None
    where = "" if args.out else " (used for this store's questions; delete it for the shipped one)"
    _echo(
        f"talksbot: ranker for {ranker.model} fitted on {len(questions)} questions -> {path}"
        + where
    )
    return 0


def cmd_delete(args: argparse.Namespace, settings: Settings) -> int:
    """Remove articles by URL (any of their URLs) or by the file they were ingested from;
    running bots stop citing them at their next poll, without a rebuild."""
    from index.ingest import ingest_params, source_key
    from index.loaders import IngestError
    from index.store import Store
    from index.text import plural

    store = Store(settings.data_dir)
    try:
        store.check_params(ingest_params(backend_of(settings, store)), write=True)
        missing = []
        deleted = refused = 0
        for given in args.items:
            # Any URL an article was stored under (its own, an alias) or the file it came from.
            try:
                if not given.strip():
                    raise IngestError("an empty URL or file name was given")
                found = store.find_article_by_key(source_key(given))
            except IngestError as exc:  # a malformed URL, a path that cannot be resolved
                _echo(f"talksbot: {exc}")
                refused += 1  # the others are still looked up
                continue
            if found is not None and store.delete_article(found):
                deleted += 1
            else:
                missing.append(given)
        for item in missing:
            _echo(f"talksbot: no stored article has the URL or file {item}")
        print(f"{plural(deleted, 'article')} deleted")
        return 1 if missing or refused else 0
    finally:
        store.close()


def cmd_reindex(args: argparse.Namespace, settings: Settings) -> int:
    """Tokenize every stored text again and rewrite the index snapshot from the store (no model
    needed: embeddings are stored). Running bots pick the new snapshot up at their next poll."""
    from index.ingest import ingest_params
    from index.live_index import index_root, rebuild
    from index.store import Store
    from index.terms import refill_in_batches

    store = Store(settings.data_dir)
    try:
        store.check_params(ingest_params(backend_of(settings, store)), write=False)
        started = time.perf_counter()
        refill_in_batches(store.db)
        name = rebuild(store)
        # What the snapshot holds (another process may have added sentences since).
        manifest = json.loads((index_root(store) / name / "manifest.json").read_text())
        print(
            f"reindexed {manifest['sentences']} sentences into index/{name} "
            f"in {time.perf_counter() - started:.1f} s"
        )
        return 0
    finally:
        store.close()


def cmd_feeds(args: argparse.Namespace, settings: Settings) -> int:
    from index.feeds import add_feed, list_feeds, poll_feeds, remove_feed
    from index.store import Store

    if args.action == "poll":
        report = with_ingester(
            settings, lambda store, ing: poll_feeds(store, ing, settings.fetch_policy)
        )
        for error in report.errors:
            _echo(f"talksbot: {error}")
        print(report.summary())
        return 0
    store = Store(settings.data_dir)
    try:
        if args.action == "add":
            if not args.url:
                raise CliError("feeds add needs a feed URL")
            feed, n = add_feed(store, args.url, settings.fetch_policy)
            print(f"added feed {feed.id}: {feed.title} ({n} entries now; polled by the bot)")
        elif args.action == "remove":
            if not args.url:
                raise CliError("feeds remove needs a feed URL or id")
            if not remove_feed(store, args.url):
                raise CliError(f"no feed {args.url}")
            print(f"removed {args.url}")
        else:
            feeds = list_feeds(store)
            if not feeds:
                print("no feeds; add one with: talksbot feeds add URL")
            for f in feeds:
                state = (
                    f"error: {f.last_error}"
                    if f.last_error
                    else ("ok" if f.checked_at else "not polled yet")
                )
                print(f"{f.id:>3}  {f.url}  {f.title}  [{state}]")
        return 0
    finally:
        store.close()


def cmd_stats(args: argparse.Namespace, settings: Settings) -> int:
    store = open_answerer(settings, quiet=True).searcher.store  # builds an empty data dir
    stats = store.stats()
    index_bytes = sum(
        p.stat().st_size for p in (settings.data_dir / "index").rglob("*") if p.is_file()
    )
    db_bytes = sum(p.stat().st_size for p in settings.data_dir.glob("talksbot.db*"))
    params = store.read_params() or {}
    stats.update(
        index_bytes=index_bytes,
        db_bytes=db_bytes,
        data_dir=str(settings.data_dir),
        model=params.get("model"),
        backend=params.get("backend"),
    )
    if args.json:
        print(json.dumps(stats))
        return 0
    print(f"data dir      {settings.data_dir}")
    print(f"model         {stats['model']} ({stats['backend']})")
    print(f"articles      {stats['articles']}")
    print(f"sentences     {stats['sentences']} ({stats['indexed_sentences']} indexed)")
    print(f"outlets       {stats['outlets']}")
    print(f"date range    {stats['first_published'] or '-'} to {stats['last_published'] or '-'}")
    print(f"index size    {index_bytes / 1e6:.1f} MB on disk (database {db_bytes / 1e6:.1f} MB)")
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """The Telegram bot with a token (``bot.run``), a console chat without one."""
    token = settings.telegram_bot_token.get_secret_value() if settings.telegram_bot_token else ""
    if token:
        # The bot reports what it does ("talksbot ready …"), not only what goes wrong.
        setup_logging(logging.INFO, args.verbose, token)
        run_bot = args.run_bot
        if run_bot is None:  # `talksbot serve`; `python bot.py` passes its own
            from bot import run as run_bot
        run_bot(settings)
        return 0
    return console_chat(settings)


def console_chat(settings: Settings) -> int:
    """No token: chat on the terminal over the same answer pipeline (or answer stdin lines)."""
    from retrieval.answer import EXAMPLE_QUESTION, render_text

    interactive = sys.stdin.isatty()
    if interactive:
        _echo("talksbot: no TELEGRAM_BOT_TOKEN set; starting a console chat.")
    answerer = open_answerer(settings, quiet=not interactive)
    if interactive:
        answerer.searcher.warm_up()
        _echo("Ask about the Russia–Ukraine peace talks coverage (Ctrl-D to quit).")
    while True:
        try:
            line = input("> " if interactive else "")
        except EOFError:
            break
        if not line.strip():
            continue
        if re.match(r"\s*/[A-Za-z_]+(@\w+)?(\s|$)", line):  # "/help": no search finds it
            print(
                f"{line.split()[0][:40]} is a command of the Telegram bot; here every line is a "
                f"question, for example: {EXAMPLE_QUESTION}\n",
                flush=True,
            )
            continue
        print(render_text(answerer.answer(line)) + "\n", flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="talksbot", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="more detail")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the Telegram bot (or a console chat without a token)")
    p = sub.add_parser("ingest", help="add articles: files, folders (.md, .txt, .html) or URLs")
    p.add_argument("paths", nargs="+", help="files, folders or http(s) addresses")
    p = sub.add_parser("ask", help="answer a question with citations")
    p.add_argument("question", nargs="*", help="the question; omit to read questions from stdin")
    p.add_argument("--json", action="store_true", help="one JSON object per question")
    p.add_argument(
        "-k", type=_between(1, 50), default=3, help="citations per answer (default 3, at most 50)"
    )
    p = sub.add_parser("eval", help="hit@k, MRR and abstention on a JSONL question file")
    p.add_argument(
        "file", help="one JSON object a line: question, answer_contains, answerable, doc"
    )
    p.add_argument("--json", action="store_true", help="the figures and per-question rows as JSON")
    p.add_argument(
        "--folds",
        type=_between(0, 50, not_one=True),
        default=5,
        help="cross-validation folds, 2-50 (0: the shipped ranker only)",
    )
    p.add_argument(
        "--splits",
        type=_between(1, 20),
        default=1,
        help="cross-validate over this many splits into folds, 1-20, and print their mean too "
        "(one split is noisy: a question or two either way)",
    )
    p = sub.add_parser("fit-ranker", help="fit the ranker and abstainer on a JSONL question file")
    p.add_argument("file", help="questions as for eval")
    p.add_argument(
        "--out",
        help="where to write it (default: ranker.json in the data dir, which that store's "
        "questions are then answered with; retrieval/rankers/<model>.json ships it)",
    )
    p = sub.add_parser("delete", help="remove articles by URL or by the file they came from")
    p.add_argument("items", nargs="+", metavar="URL_OR_FILE")
    sub.add_parser("reindex", help="rebuild the search index from the store (no model needed)")
    sub.add_parser("stats", help="what the store holds").add_argument("--json", action="store_true")
    p = sub.add_parser("feeds", help="RSS/Atom feeds the bot polls: list, add, remove, poll")
    p.add_argument("action", choices=["list", "add", "remove", "poll"], nargs="?", default="list")
    p.add_argument("url", nargs="?")
    # -v after the command too ("talksbot ask -v …"); SUPPRESS keeps one given before it.
    for command in sub.choices.values():
        command.add_argument(
            "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="more detail"
        )
    return parser


def _between(low: int, high: int, not_one: bool = False) -> Callable[[str], int]:
    """An argparse type: a whole number in [low, high] (1 excluded with ``not_one``: one
    fold cross-validates nothing)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not_one and value == 1:
            raise argparse.ArgumentTypeError(
                f"1 fold cross-validates nothing: use {low} (the shipped ranker only) or 2-{high}"
            )
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not between {low} and {high}")
        return value

    return parse


COMMANDS = {
    "serve": cmd_serve,
    "ingest": cmd_ingest,
    "ask": cmd_ask,
    "eval": cmd_eval,
    "fit-ranker": cmd_fit_ranker,
    "stats": cmd_stats,
    "reindex": cmd_reindex,
    "delete": cmd_delete,
    "feeds": cmd_feeds,
}


def main(argv: list[str] | None = None, run_bot: Callable[[Settings], None] | None = None) -> int:
    """Run one command; every failure ends in one line on stderr and exit code 1."""
    from index.loaders import IngestError
    from index.mpnet import ModelFileError
    from index.store import StoreError
    from retrieval.evaluate import EvalFileError
    from retrieval.rank import RankerError

    args = build_parser().parse_args(argv)
    args.run_bot = run_bot
    command = args.command or "serve"
    level = logging.INFO if args.verbose else logging.WARNING
    setup_logging(level, args.verbose)
    settings: Settings | None = None

    def say(line: str) -> None:
        """The one stderr line, without the token (a path or a message may hold it)."""
        token = settings.telegram_bot_token if settings is not None else None
        if token is not None and token.get_secret_value():
            line = line.replace(token.get_secret_value(), "<token>")
        _echo(f"talksbot: {line}")

    try:
        settings = load_settings()
        token = settings.telegram_bot_token
        setup_logging(level, args.verbose, token.get_secret_value() if token else "")
        return COMMANDS[command](args, settings)
    except (
        CliError,
        IngestError,
        StoreError,
        EvalFileError,
        RankerError,
        ModelFileError,
        SettingsError,
    ) as exc:
        say(str(exc))
        return 1
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # last resort: one line, details only with -v
        log.debug("unexpected error", exc_info=True)
        from telegram.error import BadRequest, NetworkError

        if type(exc).__name__ == "InvalidToken":
            line = "Telegram rejected the bot token (check TELEGRAM_BOT_TOKEN)"
        elif isinstance(exc, BadRequest):  # a NetworkError too: Telegram answered, refusing
            line = f"the Telegram Bot API refused a start-up request: {exc}"
        elif isinstance(exc, NetworkError) and settings is not None:
            line = (
                f"cannot reach the Telegram Bot API at {settings.telegram_api_base_url} ({exc}); "
                "check TELEGRAM_API_BASE_URL and the network"
            )
        elif isinstance(exc, OSError) and exc.filename:
            # A file that cannot be read or written: say which, and why.
            where = exc.filename2 or exc.filename
            line = f"cannot use {where}: {exc.strerror or exc}"
            if settings is not None and str(where).startswith(str(settings.data_dir)):
                line += " (the data dir's files must be readable and writable by this user)"
        else:
            line = f"unexpected error: {type(exc).__name__}: {exc}"
        say(line)
        return 1


if __name__ == "__main__":
    sys.exit(main())
