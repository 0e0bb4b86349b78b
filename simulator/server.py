"""Serving a ``SimulatorApp`` over real HTTP on the loopback interface."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .app import SimulatorApp
from .infrastructure import DroppedConnection

log = logging.getLogger(__name__)


def _check_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        # the fake accepts a well-known token: never expose it on a network
        raise ValueError(f"the simulator only listens on loopback addresses, not {host!r}")


def _server(app: SimulatorApp, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as httpx clients expect
        # headers and body go out in two writes: without this, Nagle plus
        # delayed ACKs add ~40 ms to every keep-alive response
        disable_nagle_algorithm = True

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            host_header = self.headers.get("Host") or _netloc(self.server.server_address)
            try:
                status, headers, payload = app.handle(self.command, f"http://{host_header}{self.path}",
                                                      dict(self.headers.items()), body)
            except DroppedConnection:
                # An outage that drops connections: close without a byte of answer.
                self.close_connection = True
                return
            # send_response would add the host's own Date header; the app sends the API's clock.
            self.log_request(status)
            self.send_response_only(status)
            self.send_header("Server", self.version_string())
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            pass  # SimulatorApp.handle already logs one line per request

        def log_message(self, format: str, *args: object) -> None:
            log.debug("%s - %s", self.address_string(), format % args)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    return Server((host, port), Handler)


def _netloc(address: Any) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _base_url(server: ThreadingHTTPServer, host: str) -> str:
    return f"http://{_netloc((host, server.server_address[1]))}"


@contextlib.contextmanager
def serve(app: SimulatorApp, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``app`` in a daemon thread; yields the base URL, stops on exit.

    ``port=0`` picks a free port.
    """
    _check_loopback(host)
    server = _server(app, host, port)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="certiverse-simulator", daemon=True)
    thread.start()
    base_url = _base_url(server, host)
    log.info("simulator listening on %s", base_url)
    try:
        yield base_url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def run_forever(app: SimulatorApp, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve ``app`` until interrupted (Ctrl-C); for the CLI."""
    _check_loopback(host)
    server = _server(app, host, port)
    log.info("simulator listening on %s (Ctrl-C to stop)", _base_url(server, host))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log.info("simulator stopped")
    finally:
        server.server_close()
