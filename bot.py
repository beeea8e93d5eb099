"""talksbot's Telegram front end. ``python bot.py`` is ``talksbot serve``."""

from __future__ import annotations

import sys

from config import Settings


def run_bot(settings: Settings) -> None:
    raise SystemExit("talksbot: the Telegram bot is not built yet")


def main() -> int:
    import cli

    return cli.main(["serve", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
