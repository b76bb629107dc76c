"""DNS-rebinding defence: while bound to loopback, only requests addressed to a local host name are served.

A web page on an attacker's domain can make a browser send requests to 127.0.0.1 under the attacker's host
name; checking the Host header stops that (Ollama does the same). Bound to a public address, every Host is
allowed, since reverse proxies and remote clients use their own names. The probe paths are answered for any
Host: they reveal nothing and change nothing, and probes may name the pod or node.
"""

from __future__ import annotations

import ipaddress
import socket

from starlette.types import ASGIApp, Receive, Scope, Send

from ember.probes import PROBE_PATHS

_LOCAL_SUFFIXES = (".localhost", ".local", ".internal")


def is_local_host(host: str) -> bool:
    name = _strip_port(host).lower().rstrip(".")
    if name in ("localhost", socket.gethostname().lower()) or name.endswith(_LOCAL_SUFFIXES):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local or address.is_unspecified


def _strip_port(host: str) -> str:
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


class LocalHostOnly:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Probes carry no data and do no work; kubelet sends the pod IP or node name as Host.
        if scope["type"] == "http" and scope["path"] not in PROBE_PATHS:
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            if host and not is_local_host(host):
                await _forbidden(send)
                return
        await self.app(scope, receive, send)


async def _forbidden(send: Send) -> None:
    body = b'{"error":"forbidden: this server only answers requests for local host names"}'
    await send({"type": "http.response.start", "status": 403,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
