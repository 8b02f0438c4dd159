"""Opening a transport by name: ``grpc``, ``http``, ``syslog+tcp``, ``syslog+udp``, ``file``,
``stdout``, each with its default target (PRODUCT.md section 1) and options.

The gateway transports (``grpc``, ``http``) come wrapped in
:class:`clients.retry.RetryingTransport`: the same ``batch_id`` on every attempt, a fresh
signature each time, ``Retry-After``/``RetryInfo`` honoured. The line transports write
lines and have nothing to retry against (see their modules).

:attr:`TransportSpec.line_keys` says which loss-accounting keys must travel inside the
line itself: none for batches, whose records carry ``run_id``, ``stream`` and ``seq``
beside ``raw`` (and whose envelope carries ``run_id`` too); all three where nothing but
the line travels (an HTTP text body, syslog, a file, stdout).
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

from clients.files import FileTransport, StdoutTransport
from clients.retry import RetryingTransport
from clients.signed import Signer
from clients.syslog import DEFAULT_MAX_DATAGRAM, SyslogTcpTransport, SyslogUdpTransport
from clients.transports import HTTP_BODIES, GrpcTransport, HttpTransport, Transport

TRANSPORTS = ("grpc", "http", "syslog+tcp", "syslog+udp", "file", "stdout")
# Through the Auth Gateway for grpc/http; the Ingest Gateway's syslog listener.
DEFAULT_TARGETS = {
    "grpc": "127.0.0.1:50052",
    "http": "http://127.0.0.1:8081",
    "syslog+tcp": "127.0.0.1:5514",
    "syslog+udp": "127.0.0.1:5514",
}
GATEWAY_TRANSPORTS = frozenset({"grpc", "http"})


@dataclass(frozen=True, slots=True)
class TransportSpec:
    """What to open: a transport ``name`` and its ``target`` ("" for its default), with the
    options that apply to it."""

    name: str
    target: str = ""
    http_body: str = "json"
    framing: str = "octet"
    max_datagram: int = DEFAULT_MAX_DATAGRAM
    fsync: str = "none"
    timeout: float = 10.0
    compress: bool = False
    max_attempts: int = 5
    retry_deadline_sec: float = 30.0

    def __post_init__(self) -> None:
        if self.name not in TRANSPORTS:
            raise ValueError(f"unknown transport {self.name!r}; use one of {', '.join(TRANSPORTS)}")
        if self.http_body not in HTTP_BODIES:
            raise ValueError(
                f"unknown HTTP body {self.http_body!r}; use one of {', '.join(HTTP_BODIES)}"
            )
        if self.name == "file" and not self.target:
            raise ValueError("the file transport needs a target: the path to append to")

    @property
    def batched(self) -> bool:
        """True when records travel in batches with their own fields (grpc, http)."""
        return self.name in GATEWAY_TRANSPORTS

    @property
    def line_keys(self) -> tuple[str, ...]:
        if self.name == "grpc" or (self.name == "http" and self.http_body != "text"):
            return ()
        return ("run_id", "stream", "seq")

    @property
    def address(self) -> str:
        return self.target or DEFAULT_TARGETS.get(self.name, "")


def host_port(target: str, default_port: int) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT`` or ``scheme://HOST:PORT`` split into host and port."""
    url = urllib.parse.urlsplit(target if "//" in target else f"//{target}")
    try:
        port = url.port
    except ValueError as exc:
        raise ValueError(f"bad port in {target!r}") from exc
    return url.hostname or "127.0.0.1", port or default_port


def http_url(target: str) -> str:
    return target if "://" in target else f"http://{target}"


def open_transport(
    spec: TransportSpec,
    signer: Signer | None = None,
    retry_sleep: Callable[[float], None] = time.sleep,
) -> Transport:
    """The transport ``spec`` names, ready to ``send(batch)``; connections open lazily.

    ``retry_sleep`` waits between attempts of the gateway transports (a caller that counts
    retries passes its own)."""
    address = spec.address
    inner: Transport
    if spec.name == "grpc":
        grpc_target = address.split("://", 1)[-1]
        inner = GrpcTransport(grpc_target, timeout=spec.timeout, signer=signer)
    elif spec.name == "http":
        inner = HttpTransport(
            http_url(address),
            HTTP_BODIES[spec.http_body],
            timeout=spec.timeout,
            signer=signer,
            compress=spec.compress,
        )
    elif spec.name == "syslog+tcp":
        host, port = host_port(address, 5514)
        return SyslogTcpTransport(host, port, spec.framing, timeout=spec.timeout)
    elif spec.name == "syslog+udp":
        host, port = host_port(address, 5514)
        return SyslogUdpTransport(host, port, spec.max_datagram)
    elif spec.name == "file":
        return FileTransport(address, spec.fsync)
    else:
        return StdoutTransport()
    return RetryingTransport(
        inner,
        max_attempts=spec.max_attempts,
        deadline_sec=spec.retry_deadline_sec,
        sleep=retry_sleep,
    )
