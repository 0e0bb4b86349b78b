"""Webhook servers on loopback for the notification tests: one that records what it receives, one that
accepts connections and never answers."""

from __future__ import annotations

import json
import socket
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator


class Received:
    """What the recording webhook was sent: one entry per request (path, headers, raw body)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def add(self, path: str, headers: dict[str, str], body: bytes) -> None:
        with self.lock:
            self.requests.append({"path": path, "headers": headers, "body": body})

    @property
    def raw(self) -> list[bytes]:
        with self.lock:
            return [r["body"] for r in self.requests]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(body) for body in self.raw]


@contextmanager
def recording_webhook(status: int = 200) -> Iterator[tuple[str, Received]]:
    """A webhook at ``http://127.0.0.1:<port>/hook/<secret-looking path>`` answering ``status``."""
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            length = int(self.headers.get("Content-Length") or 0)
            received.add(self.path, dict(self.headers), self.rfile.read(length))
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook/T000/B000/webhook-secret-part", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextmanager
def hanging_webhook() -> Iterator[str]:
    """A webhook that accepts every connection, reads nothing and never answers, until the test ends."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    stop = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except (socket.timeout, OSError):
                continue
            held.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    finally:
        stop.set()
        thread.join(timeout=10)
        for connection in held:
            connection.close()
        listener.close()


def closed_port_url() -> str:
    """A webhook URL on a loopback port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
