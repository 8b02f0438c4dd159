"""What Apache httpd 2.4 really writes to its error log, by level, for ``apache_error``.

Each entry is a message httpd emits (module, AH code, text, whether a ``[client ...]``
block and an OS error come with it), filled with plausible paths and addresses. The
LogOps level drawn for a record picks the Apache level: FATAL one of ``crit alert
emerg``, ERROR ``error``, WARN ``warn``, INFO ``notice`` or ``info``, DEBUG ``debug`` and
TRACE ``trace1``-``trace8``; at debug and trace the source file and line are set too.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from emitters.content import USERS, ipv4

_MISSING = ("/favicon.ico", "/robots.txt", "/apple-touch-icon.png", "/wp-login.php", "/.env")
_DENIED = ("/server-status", "/.git/config", "/admin/", "/.htpasswd", "/backup.sql")
_BACKENDS = ("127.0.0.1:8080", "10.0.3.7:8080", "10.0.4.12:9000", "10.0.3.9:3000")
_VHOSTS = ("www.example.com", "shop.example", "api.example.com")


@dataclass(frozen=True, slots=True)
class _Entry:
    level: str
    module: str
    code: str | None
    text: str
    client: bool = False
    os_error: tuple[int, str] | None = None
    source: tuple[str, int] | None = None


@dataclass(frozen=True, slots=True)
class ApacheMessage:
    """A drawn message: its Apache level, module and the record fields it sets."""

    level: str
    module: str
    fields: dict[str, Any] = field(default_factory=dict)


_POOL: dict[str, tuple[_Entry, ...]] = {
    "FATAL": (
        _Entry(
            "crit", "core", "AH00529",
            "{docroot}.htaccess pcfg_openfile: unable to check htaccess file, ensure it is "
            "readable and that '{docroot}' is executable",
            client=True, os_error=(13, "Permission denied"),
        ),
        _Entry(
            "alert", "core", None,
            "{docroot}.htaccess: Invalid command 'RewriteEngine', perhaps misspelled or "
            "defined by a module not included in the server configuration",
            client=True,
        ),
        _Entry(
            "emerg", "core", "AH00023", "Couldn't create the proxy mutex",
            os_error=(28, "No space left on device"),
        ),
        _Entry(
            "emerg", "ssl", "AH02572",
            "Failed to configure at least one certificate and key for {vhost}:443",
        ),
    ),
    "ERROR": (
        _Entry("error", "core", "AH00128", "File does not exist: {docroot}{missing}", client=True),
        _Entry(
            "error", "authz_core", "AH01630",
            "client denied by server configuration: {docroot}{denied}", client=True,
        ),
        _Entry(
            "error", "core", "AH00124",
            "Request exceeded the limit of 10 internal redirects due to probable configuration "
            "error. Use 'LimitInternalRecursion' to increase the limit if necessary. Use "
            "'LogLevel debug' to get a backtrace.",
            client=True,
        ),
        _Entry(
            "error", "proxy", "AH00957",
            "HTTP: attempt to connect to {backend_ip}:{backend_port} ({backend_ip}) failed",
            os_error=(111, "Connection refused"),
        ),
        _Entry(
            "error", "proxy_http", "AH01102",
            "error reading status line from remote server {backend_ip}:{backend_port}",
            client=True, os_error=(70007, "The timeout specified has expired"),
        ),
        _Entry(
            "error", "proxy", "AH00959",
            "ap_proxy_connect_backend disabling worker for ({backend_ip}:{backend_port}) for 60s",
        ),
        _Entry(
            "error", "auth_basic", "AH01617",
            'user {user}: authentication failure for "/admin/": Password Mismatch', client=True,
        ),
        _Entry(
            "error", "mpm_event", "AH00484",
            "server reached MaxRequestWorkers setting, consider raising the MaxRequestWorkers "
            "setting",
        ),
    ),
    "WARN": (
        _Entry(
            "warn", "proxy", "AH01144",
            "No protocol handler was valid for the URL /api/v1/orders (scheme 'http'). If you "
            "are using a DSO version of mod_proxy, make sure the proxy submodules are included "
            "in the configuration using LoadModule.",
            client=True,
        ),
        _Entry(
            "warn", "ssl", "AH01909",
            "{vhost}:443:0 server certificate does NOT include an ID which matches the server "
            "name",
        ),
        _Entry(
            "warn", "core", "AH00098",
            "pid file /var/run/apache2/apache2.pid overwritten -- Unclean shutdown of previous "
            "Apache run?",
        ),
    ),
    "INFO": (
        _Entry(
            "notice", "mpm_event", "AH00489",
            "Apache/2.4.58 (Unix) OpenSSL/3.0.13 configured -- resuming normal operations",
        ),
        _Entry("notice", "core", "AH00094", "Command line: '/usr/sbin/apache2'"),
        _Entry("notice", "mpm_event", "AH00493", "SIGUSR1 received.  Doing graceful restart"),
        _Entry("notice", "core", "AH00052", "child pid {pid} exit signal Segmentation fault (11)"),
        _Entry("info", "reqtimeout", "AH01382", "Request header read timeout", client=True),
        _Entry(
            "info", "ssl", "AH01964",
            "Connection to child {n} established (server {vhost}:443)", client=True,
        ),
        _Entry(
            "info", "ssl", "AH02008", "SSL library error 1 in handshake (server {vhost}:443)",
            client=True,
        ),
    ),
    "DEBUG": (
        _Entry(
            "debug", "authz_core", "AH01626",
            "authorization result of Require all granted: granted",
            client=True, source=("mod_authz_core.c", 820),
        ),
        _Entry(
            "debug", "authz_core", "AH01626", "authorization result of <RequireAny>: granted",
            client=True, source=("mod_authz_core.c", 820),
        ),
        _Entry(
            "debug", "proxy", "AH00942",
            "HTTP: has acquired connection for ({backend_ip})",
            source=("proxy_util.c", 2605),
        ),
    ),
    "TRACE": (
        _Entry(
            "trace5", "core", None, "Request received from client: GET /{missing} HTTP/1.1",
            client=True, source=("protocol.c", 645),
        ),
        _Entry(
            "trace3", "http", None, "Response sent with status 200, headers:",
            client=True, source=("http_filters.c", 1136),
        ),
        _Entry(
            "trace3", "ssl", None, "OpenSSL: Handshake: done",
            client=True, source=("ssl_engine_kernel.c", 2236),
        ),
    ),
}  # fmt: skip


def draw_message(rng: random.Random, level: str) -> ApacheMessage:
    """A message httpd writes at the Apache level standing for LogOps ``level``."""
    entry = rng.choice(_POOL[level])
    backend = rng.choice(_BACKENDS)
    backend_ip, _, backend_port = backend.partition(":")
    text = entry.text.format(
        docroot="/var/www/html/",
        missing=rng.choice(_MISSING)[1:],
        denied=rng.choice(_DENIED)[1:],
        backend_ip=backend_ip,
        backend_port=backend_port,
        user=rng.choice(USERS),
        vhost=rng.choice(_VHOSTS),
        pid=rng.randint(1_000, 65_000),
        n=rng.randint(0, 255),
    )
    fields: dict[str, Any] = {}
    if entry.source is not None:
        fields["source_file"], fields["source_line"] = entry.source
    if entry.os_error is not None:
        fields["os_errno"], fields["os_error"] = entry.os_error
    if entry.client:
        fields["client_ip"] = ipv4(rng)
        fields["client_port"] = rng.randint(32_768, 60_999)
    if entry.code is not None:
        fields["error_code"] = entry.code
    fields["msg"] = text
    if entry.client and entry.code == "AH00128" and rng.random() < 0.5:
        fields["referer"] = f"https://{rng.choice(_VHOSTS)}/"
    return ApacheMessage(entry.level, entry.module, fields)
