"""Client transports for pushing batches to a LogOps gateway: ``send(batch) -> PushResult``.

One encoder per payload kind (``encode_json``, protobuf via ``pb_codec``), shared by the
transports; the transports only move bytes. A refusal comes back as the same
``LogOpsError`` subclass whichever transport carried it.
"""

from __future__ import annotations

import http.client
import urllib.parse
from collections.abc import Sequence
from typing import Any, Protocol

import grpc
import orjson
from logops.v1 import logs_pb2, logs_pb2_grpc

from services.common.errors import (
    HTTP_STATUS_REASONS,
    LogOpsError,
    Unavailable,
    error_from_reason,
)
from services.common.grpc_errors import error_from_rpc
from services.common.model import Batch, PushResult
from services.common.pb_codec import batch_to_pb, result_from_dict, result_from_pb


class Transport(Protocol):
    def send(self, batch: Batch) -> PushResult: ...
    def close(self) -> None: ...


def encode_json(batch: Batch) -> bytes:
    """The JSON batch object of ``POST /v1/logs``."""
    doc: dict[str, Any] = {
        "batch_id": batch.batch_id,
        "emitter": batch.emitter,
        "scenario_id": batch.scenario_id,
        "run_id": batch.run_id,
        "records": [r for r in batch.records if r is not None],
    }
    if batch.default_format:
        doc["format"] = batch.default_format
    return orjson.dumps(doc)


class GrpcTransport:
    def __init__(
        self,
        target: str,
        timeout: float = 10.0,
        metadata: Sequence[tuple[str, str]] = (),
        max_message_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        self._channel = grpc.insecure_channel(
            target,
            options=[
                ("grpc.max_send_message_length", max_message_bytes),
                ("grpc.max_receive_message_length", max_message_bytes),
            ],
        )
        self._stub = logs_pb2_grpc.LogServiceStub(self._channel)
        self._timeout = timeout
        self._metadata = tuple(metadata)

    def send(self, batch: Batch) -> PushResult:
        return self.send_pb(logs_pb2.PushRequest(batch=batch_to_pb(batch)))

    def send_pb(self, request: logs_pb2.PushRequest) -> PushResult:
        try:
            response = self._stub.Push(request, timeout=self._timeout, metadata=self._metadata)
        except grpc.RpcError as err:
            raise error_from_rpc(err) from err
        return result_from_pb(response)

    def close(self) -> None:
        self._channel.close()


class HttpTransport:
    """Keeps one connection open; ``content_type`` is ``application/json`` or protobuf."""

    def __init__(
        self,
        base_url: str,
        content_type: str = "application/json",
        timeout: float = 10.0,
    ) -> None:
        url = urllib.parse.urlsplit(base_url)
        self._host, self._port = url.hostname or "127.0.0.1", url.port or 80
        self._timeout = timeout
        self._content_type = content_type
        self._conn: http.client.HTTPConnection | None = None

    def send(self, batch: Batch) -> PushResult:
        if self._content_type == "application/x-protobuf":
            body = batch_to_pb(batch).SerializeToString()
        else:
            body = encode_json(batch)
        status, headers, data = self.post(body, {"Content-Type": self._content_type})
        return self.result(status, headers, data)

    def post(
        self, body: bytes, headers: dict[str, str], path: str = "/v1/logs"
    ) -> tuple[int, dict[str, str], bytes]:
        """POST raw bytes; reconnects once if the kept-alive connection was closed."""
        for attempt in (1, 2):
            conn = self._connection()
            try:
                try:
                    conn.request("POST", path, body=body, headers=headers)
                except OSError:
                    # A server may refuse an oversized body as soon as it has the headers
                    # and close while the body is still going out: its answer is waiting.
                    if conn.sock is None:
                        raise
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if attempt == 2:
                    # Maybe stored, maybe not: a retry with the same batch_id settles it.
                    raise Unavailable(
                        f"no answer from {self._host}:{self._port}: {exc}",
                        reason="downstream_unavailable",
                    ) from exc
                continue
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        raise AssertionError("unreachable")

    @staticmethod
    def result(status: int, headers: dict[str, str], data: bytes) -> PushResult:
        if status == 200:
            return result_from_dict(orjson.loads(data))
        raise http_error(status, headers, data)

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def http_error(status: int, headers: dict[str, str], data: bytes) -> LogOpsError:
    """Rebuild the server's exception from an error response."""
    try:
        err = orjson.loads(data)["error"]
        reason, message = str(err["reason"]), str(err["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        # Not our error body (a proxy, or the HTTP server refusing before the app ran).
        fallback = "internal" if status >= 500 and status != 503 else "bad_request"
        reason = HTTP_STATUS_REASONS.get(status, fallback)
        message = f"HTTP {status}: {data[:200].decode(errors='replace')}"
    retry = headers.get("retry-after")
    return error_from_reason(reason, message, float(retry) if retry else None)
