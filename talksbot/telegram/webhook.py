"""The webhook endpoint: Telegram posts updates here instead of being polled.

python-telegram-bot's own webhook server reads a whole request body (up to 100 MB) before it
checks the secret, so unsigned requests could fill the bot's memory. This endpoint checks the
secret and the declared size as soon as the headers are in, before reading any of the body,
and reads at most ``MAX_UPDATE_BYTES`` (an update is a few KB). It runs the Application the way
``Application.run_webhook`` does: initialize, post_init, setWebhook, start; on SIGINT/SIGTERM
stop, post_stop, shutdown, post_shutdown.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import signal
import time

import tornado.web
from telegram import Update
from telegram.ext import Application
from tornado.httpserver import HTTPServer
from tornado.iostream import IOStream

log = logging.getLogger("talksbot.bot")

PATH = "/telegram"
MAX_UPDATE_BYTES = 1 << 20
BODY_TIMEOUT = 30.0  # seconds to send a body once its headers are in
IDLE_TIMEOUT = 60.0  # seconds a kept-alive connection may sit idle (or send its headers)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


@tornado.web.stream_request_body
class Quiet(tornado.web.RequestHandler):
    """A handler whose body is streamed (so ``prepare`` can refuse from the headers alone,
    before any of it is read) and whose refusals say nothing and log nothing."""

    def data_received(self, chunk: bytes) -> None:
        pass  # refused or not wanted: dropped unread

    def write_error(self, status_code: int, **kwargs: object) -> None:
        self.finish()  # no body: nothing about the bot for whoever knocks

    def log_exception(self, *args: object) -> None:  # refusals are not errors worth a trace
        pass


class UpdateHandler(Quiet):
    """POST ``PATH``: one update, signed with the secret given to Telegram."""

    def initialize(self, app: Application, secret: str) -> None:
        self.app, self.secret = app, secret
        self.body = bytearray()
        self.refused = False

    def refuse(self, status: int) -> None:
        self.refused = True
        self.send_error(status)

    def prepare(self) -> None:
        """Refuse before the body is read: unsigned (403), unsized or too large (411, 413)."""
        given = self.request.headers.get(SECRET_HEADER, "")
        length = self.request.headers.get("Content-Length", "")
        if self.request.method != "POST":
            self.refuse(405)
        elif not hmac.compare_digest(given.encode(), self.secret.encode()):
            self.refuse(403)
        elif not (length.isascii() and length.isdigit() and len(length) <= 9):
            self.refuse(411 if not length else 413)
        elif int(length) > MAX_UPDATE_BYTES:
            self.refuse(413)

    def data_received(self, chunk: bytes) -> None:
        if self.refused:
            return
        if len(self.body) + len(chunk) > MAX_UPDATE_BYTES:  # more than it declared
            self.refuse(413)
            return
        self.body.extend(chunk)

    async def post(self) -> None:
        if self.refused:
            return
        try:
            update = Update.de_json(json.loads(self.body), self.app.bot)
        except Exception:  # anything but an update, however malformed (nesting, overflow)
            update = None
        if update is None:
            self.send_error(400)
            return
        await self.app.update_queue.put(update)
        self.set_status(200)


class CappedServer(HTTPServer):
    """An HTTPServer that closes a new connection at once while ``max_connections`` are open:
    idle sockets could otherwise use up the process's file descriptors (then every accept
    fails, each logged, and the store cannot open files either). Telegram opens up to 40."""

    max_connections = 256

    refused_logged = 0.0  # when the last "at the cap" line was logged (one a minute at most)

    def handle_stream(self, stream: IOStream, address: tuple) -> None:
        if len(self._connections) >= self.max_connections:
            stream.close()
            now = time.monotonic()
            if now - self.refused_logged >= 60:
                self.refused_logged = now
                log.warning(
                    "webhook: %d connections open, the cap (TELEGRAM_WEBHOOK_MAX_CONNECTIONS); "
                    "new ones are closed unanswered",
                    self.max_connections,
                )
            return
        super().handle_stream(stream, address)


class Refuse(Quiet):
    """Any other path: 404 from the headers alone (tornado's own 404 reads the body first)."""

    def prepare(self) -> None:
        self.send_error(404)


async def serve(
    app: Application, listen: str, port: int, url: str, secret: str, max_connections: int = 256
) -> None:
    """Run ``app`` on webhook updates until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # No request log: its line holds the requested URL (up to 64 KB, the sender's choice) and
    # anyone could write it at will, unsigned (tornado's notes on malformed requests: logs.py).
    server = CappedServer(
        tornado.web.Application(
            [(PATH, UpdateHandler, {"app": app, "secret": secret}), (r".*", Refuse)],
            log_function=lambda _handler: None,
        ),
        max_body_size=MAX_UPDATE_BYTES,
        body_timeout=BODY_TIMEOUT,
        idle_connection_timeout=IDLE_TIMEOUT,
    )
    server.max_connections = max_connections
    await app.initialize()
    started = False  # post_init ran: post_stop undoes it (the push lease), even after a failure
    try:
        if app.post_init:
            await app.post_init(app)
        started = True
        server.listen(port, listen)
        await app.bot.set_webhook(url, secret_token=secret, allowed_updates=Update.ALL_TYPES)
        await app.start()
        log.info("webhook: listening on %s:%d%s", listen, port, PATH)
        await stop.wait()
    finally:
        server.stop()
        await server.close_all_connections()
        if app.running:
            await app.stop()
        if started and app.post_stop:
            await app.post_stop(app)
        await app.shutdown()
        if app.post_shutdown:
            await app.post_shutdown(app)
