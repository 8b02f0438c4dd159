"""What nginx really writes to its error log, by level, for ``nginx_error``.

Each entry is a message nginx emits, with the context its HTTP log handler appends
(``client``, ``server``, ``request``, ``upstream``, ``host``, ``referrer``) when the
message belongs to a request. Debug lines get no context (nginx calls no handler at
debug). The LogOps level picks the nginx level: FATAL one of ``crit alert emerg``, ERROR
``error``, WARN ``warn``, INFO ``notice`` or ``info``, DEBUG and TRACE ``debug``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from emitters.content import ipv4

_MISSING = ("/favicon.ico", "/robots.txt", "/apple-touch-icon.png", "/wp-login.php", "/.env")
_BACKENDS = ("10.0.3.7:8080", "10.0.4.12:8080", "127.0.0.1:3000", "10.0.3.9:9000")
_SITES = ("shop.example", "www.example.com", "api.example.com")
_API = ("/api/v1/orders/{n}", "/api/v1/products?limit=20&offset=40", "/api/v1/users/{n}/orders")
# What the context holds: no context, the connection only (client and listening
# address), a request, or a request that was proxied (adds the upstream).
NONE, CONN, REQ, PROXY = range(4)


@dataclass(frozen=True, slots=True)
class _Entry:
    level: str
    text: str
    context: int = NONE
    connection: bool = True
    path: str = "{api}"
    method: str = "GET"
    # Where a proxied request went, when not to one of the backends' addresses.
    upstream: str | None = None


_POOL: dict[str, tuple[_Entry, ...]] = {
    "FATAL": (
        _Entry(
            "crit", "connect() to unix:/run/php/php8.2-fpm.sock failed (2: No such file or "
            "directory) while connecting to upstream", PROXY, path="/index.php",
            upstream="fastcgi://unix:/run/php/php8.2-fpm.sock:",
        ),
        _Entry(
            "crit", "SSL_do_handshake() failed (SSL: error:0A00006C:SSL routines::bad key share) "
            "while SSL handshaking", CONN,
        ),
        _Entry(
            "alert", "1024 worker_connections are not enough while connecting to upstream", PROXY,
        ),
        _Entry("alert", "worker process {pid} exited on signal 9", connection=False),
        _Entry(
            "emerg", "bind() to 0.0.0.0:80 failed (98: Address already in use)", connection=False,
        ),
        _Entry(
            "emerg", 'host not found in upstream "backend:8080" in '
            "/etc/nginx/conf.d/default.conf:14", connection=False,
        ),
    ),
    "ERROR": (
        _Entry(
            "error", 'open() "/usr/share/nginx/html{missing}" failed (2: No such file or '
            "directory)", REQ, path="{missing}",
        ),
        _Entry(
            "error", "upstream timed out (110: Connection timed out) while reading response "
            "header from upstream", PROXY,
        ),
        _Entry(
            "error", "connect() failed (111: Connection refused) while connecting to upstream",
            PROXY,
        ),
        _Entry(
            "error", "upstream prematurely closed connection while reading response header from "
            "upstream", PROXY,
        ),
        _Entry(
            "error", "no live upstreams while connecting to upstream", PROXY,
            upstream="http://backend",
        ),
        _Entry(
            "error", "client intended to send too large body: {size} bytes", REQ,
            path="/api/v1/uploads", method="POST",
        ),
        _Entry(
            "error", 'directory index of "/usr/share/nginx/html/static/" is forbidden', REQ,
            path="/static/",
        ),
        _Entry("error", "access forbidden by rule", REQ, path="/.git/config"),
    ),
    "WARN": (
        _Entry(
            "warn", "an upstream response is buffered to a temporary file "
            "/var/cache/nginx/proxy_temp/{d}/{dd}/{ten} while reading upstream", PROXY,
        ),
        _Entry(
            "warn", "a client request body is buffered to a temporary file "
            "/var/cache/nginx/client_temp/{ten}", REQ, path="/api/v1/uploads", method="POST",
        ),
        _Entry(
            "warn", "upstream server temporarily disabled while reading response header from "
            "upstream", PROXY,
        ),
        _Entry(
            "warn", 'conflicting server name "shop.example" on 0.0.0.0:80, ignored',
            connection=False,
        ),
    ),
    "INFO": (
        _Entry("notice", "signal process started", connection=False),
        _Entry("notice", 'using the "epoll" event method', connection=False),
        _Entry("notice", "start worker process {pid}", connection=False),
        _Entry("notice", "signal 1 (SIGHUP) received from {pid}, reconfiguring", connection=False),
        _Entry("notice", "gracefully shutting down", connection=False),
        _Entry("info", "client {ip} closed keepalive connection"),
        _Entry(
            "info", "client timed out (110: Connection timed out) while waiting for request",
            CONN,
        ),
        _Entry(
            "info", "epoll_wait() reported that client prematurely closed connection, so "
            "upstream connection is closed too while sending request to upstream", PROXY,
        ),
    ),
    "DEBUG": (
        _Entry("debug", "http keepalive handler"),
        _Entry("debug", "http process request line"),
        _Entry("debug", 'http header: "Host: {site}"'),
        _Entry("debug", 'http finalize request: 0, "{api}?" a:1, c:1'),
    ),
}  # fmt: skip
_POOL["TRACE"] = _POOL["DEBUG"]


@dataclass(frozen=True, slots=True)
class NginxMessage:
    """A drawn message: its nginx level and the record fields it sets."""

    level: str
    fields: dict[str, Any]


def draw_message(rng: random.Random, level: str) -> NginxMessage:
    """A message nginx writes at the nginx level standing for LogOps ``level``."""
    entry = rng.choice(_POOL[level])
    n = rng.randint(1, 99_999)
    site = rng.choice(_SITES)
    client = ipv4(rng)
    values = {
        "missing": rng.choice(_MISSING),
        "api": rng.choice(_API).format(n=n),
        "pid": rng.randint(20, 65_000),
        "ip": client,
        "site": site,
        "size": rng.choice((1_048_577, 5_242_880, 10_485_760, 52_428_800)),
        "d": rng.randint(0, 9),
        "dd": f"{rng.randint(0, 99):02d}",
        "ten": f"{rng.randint(1, 9_999_999_999):010d}",
    }
    fields: dict[str, Any] = {}
    if entry.connection:
        fields["connection_id"] = rng.randint(1, 2_000_000)
    fields["msg"] = entry.text.format(**values)
    if entry.context == CONN:
        fields["client_ip"] = client
        fields["server"] = "0.0.0.0:443"
    elif entry.context >= REQ:
        path = entry.path.format(**values)
        fields["client_ip"] = client
        fields["server"] = site
        fields["request"] = f"{entry.method} {path} HTTP/1.1"
        if entry.context == PROXY:
            backend = rng.choice(_BACKENDS)
            fields["upstream"] = (entry.upstream or f"http://{backend}") + path
        fields["http_host"] = site
        if rng.random() < 0.3:
            fields["referer"] = f"https://{site}/"
    return NginxMessage(entry.level, fields)
