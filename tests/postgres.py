"""A throwaway PostgreSQL server for the tests: initdb + pg_ctl in a temporary folder.

Used when no server is configured (env ``CERTIVERSE_TEST_POSTGRES`` = a DSN).
PostgreSQL refuses to run as root, so when the tests run as root the server's
files belong to the ``postgres`` user and its commands run through ``runuser``.
It listens on a free loopback port and keeps its socket in its own folder, so
it never clashes with a system cluster.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Sequence

ENV_DSN = "CERTIVERSE_TEST_POSTGRES"
SERVER_USER = "postgres"
PASSWORD = "certiverse-test"  # a throwaway server on loopback, gone at session end
# Durability is worth nothing for a throwaway cluster; these make loads faster.
FAST_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


class PostgresUnavailable(RuntimeError):
    """No server could be configured or started; the message says why."""


@dataclass
class PostgresServer:
    """A reachable server: ``dsn`` points at its maintenance database ``postgres``."""

    dsn: str
    data_dir: str | None = None  # set when this module started the server
    bin_dir: str | None = None

    def create_database(self, name: str) -> str:
        """Create (or re-create) an empty database; returns its DSN."""
        import psycopg2
        from psycopg2 import sql

        connection = psycopg2.connect(self.dsn)
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
                cursor.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        finally:
            connection.close()
        return database_dsn(self.dsn, name)

    def stop(self) -> None:
        """Stop the server and delete its files, if this module started it."""
        if self.data_dir is None or self.bin_dir is None:
            return
        root = os.path.dirname(self.data_dir)
        _run(self.bin_dir, ["pg_ctl", "-D", self.data_dir, "-m", "immediate", "-w", "stop"], check=False)
        shutil.rmtree(root, ignore_errors=True)
        self.data_dir = None


def database_dsn(dsn: str, database: str) -> str:
    """The same server and user, another database, as a URL (the form dlt's credentials parse)."""
    from urllib.parse import quote, urlencode

    from psycopg2.extensions import parse_dsn

    params = parse_dsn(dsn)  # accepts URLs and key=value strings alike
    user = quote(params.pop("user", ""), safe="")
    password = params.pop("password", "")
    auth = f"{user}:{quote(password, safe='')}@" if password else f"{user}@" if user else ""
    host = params.pop("host", "127.0.0.1")
    port = params.pop("port", "")
    params.pop("dbname", None)
    query = f"?{urlencode(params)}" if params else ""
    return f"postgresql://{auth}{host}{':' + port if port else ''}/{database}{query}"


def configured_or_started() -> PostgresServer:
    """The server named by ``CERTIVERSE_TEST_POSTGRES``, else a new throwaway one."""
    dsn = os.environ.get(ENV_DSN)
    if dsn:
        _wait_until_ready(dsn, timeout=10)
        return PostgresServer(dsn=dsn)
    return start_throwaway()


def find_bin_dir() -> str:
    """The folder of initdb/pg_ctl: PATH first, then Debian's /usr/lib/postgresql/<version>/bin."""
    on_path = shutil.which("initdb")
    if on_path:
        return os.path.dirname(on_path)
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key, reverse=True)
    if not candidates:
        raise PostgresUnavailable("no PostgreSQL server binaries (initdb) on PATH or in /usr/lib/postgresql/*/bin")
    return os.path.dirname(candidates[0])


def start_throwaway(timeout: float = 30.0) -> PostgresServer:
    """initdb a cluster in a new temporary folder and start it on a free loopback port."""
    bin_dir = find_bin_dir()
    root = tempfile.mkdtemp(prefix="certiverse-pg-")
    data_dir = os.path.join(root, "data")
    if os.geteuid() == 0:
        _chown_to_server_user(root)
    server = PostgresServer(dsn="", data_dir=data_dir, bin_dir=bin_dir)
    try:
        # dlt's Postgres credentials require a password, so TCP connections use one.
        password_file = os.path.join(root, "password")
        with open(password_file, "w") as handle:
            handle.write(PASSWORD + "\n")
        if os.geteuid() == 0:
            _chown_to_server_user(password_file)
        _run(bin_dir, ["initdb", "-D", data_dir, "-U", "postgres", f"--pwfile={password_file}",
                       "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync"])
        port = _free_port()
        options = " ".join(
            [f"-p {port}", "-c listen_addresses=127.0.0.1", f"-k {root}"] + [f"-c {s}" for s in FAST_SETTINGS]
        )
        _run(bin_dir, ["pg_ctl", "-D", data_dir, "-o", options, "-l", os.path.join(root, "server.log"),
                       "-w", "-t", str(int(timeout)), "start"])
        server.dsn = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/postgres"
        _wait_until_ready(server.dsn, timeout)
    except Exception as exc:
        log_tail = _tail(os.path.join(root, "server.log"))
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
        raise PostgresUnavailable(f"could not start a PostgreSQL server: {exc}{log_tail}") from exc
    return server


def _run(bin_dir: str, argv: Sequence[str], check: bool = True) -> subprocess.CompletedProcess:
    command = [os.path.join(bin_dir, argv[0]), *argv[1:]]
    if os.geteuid() == 0:
        command = ["runuser", "-u", SERVER_USER, "--", *command]
    result = subprocess.run(command, capture_output=True, text=True, cwd="/")
    if check and result.returncode != 0:
        raise PostgresUnavailable(f"{' '.join(argv[:2])} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def _chown_to_server_user(path: str) -> None:
    import pwd

    try:
        entry = pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise PostgresUnavailable(f"running as root and there is no '{SERVER_USER}' user to run the server") from None
    os.chown(path, entry.pw_uid, entry.pw_gid)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_ready(dsn: str, timeout: float) -> None:
    import psycopg2

    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg2.connect(dsn, connect_timeout=3).close()
            return
        except psycopg2.OperationalError as exc:
            if time.monotonic() > deadline:
                raise PostgresUnavailable(f"PostgreSQL at {_redact(dsn)} is not answering: {exc}") from exc
            time.sleep(0.2)


def _redact(dsn: str) -> str:
    from psycopg2.extensions import parse_dsn

    try:
        params = parse_dsn(dsn)
    except Exception:
        return "<unparsable DSN>"
    return f"{params.get('host', 'localhost')}:{params.get('port', 5432)}/{params.get('dbname', '')}"


def _tail(path: str, lines: int = 10) -> str:
    try:
        with open(path) as handle:
            return "\nserver log:\n" + "".join(handle.readlines()[-lines:])
    except OSError:
        return ""


def _version_key(path: str) -> tuple[int, ...]:
    version = path.split("/")[4]
    return tuple(int(part) for part in version.split(".") if part.isdigit())
