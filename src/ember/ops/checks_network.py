"""Doctor checks about the network: ports, exposure, and the services a role depends on."""

from __future__ import annotations

import errno
import json
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ember.client import Client, ClientError
from ember.config import Settings, is_loopback, split_host
from ember.ops.findings import FAIL, INFO, PASS, WARN, Check, DoctorContext, Finding
from ember.probes import READYZ, Readiness

TIMEOUT_S = 5.0


def _serves_engine(settings: Settings) -> bool:
    return settings.role in ("all", "engine")


def _serves_web(settings: Settings) -> bool:
    return settings.role in ("all", "web")


# -- who holds a port ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Holder:
    pid: int | None
    command: str


def _listening_inodes(proc: Path, port: int) -> set[str]:
    """Socket inodes listening on ``port`` (any address), from /proc/net/tcp and tcp6 (state 0A = LISTEN)."""
    found = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rpartition(":")[2], 16) == port:
                found.add(fields[9])
    return found


def port_holders(proc: Path, port: int) -> list[Holder]:
    """The processes with a listening socket on ``port``; a socket whose owner this user cannot see has pid None."""
    inodes = _listening_inodes(proc, port)
    holders: list[Holder] = []
    seen: set[str] = set()
    for pid_dir in proc.iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            links = {os.readlink(fd) for fd in (pid_dir / "fd").iterdir()}
        except OSError:  # gone, or not ours to read
            continue
        owned = {link[len("socket:["):-1] for link in links if link.startswith("socket:[")} & inodes
        if owned:
            seen |= owned
            holders.append(Holder(int(pid_dir.name), _command(pid_dir)))
    if inodes - seen:
        holders.append(Holder(None, "a process this user cannot see (run `ember doctor` as root to name it)"))
    return holders


def _command(pid_dir: Path) -> str:
    try:
        raw = (pid_dir / "cmdline").read_bytes()
    except OSError:
        return "?"
    return " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)[:200] or "?"


def _is_ember_server(command: str) -> bool:
    words = command.split()
    return "serve" in words and any(w.endswith("/ember") or w == "ember" or w.startswith("ember.cli") for w in words)


def _try_bind(host: str, port: int) -> OSError | None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc
    return None


def _port_finding(context: DoctorContext, what: str, address: str) -> Finding:
    host, port = split_host(address)
    error = _try_bind(host, port)
    if error is None:
        return Finding("port", PASS, f"{what} port {host}:{port} is free")
    if error.errno == errno.EACCES:
        return Finding("port", FAIL, f"cannot bind {what} port {host}:{port}: {error.strerror}",
                       "use a port above 1023, or grant CAP_NET_BIND_SERVICE (AmbientCapabilities= in systemd)")
    if error.errno != errno.EADDRINUSE:
        return Finding("port", FAIL, f"cannot bind {what} address {host}:{port}: {error.strerror}",
                       "use an address of this host (e.g. 0.0.0.0 for all interfaces) in the bind setting")
    holders = port_holders(context.proc, port)
    named = "; ".join(f"pid {h.pid}: {h.command}" if h.pid else h.command for h in holders) or "unknown"
    if holders and all(h.pid and _is_ember_server(h.command) for h in holders):
        return Finding("port", INFO, f"{what} port {host}:{port} is taken by an Ember server already running "
                       f"({named})", "nothing to do if that is the service; stop it before starting another")
    stop = f"stop pid {holders[0].pid}" if holders and holders[0].pid else "stop the process holding it"
    return Finding("port", FAIL, f"{what} port {host}:{port} is already taken by {named}",
                   f"{stop}, or give Ember another port ({_port_setting(what)})")


def _port_setting(what: str) -> str:
    return "EMBER_WEB_HOST" if what == "web" else "OLLAMA_HOST / EMBER_HOST"


def check_port(context: DoctorContext) -> list[Finding]:
    settings = context.settings
    found = []
    if _serves_engine(settings):
        found.append(_port_finding(context, "engine", settings.host))
    if _serves_web(settings):
        found.append(_port_finding(context, "web", settings.web_host))
    return found


# -- exposure --------------------------------------------------------------------------------------


def check_exposure(context: DoctorContext) -> list[Finding]:
    settings = context.settings
    found = []
    if _serves_engine(settings):
        found.append(_engine_exposure(settings))
    if _serves_web(settings):
        host = split_host(settings.web_host)[0]
        if not is_loopback(host) and settings.anonymous:
            found.append(Finding("exposure", FAIL, f"the web role binds {host} with EMBER_ANONYMOUS on: "
                                 "its /api and /v1 would be open to anyone who can reach it",
                                 "unset EMBER_ANONYMOUS and create API keys (`ember keys create NAME`)"))
    return found


def _engine_exposure(settings: Settings) -> Finding:
    host = settings.bind_host
    if is_loopback(host):
        return Finding("exposure", PASS, f"the engine binds loopback ({host}): only this host can reach it")
    if settings.engine_key:
        return Finding("exposure", PASS, f"the engine binds {host} and requires EMBER_ENGINE_KEY")
    if settings.allow_open_engine:
        return Finding("exposure", WARN, f"the engine binds {host} with no key (EMBER_ALLOW_OPEN_ENGINE is on): "
                       "anyone who can reach it can run and delete models",
                       "set EMBER_ENGINE_KEY, or firewall the port so only the web role reaches it")
    return Finding("exposure", FAIL, f"the engine binds {host} without EMBER_ENGINE_KEY: it would be open to "
                   "anyone who can reach it", "set EMBER_ENGINE_KEY (and the same key on the web role), or bind "
                   "127.0.0.1; EMBER_ALLOW_OPEN_ENGINE=1 accepts the risk")


# -- services --------------------------------------------------------------------------------------


def check_database(context: DoctorContext) -> list[Finding]:
    settings = context.settings
    if not settings.database_url:
        return [Finding("database", PASS, "no EMBER_DATABASE_URL: the web role uses SQLite at "
                        f"{settings.home_path / 'ember.db'}")]
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    from ember.db import Database
    from ember.errors import EmberError

    try:
        db = Database.open(settings.database_url)
    except EmberError as exc:
        return [Finding("database", FAIL, exc.message, "fix EMBER_DATABASE_URL")]
    try:
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0][:200]
        return [Finding("database", FAIL, f"{db.display_url} does not answer: {reason}",
                        "start the database, or fix the host, credentials or database name in EMBER_DATABASE_URL")]
    finally:
        db.close()
    return [Finding("database", PASS, f"{db.display_url} answers")]


def check_redis(context: DoctorContext) -> list[Finding]:
    url = context.settings.redis_url
    if not url:
        return [Finding("redis", PASS, "no EMBER_REDIS_URL: rate limits are kept in memory (one web replica)")]
    shown = redis_display(url)
    try:
        reply = redis_ping(url)
    except (OSError, ValueError) as exc:
        return [Finding("redis", FAIL, f"{shown} does not answer: {exc}",
                        "start Redis, or fix the host and port in EMBER_REDIS_URL")]
    if reply != "+PONG":
        return [Finding("redis", FAIL, f"{shown} refused PING: {reply[:120]}",
                        "put the password in EMBER_REDIS_URL (redis://:PASSWORD@host:6379/0)")]
    return [Finding("redis", PASS, f"{shown} answers PING")]


def redis_display(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}{parts.path}"


def redis_ping(url: str) -> str:
    """AUTH (if the URL has a password) then PING over a plain socket; the reply line to PING."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError(f"not a redis:// URL: {parts.scheme}://")
    with socket.create_connection((parts.hostname or "localhost", parts.port or 6379), timeout=TIMEOUT_S) as raw:
        sock = ssl.create_default_context().wrap_socket(raw, server_hostname=parts.hostname) \
            if parts.scheme == "rediss" else raw
        reader = sock.makefile("rb")
        if parts.password:
            words = [unquote(parts.username), unquote(parts.password)] if parts.username else [unquote(parts.password)]
            sock.sendall(_resp("AUTH", *words))
            auth = reader.readline().decode(errors="replace").strip()
            if not auth.startswith("+OK"):
                return auth
        sock.sendall(_resp("PING"))
        return reader.readline().decode(errors="replace").strip()


def _resp(*words: str) -> bytes:
    encoded = [w.encode() for w in words]
    return f"*{len(encoded)}\r\n".encode() + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in encoded)


def check_engines(context: DoctorContext) -> list[Finding]:
    settings = context.settings
    if not settings.engines:
        return [Finding("engines", PASS, "no EMBER_ENGINES: the web role uses the local engine "
                        f"{settings.base_url}")] if settings.role == "web" else []
    return [_engine_finding(url, settings.engine_key) for url in settings.engines]


def _engine_finding(url: str, key: str) -> Finding:
    client = Client(url, timeout=TIMEOUT_S, api_key=key or None)
    try:
        body = client.request("GET", READYZ)
    except ClientError as exc:
        if exc.status == 503:
            return Finding("engines", FAIL, f"{url} is not ready: {_failed_checks(str(exc))}",
                           f"see `curl {url}{READYZ}` and the engine's log")
        if exc.status in (401, 403):
            return Finding("engines", FAIL, f"{url} refused the engine key: {exc}",
                           "set the same EMBER_ENGINE_KEY on the web role and the engines")
        return Finding("engines", FAIL, f"{url} is unreachable: {exc}",
                       "check the engine runs and that a NetworkPolicy or firewall lets the web role reach it")
    finally:
        client.close()
    try:
        ready = Readiness.from_json(body)
    except ValueError:
        return Finding("engines", WARN, f"{url} answered {READYZ} with something that is not an Ember probe",
                       "check EMBER_ENGINES points at Ember engines")
    return Finding("engines", PASS, f"{url} is ready ({len(ready.checks)} checks passed)")


def _failed_checks(body: str) -> str:
    """The failed checks of a probe body, as ``name: detail``; the raw text if it is not a probe body."""
    try:
        failed = Readiness.from_json(json.loads(body)).failed()
    except ValueError:
        return body[:200]
    return "; ".join(f"{check.name}: {check.detail}" for check in failed) or body[:200]


CHECKS: dict[str, Check] = {"port": check_port, "exposure": check_exposure, "database": check_database,
                            "redis": check_redis, "engines": check_engines}
