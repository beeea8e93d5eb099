"""The Telegram front end, one module per concern. Handlers parse the update, call the answer
pipeline or the store (on the one answering thread) and reply with HTML from ``talksbot.render``.
``bot.py`` registers them."""
