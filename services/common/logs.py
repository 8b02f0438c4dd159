"""JSON-lines process logging with a request id carried in a context variable.

Configured once by the entry point; library modules only call
``logging.getLogger(__name__)`` and pass ``extra={"event": ...}``. Fixed keys: ``ts``,
``level``, ``logger``, ``msg``, ``event``, ``request_id``, ``front``; other ``extra``
values are added as they are. Never log secrets, signatures or payloads.
"""

from __future__ import annotations

import contextvars
import logging
import secrets
import sys
import time
from typing import Any, TextIO

import orjson

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
front_var: contextvars.ContextVar[str] = contextvars.ContextVar("front", default="")

_MAX_REQUEST_ID = 128
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def new_request_id() -> str:
    return secrets.token_hex(8)


def accept_request_id(value: str | None) -> str:
    """Keep a client's request id if it is short printable ASCII, else make a new one."""
    if value and len(value) <= _MAX_REQUEST_ID and value.isascii() and value.isprintable():
        return value
    return new_request_id()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        entry: dict[str, Any] = {
            "ts": f"{ts}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "event": getattr(record, "event", ""),
            "request_id": getattr(record, "request_id", None) or request_id_var.get(),
            "front": getattr(record, "front", None) or front_var.get(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Route every logger to one JSON-lines handler on stderr (or ``stream``)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # waitress logs every queued task at WARNING under load; keep it to errors.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
