"""Process logs are JSON lines with fixed keys, and carry the request id of their request."""

from __future__ import annotations

import io
import json
import logging

from services.common.logs import accept_request_id, configure_logging, request_id_var


def test_json_lines_with_fixed_keys_and_request_id() -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream)
    token = request_id_var.set("req-42")
    try:
        logging.getLogger("services.x").warning(
            "sink write failed", extra={"event": "sink_error", "error": "disk full"}
        )
        logging.getLogger("services.x").debug("not shown at INFO")
    finally:
        request_id_var.reset(token)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert {"ts", "level", "logger", "msg", "event", "request_id", "front"} <= set(entry)
    assert entry["request_id"] == "req-42"
    assert entry["level"] == "WARNING"
    assert (entry["event"], entry["error"]) == ("sink_error", "disk full")
    assert entry["ts"].endswith("Z") and len(entry["ts"]) == 24


def test_client_request_ids_are_kept_only_when_harmless() -> None:
    assert accept_request_id("abc-123") == "abc-123"
    for hostile in ("a\nb", "x" * 200, "é", "", None):
        rid = accept_request_id(hostile)
        assert rid != hostile and len(rid) == 16
