"""What the tests run against: a Bot API server of our own (``bot_api``), a local web server
(``web``), the bot in process (``in_process``) or as ``python bot.py`` (``bot_process``), the
CLI in a subprocess and data dirs built with the fake embedder (``data``), and helpers that
talk to the bot and wait on what it sends (``chat``)."""
