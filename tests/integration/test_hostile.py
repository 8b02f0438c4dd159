"""Hostile input on every socket: garbage, slow clients, fuzzing from /openapi.json."""

from __future__ import annotations

import os
import random
import socket

import grpc
import pytest

from clients.transports import GrpcTransport, HttpTransport
from services.common.model import Batch
from services.ingest.wiring import IngestGateway


def _send_garbage(host: str, port: int, payload: bytes) -> None:
    with socket.create_connection((host, port), timeout=2) as sock:
        try:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            sock.recv(4096)
        except OSError:
            pass  # the server may close on us; that is a fine answer to garbage


def _still_serving(gw: IngestGateway) -> None:
    assert gw.addresses is not None
    for client in (GrpcTransport(gw.addresses.grpc_target), HttpTransport(gw.addresses.http_url)):
        assert client.send(Batch(records=[{"msg": "still here"}])).accepted == 1
        client.close()


def test_random_bytes_on_both_ports(gateway: IngestGateway) -> None:
    assert gateway.addresses is not None
    rng = random.Random(7)
    a = gateway.addresses
    for port in (a.http_port, a.grpc_port):
        for _ in range(30):
            _send_garbage("127.0.0.1", port, rng.randbytes(rng.randint(1, 4096)))
        lying = b"POST /v1/logs HTTP/1.1\r\nContent-Length: 99999\r\n\r\n{"
        _send_garbage("127.0.0.1", port, lying)
        _send_garbage("127.0.0.1", port, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + os.urandom(512))
    _still_serving(gateway)


def test_malformed_protobuf_on_grpc_is_invalid_argument(gateway: IngestGateway) -> None:
    assert gateway.addresses is not None
    with grpc.insecure_channel(gateway.addresses.grpc_target) as channel:
        push = channel.unary_unary("/logops.v1.LogService/Push")
        with pytest.raises(grpc.RpcError) as info:
            push(b"\x0a\xff\xff\xff\xff\x0f", timeout=5)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        unknown = channel.unary_unary("/logops.v1.LogService/Nope")
        with pytest.raises(grpc.RpcError) as info:
            unknown(b"", timeout=5)
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    _still_serving(gateway)


def test_slow_clients_do_not_block_others(gateway: IngestGateway) -> None:
    assert gateway.addresses is not None
    a = gateway.addresses
    slow = []
    for _ in range(20):
        sock = socket.create_connection(("127.0.0.1", a.http_port), timeout=2)
        sock.sendall(b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n[{\"msg\":")
        slow.append(sock)
    _still_serving(gateway)  # the transports time out if the slow ones held the server
    for sock in slow:
        sock.close()


def test_grpc_compressed_bomb_is_refused(gateway: IngestGateway) -> None:
    """A tiny gzip-compressed message that inflates past the cap is RESOURCE_EXHAUSTED."""
    from logops.v1 import logs_pb2

    assert gateway.addresses is not None
    big = logs_pb2.PushRequest(
        batch=logs_pb2.LogBatch(records=[logs_pb2.LogRecord(msg="\0" * (20 * 1024 * 1024))])
    )
    with grpc.insecure_channel(
        gateway.addresses.grpc_target,
        options=[("grpc.max_send_message_length", 64 * 1024 * 1024)],
    ) as channel:
        push = channel.unary_unary("/logops.v1.LogService/Push")
        with pytest.raises(grpc.RpcError) as info:
            push(big.SerializeToString(), timeout=10, compression=grpc.Compression.Gzip)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    _still_serving(gateway)
