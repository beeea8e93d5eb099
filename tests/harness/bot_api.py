"""A Bot API server of our own on 127.0.0.1: it feeds scripted updates through getUpdates,
answers the methods the bot calls, records every request, and can be told to fail."""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

from tests.harness.telegram_rules import COUNTED, FloodControl, bad_request, check_text, too_many

BOT = {
    "id": 999,
    "is_bot": True,
    "first_name": "Talks",
    "username": "talks_test_bot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": True,
}
USER = {"id": 42, "is_bot": False, "first_name": "Olena", "username": "olena"}


@dataclass
class Call:
    method: str
    params: dict
    at: float
    status: int = 200
    result: object = None


@dataclass
class FakeBotAPI:
    token: str = "123456:TEST-token-do-not-log"
    calls: list[Call] = field(default_factory=list)
    updates: list[dict] = field(default_factory=list)
    failures: dict[str, list[tuple[int, dict]]] = field(default_factory=dict)
    chats: dict[int, dict] = field(default_factory=dict)
    blocked: set[int] = field(default_factory=set)  # chats that blocked the bot (403)
    member_status: str = "administrator"  # what getChatMember says of any user
    migrated: dict[int, int] = field(default_factory=dict)  # group id -> its supergroup's id
    deleted: set[tuple[int, int]] = field(default_factory=set)  # (chat id, message id) deleted
    # (chat id, forum topic) -> Telegram's refusal of a send there: "message thread not found"
    # (deleted) or "TOPIC_CLOSED"
    refused_topics: dict[tuple[int, int], str] = field(default_factory=dict)
    # Telegram's flood control (30/s overall, 1/s per chat, 20/min per group): always on.
    flood: FloodControl = field(default_factory=FloodControl)

    def __post_init__(self) -> None:
        self._cond = threading.Condition()
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> str:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Telegram's servers do
            # Headers and body go out as two writes: with Nagle on, the body would wait for
            # the client's delayed ACK (40 ms) on every kept-alive response.
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                status, payload = api.handle(self.path, self.headers.get("Content-Type", ""), body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # a bot sends dozens of requests at once

            def handle_error(self, request, client_address) -> None:
                pass  # a client that hung up mid-poll (the bot shutting down) is normal

        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}/bot"

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    # -- scripting ------------------------------------------------------------------------
    def push(self, update: dict) -> int:
        with self._cond:
            update_id = next(self._update_ids)
            self.updates.append({"update_id": update_id, **update})
            self._cond.notify_all()
        return update_id

    def fail_next(self, method: str, status: int, payload: dict) -> None:
        with self._cond:
            self.failures.setdefault(method, []).append((status, payload))

    def flood_next(self, method: str = "sendMessage", retry_after: int = 1) -> None:
        """The next call to ``method`` gets 429 Too Many Requests with ``retry_after``."""
        self.fail_next(method, 429, too_many(retry_after))

    def calls_to(self, method: str) -> list[Call]:
        with self._cond:
            return [c for c in self.calls if c.method == method]

    def wait_for(self, method: str, predicate=lambda c: True, timeout: float = 20.0) -> Call:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for c in self.calls:
                    if c.method == method and c.status == 200 and predicate(c):
                        return c
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [(c.method, c.params.get("text", "")[:60]) for c in self.calls[-10:]]
                    raise AssertionError(f"no {method} matching within {timeout}s; last: {seen}")
                self._cond.wait(remaining)

    # -- protocol -------------------------------------------------------------------------
    def handle(self, path: str, content_type: str, body: str) -> tuple[int, dict]:
        prefix = f"/bot{self.token}/"
        if not path.startswith(prefix):
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        method = path[len(prefix) :]
        params = self._parse(content_type, body)
        with self._cond:
            failure = self.failures.get(method)
            status, payload = failure.pop(0) if failure else (200, None)
            if status == 200 and method in COUNTED:
                status, payload = self._refusal(method, params)
        if payload is None and method == "getUpdates":
            self._record(Call(method, params, time.monotonic(), status))
            return 200, {"ok": True, "result": self._get_updates(params)}
        result = self._result(method, params) if payload is None else None
        self._record(Call(method, params, time.monotonic(), status, result))
        return status, payload if payload is not None else {"ok": True, "result": result}

    def _refusal(self, method: str, params: dict) -> tuple[int, dict | None]:
        """What Telegram would refuse: a blocked or upgraded chat, text it cannot parse, and
        anything over its flood windows (only accepted messages count against them)."""
        chat_id = int(params["chat_id"]) if "chat_id" in params else None  # None: inline edit
        if method == "sendMessage" and chat_id in self.blocked:
            return 403, {
                "ok": False,
                "error_code": 403,
                "description": "Forbidden: bot was blocked by the user",
            }
        if chat_id in self.migrated:
            return 400, bad_request(
                "group chat was upgraded to a supergroup chat",
                migrate_to_chat_id=self.migrated[chat_id],
            )
        thread = int(params.get("message_thread_id") or 0)
        if method == "sendMessage" and (chat_id, thread) in self.refused_topics:
            return 400, bad_request(self.refused_topics[chat_id, thread])
        if method == "editMessageText" and (chat_id, int(params.get("message_id") or 0)) in (
            self.deleted
        ):
            return 400, bad_request("message to edit not found")
        reply = params.get("reply_parameters")
        if (
            isinstance(reply, dict)
            and (chat_id, int(reply.get("message_id") or 0)) in self.deleted
            and not reply.get("allow_sending_without_reply")
        ):
            return 400, bad_request("message to be replied not found")
        if method in ("sendMessage", "editMessageText"):
            error = check_text(params.get("text"), params.get("parse_mode"))
            if error:
                return 400, error
        chat = self.chats.get(chat_id, {})
        is_group = (chat_id or 0) < 0 or chat.get("type") in ("group", "supergroup")
        retry_after = self.flood.admit(chat_id, is_group, time.monotonic())
        if retry_after is not None:
            return 429, too_many(retry_after)
        return 200, None

    def refused(self, status: int = 429, method: str = "sendMessage") -> list[Call]:
        with self._cond:
            return [c for c in self.calls if c.method == method and c.status == status]

    def _record(self, call: Call) -> None:
        with self._cond:
            self.calls.append(call)
            self._cond.notify_all()

    @staticmethod
    def _parse(content_type: str, body: str) -> dict:
        if "json" in content_type:
            return json.loads(body or "{}")
        params = {}
        for key, value in parse_qsl(body, keep_blank_values=True):
            if value[:1] in "[{":
                with contextlib.suppress(ValueError):
                    value = json.loads(value)
            params[key] = value
        return params

    def _get_updates(self, params: dict) -> list[dict]:
        offset = int(params.get("offset") or 0)
        deadline = time.monotonic() + min(float(params.get("timeout") or 0), 0.5)
        with self._cond:
            while True:
                pending = [u for u in self.updates if u["update_id"] >= offset]
                if pending or time.monotonic() >= deadline:
                    return pending[:100]
                self._cond.wait(max(0.0, deadline - time.monotonic()))

    def _result(self, method: str, params: dict) -> object:
        if method == "getMe":
            return BOT
        if method == "getChatMember":
            return {
                "status": self.member_status,
                "user": {**USER, "id": int(params["user_id"])},
                **(
                    {
                        "can_be_edited": False,
                        "is_anonymous": False,
                        "can_manage_chat": True,
                        "can_delete_messages": True,
                        "can_manage_video_chats": True,
                        "can_restrict_members": True,
                        "can_promote_members": False,
                        "can_change_info": True,
                        "can_invite_users": True,
                        "can_post_stories": True,
                        "can_edit_stories": True,
                        "can_delete_stories": True,
                    }
                    if self.member_status == "administrator"
                    else {}
                ),
            }
        if method in ("sendMessage", "editMessageText"):
            chat_id = int(params["chat_id"])
            message = {
                "message_id": int(params.get("message_id") or next(self._message_ids)),
                "date": int(time.time()),
                "chat": self.chats.get(chat_id, {"id": chat_id, "type": "private"}),
                "from": BOT,
                "text": params.get("text", ""),
            }
            if params.get("message_thread_id"):
                message["message_thread_id"] = int(params["message_thread_id"])
                message["is_topic_message"] = True
            if isinstance(params.get("reply_markup"), dict):
                message["reply_markup"] = params["reply_markup"]
            return message
        return True

    # -- update builders ------------------------------------------------------------------
    def message(
        self,
        text: str,
        chat_id: int = 42,
        chat_type: str = "private",
        reply_to: dict | None = None,
        thread_id: int | None = None,
        user: dict | None = None,
    ) -> dict:
        chat = {"id": chat_id, "type": chat_type}
        if chat_type != "private":
            chat.update(title="Peace talks watchers", is_forum=thread_id is not None)
        self.chats[chat_id] = chat
        message = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": chat,
            "from": user or USER,
            "text": text,
        }
        entities = []
        if text.startswith("/"):
            entities.append({"type": "bot_command", "offset": 0, "length": len(text.split()[0])})
        mention = f"@{BOT['username']}"
        if mention in text and not text.startswith("/"):
            entities.append(
                {"type": "mention", "offset": text.index(mention), "length": len(mention)}
            )
        if entities:
            message["entities"] = entities
        if reply_to:
            message["reply_to_message"] = reply_to
        if thread_id is not None:
            message["message_thread_id"] = thread_id
            message["is_topic_message"] = True
        return {"message": message}

    def callback(self, data: str, message: dict) -> dict:
        return {
            "callback_query": {
                "id": f"cq{next(self._message_ids)}",
                "from": USER,
                "chat_instance": "ci",
                "data": data,
                "message": message,
            }
        }

    def inline(self, query: str) -> dict:
        return {
            "inline_query": {
                "id": f"iq{next(self._message_ids)}",
                "from": USER,
                "query": query,
                "offset": "",
            }
        }

    def sent_message(self, call: Call) -> dict:
        """The Message the bot got back for a sendMessage call, as an update would carry it."""
        return dict(call.result)
