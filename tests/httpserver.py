"""A local HTTP server (127.0.0.1 only) that serves real images and injects faults by path.

    /img/NAME          the image
    /404/NAME          404
    /flaky/NAME        500 on the first request, then the image
    /ratelimit/NAME    429 with Retry-After: 1 on the first request, then the image
    /slow/NAME?s=SEC   waits SEC seconds, then the image
    /truncated/NAME    promises more bytes than it sends, then closes the connection
    /cut/NAME          a JPEG cut in half, with a matching Content-Length
    /html/NAME         an HTML error page with status 200
    /empty/NAME        status 200, zero bytes
    /redirect/NAME     302 to /img/NAME
    /loop/NAME         302 to itself
    /big/NAME          a body larger than any sane max_bytes (declared)
    /bigstream/NAME    the same without Content-Length
Every request is counted per path (``hits``), so tests can assert retries and no refetch.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class FaultServer:
    def __init__(self, images: dict[str, bytes]) -> None:
        self.images = images
        self.hits: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0  #: most requests handled at the same time
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):  # noqa: A002 - quiet
                return

            def do_GET(self):  # noqa: N802 - http.server's naming
                with server.lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    self._respond()
                finally:
                    with server.lock:
                        server.in_flight -= 1

            def _respond(self):
                parts = urlsplit(self.path)
                with server.lock:
                    server.hits[parts.path] += 1
                    count = server.hits[parts.path]
                kind, _, name = parts.path.strip("/").partition("/")
                body = server.images.get(name)
                if body is None and kind not in ("loop",):
                    return self._send(404, b"no such image", "text/plain")
                if kind == "img":
                    return self._send(200, body)
                if kind == "404":
                    return self._send(404, b"not found", "text/plain")
                if kind == "flaky":
                    return (
                        self._send(500, b"oops", "text/plain")
                        if count == 1
                        else self._send(200, body)
                    )
                if kind == "ratelimit":
                    if count == 1:
                        return self._send(429, b"slow down", "text/plain", {"Retry-After": "1"})
                    return self._send(200, body)
                if kind == "slow":
                    time.sleep(float(parse_qs(parts.query).get("s", ["2"])[0]))
                    return self._send(200, body)
                if kind == "truncated":
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Content-Length", str(len(body) + 5000))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.close_connection = True
                    return None
                if kind == "cut":
                    return self._send(200, body[: len(body) // 2])
                if kind == "html":
                    return self._send(
                        200, b"<html><body>Poster not found</body></html>", "text/html"
                    )
                if kind == "empty":
                    return self._send(200, b"")
                if kind == "redirect":
                    return self._send(302, b"", "text/plain", {"Location": f"/img/{name}"})
                if kind == "loop":
                    return self._send(302, b"", "text/plain", {"Location": parts.path})
                if kind == "big":
                    return self._send(200, body + b"\0" * 3_000_000)
                if kind == "bigstream":
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(body + b"\0" * 3_000_000)
                    self.close_connection = True
                    return None
                return self._send(404, b"unknown fault", "text/plain")

            def _send(self, code, body, ctype="image/jpeg", headers=None):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                # clients hang up on purpose (oversized and truncated bodies); that is the
                # test, not a server failure worth a traceback on stderr
                if not isinstance(sys.exc_info()[1], (ConnectionError, BrokenPipeError)):
                    super().handle_error(request, client_address)

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FaultServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
