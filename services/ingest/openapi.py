"""The OpenAPI 3.1 description of the Ingest Gateway's HTTP API, served at ``/openapi.json``.

Kept true by tests: every route of the Falcon app is described here, and schemathesis
drives the running server from this document and checks each answer against it.
"""

from __future__ import annotations

from typing import Any

_STR = {"type": "string"}
_COUNT = {"type": "integer", "minimum": 0}

# Records are checked one by one: a record that breaks these rules is refused alone
# (listed in `rejections` with its index and reason) and the rest of the batch is stored,
# so the schema documents the fields without making the whole request invalid.
_RECORD = {
    "description": "One log record, normally an object. Aliases: ts|timestamp|time|@timestamp, "
    "level|lvl|severity, msg|message|log|text; other keys are kept as fields. A record that is "
    "not an object, or whose seq is not a non-negative integer, or whose raw/format is not a "
    "string, is rejected alone with reason invalid_record.",
    "properties": {
        "ts": {"description": "Timestamp as the source wrote it (RFC 3339, epoch, ...)."},
        "level": {"description": "Level as the source wrote it (alias, number, ...)."},
        "msg": {"description": "The message; non-string values are stored as JSON text."},
        "service": {"description": "Service name."},
        "host": {"description": "Host name."},
        "stream": {"description": "Sender-side stream, for loss accounting."},
        "seq": {"description": "Per-stream sequence number (non-negative integer)."},
        "raw": {"description": "A raw line for the gateway to parse (string)."},
        "format": {"description": "Format of `raw`, e.g. syslog, logfmt (string)."},
    },
}

_BATCH = {
    "type": "object",
    "required": ["records"],
    "properties": {
        "batch_id": {
            "type": "string",
            "maxLength": 128,
            "description": "Client-chosen, stable across retries: makes the push idempotent.",
        },
        "emitter": {"type": "string", "maxLength": 64},
        "scenario_id": {"type": "string", "maxLength": 128},
        "run_id": {"type": "string", "maxLength": 128},
        "format": _STR,
        "records": {"type": "array", "items": {"$ref": "#/components/schemas/LogRecord"}},
    },
}

_PUSH_RESPONSE = {
    "type": "object",
    "required": ["batch_id", "accepted", "rejected", "rejections", "duplicate", "spooled"],
    "properties": {
        "batch_id": _STR,
        "accepted": _COUNT,
        "rejected": _COUNT,
        "rejections": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["index", "reason", "message"],
                "properties": {
                    "index": _COUNT,
                    "reason": {
                        "type": "string",
                        "enum": [
                            "parse_error",
                            "unknown_format",
                            "record_too_large",
                            "invalid_record",
                        ],
                    },
                    "message": _STR,
                },
            },
        },
        "duplicate": {
            "type": "boolean",
            "description": "The batch_id was stored before and nothing was written again: "
            "accepted, rejected and missing are those of the original push, rejections is empty.",
        },
        "spooled": {"type": "boolean"},
        "missing": {
            "type": "object",
            "properties": {
                k: _COUNT for k in ("ts_absent", "ts_invalid", "level_absent", "level_invalid")
            },
        },
        "request_id": _STR,
    },
}

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "reason", "message", "request_id"],
            "properties": {
                "code": _STR,
                "reason": _STR,
                "message": _STR,
                "request_id": _STR,
                "retry_after_seconds": _COUNT,
            },
        }
    },
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _push_operation() -> dict[str, Any]:
    text = {"schema": {"type": "string"}}
    header = [
        ("X-LogOps-Batch-Id", "Batch id for bodies without an envelope (NDJSON, CSV, text)."),
        ("X-LogOps-Emitter", "Emitter name for bodies without an envelope."),
        ("X-LogOps-Scenario-Id", "Scenario id for bodies without an envelope."),
        ("X-LogOps-Run-Id", "Run id for bodies without an envelope."),
        ("X-LogOps-Format", "Format of raw lines (text/plain), detected when absent."),
    ]
    signature = "LOGOPS1-HMAC-SHA256 (docs/signing.md); required only when the gateway runs "
    "with keys (--keys-file), ignored otherwise: "
    header += [
        ("X-LogOps-Key-Id", signature + "the key's id."),
        ("X-LogOps-Timestamp", signature + "Unix seconds of signing."),
        ("X-LogOps-Nonce", signature + "16+ random bytes, base64url, new for every request."),
        ("X-LogOps-Content-Sha256", signature + "hex SHA-256 of the body bytes as sent."),
        ("X-LogOps-Signature", signature + "v1=<hex HMAC-SHA256>, comma-separated."),
    ]
    return {
        "operationId": "pushLogs",
        "summary": "Store a batch of log records (partial success, idempotent by batch_id).",
        "parameters": [
            {"name": n, "in": "header", "required": False, "description": d, "schema": _STR}
            for n, d in header
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {"type": "array", "items": {"$ref": "#/components/schemas/LogRecord"}},
                            {"$ref": "#/components/schemas/LogBatch"},
                        ]
                    }
                },
                "application/x-ndjson": text,
                "text/csv": text,
                "text/plain": text,
                "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
            },
        },
        "responses": {
            "200": {
                "description": "Stored (possibly in part; see rejections) or a duplicate. "
                "A logops.v1.PushResponse when the request's Accept names protobuf.",
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/PushResponse"}
                    },
                    "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
                },
            },
            "400": _error("Malformed body or framing (e.g. Content-Length with chunked)."),
            "401": _error(
                "Signature missing or wrong, unknown key, clock skew or replay (only when the "
                "gateway runs with keys); the reason says which."
            ),
            "408": _error("Request head or body not complete within its deadline."),
            "413": _error("Body or batch too large."),
            "415": _error("Unsupported content type or encoding."),
            "431": _error("Request headers too large."),
            "501": _error("Unsupported Transfer-Encoding."),
            "503": _error("Overloaded or sink unavailable; retry after Retry-After seconds."),
        },
    }


def _probe(summary: str, ok: str) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "responses": {
                "200": {
                    "description": ok,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["status"],
                                "properties": {"status": _STR},
                            }
                        }
                    },
                },
                "503": _error("Not ready."),
            },
        }
    }


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "LogOps Ingest Gateway",
            "version": "1",
            "description": "Takes log batches, normalises them and stores them as NDJSON.",
        },
        "paths": {
            "/v1/logs": {"post": _push_operation()},
            "/healthz": _probe("Liveness.", "The process is alive."),
            "/readyz": _probe("Readiness: the sink is writable.", "Ready to accept pushes."),
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics in the text exposition format.",
                    "responses": {
                        "200": {
                            "description": "Metrics.",
                            "content": {"text/plain": {"schema": _STR}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document.",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "LogRecord": _RECORD,
                "LogBatch": _BATCH,
                "PushResponse": _PUSH_RESPONSE,
                "Error": _ERROR,
            }
        },
    }
