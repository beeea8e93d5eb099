"""Subscriptions and pushes: new stories fanned out to subscribed chats through a queue kept in
the store, delivered within Telegram's limits.

``subscriptions`` checks what a chat asks for, ``fanout`` turns new stories into queue rows,
``queue`` decides what an outcome does to a row, ``deliver`` paces and sends. The SQL lives in
``index/store_pushes.py``; which sentences of a story fit a topic, in ``retrieval/topics.py``.
"""
