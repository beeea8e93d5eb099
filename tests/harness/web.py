"""A small web server on 127.0.0.1 serving feeds and article pages the tests write."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeWeb:
    def __init__(self) -> None:
        self.pages: dict[str, tuple[int, str, bytes, dict]] = {}
        self.hits: list[str] = []
        self._server: ThreadingHTTPServer | None = None
        self.base = ""

    def put(
        self,
        path: str,
        body: str | bytes,
        content_type: str = "text/html; charset=utf-8",
        status: int = 200,
        headers: dict | None = None,
    ) -> str:
        data = body.encode() if isinstance(body, str) else body
        self.pages[path] = (status, content_type, data, headers or {})
        return self.base + path

    def redirect(self, path: str, to: str) -> str:
        return self.put(path, b"", status=302, headers={"Location": to})

    def start(self) -> str:
        web = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                web.hits.append(self.path)
                path = self.path.split("?")[0]
                if path == "/drip":  # a byte every half second, never finishing
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.end_headers()
                    for _ in range(120):
                        try:
                            self.wfile.write(b"<")
                            self.wfile.flush()
                        except OSError:
                            return
                        time.sleep(0.5)
                    return
                if path == "/huge":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.end_headers()
                    chunk = b"<p>" + b"war " * 2500 + b"</p>\n"
                    for _ in range(700):  # about 7 MB, no Content-Length
                        self.wfile.write(chunk)
                    return
                status, content_type, data, headers = web.pages.get(
                    path, (404, "text/plain", b"not found", {})
                )
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address) -> None:
                pass

        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self.base

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()


def article_html(title: str, outlet: str, date: str, paragraphs: list[str], url: str = "") -> str:
    body = "\n".join(f"<p>{p}</p>" for p in paragraphs)
    canonical = f'<link rel="canonical" href="{url}">' if url else ""
    return (
        f"<!DOCTYPE html><html><head><title>{title}</title>"
        f'<meta property="og:title" content="{title}">'
        f'<meta property="og:site_name" content="{outlet}">'
        f'<meta name="date" content="{date}">{canonical}</head>'
        f"<body><nav><a href='/'>Home</a> <a href='/subscribe'>Subscribe</a></nav>"
        f"<article><h1>{title}</h1>{body}</article><footer>© {outlet}</footer></body></html>"
    )


def rss(items: list[tuple[str, str]], title: str = "Peace talks wire") -> str:
    """RSS 2.0 with (title, link) items."""
    entries = "".join(
        f"<item><title>{t}</title><link>{link}</link><guid>{link}</guid>"
        f"<pubDate>Fri, 27 Feb 2026 10:00:00 GMT</pubDate></item>"
        for t, link in items
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        f"<title>{title}</title><link>http://example.org/</link><description>d</description>"
        f"{entries}</channel></rss>"
    )
