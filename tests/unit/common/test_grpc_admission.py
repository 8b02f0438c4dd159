"""Admission of capped gRPC methods: which pool a call runs on, and that slots come back."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from services.common.grpc_admission import AdmissionInterceptor, InflightGate, Lane
from services.common.interceptors import RequestIdInterceptor, behaviour_of

PUSH = "/logops.v1.LogService/Push"


class Details:
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = (("x-request-id", "rid-1"),)


class AbortingContext:
    def __init__(self) -> None:
        self.status: Any = None

    def abort_with_status(self, status: Any) -> None:
        self.status = status
        raise RuntimeError("aborted")

    def set_trailing_metadata(self, md: Any) -> None:
        pass


@pytest.fixture
def pools() -> Iterator[tuple[ThreadPoolExecutor, ThreadPoolExecutor]]:
    workers, refusals = ThreadPoolExecutor(1), ThreadPoolExecutor(1)
    yield workers, refusals
    workers.shutdown()
    refusals.shutdown()


def _handler() -> grpc.RpcMethodHandler[Any, Any]:
    return grpc.stream_unary_rpc_method_handler(lambda requests, context: b"done")


def _interceptor(
    pools: tuple[ThreadPoolExecutor, ThreadPoolExecutor], capped: int, others: int = 8
) -> tuple[AdmissionInterceptor, InflightGate, InflightGate]:
    workers, refusals = pools
    capped_gate, other_gate = InflightGate(capped), InflightGate(others)
    interceptor = AdmissionInterceptor(Lane(other_gate), refusals, retry_after_sec=2)
    interceptor.admit([PUSH], Lane(capped_gate, workers))
    return interceptor, capped_gate, other_gate


def test_gate_never_passes_its_limit() -> None:
    gate = InflightGate(2)
    assert [gate.try_enter() for _ in range(3)] == [True, True, False]
    gate.leave()
    assert gate.try_enter() and gate.in_flight == 2


def test_admitted_call_runs_on_the_workers_and_gives_its_slot_back(
    pools: tuple[ThreadPoolExecutor, ThreadPoolExecutor],
) -> None:
    interceptor, gate, _ = _interceptor(pools, capped=1)
    handler = interceptor.intercept_service(lambda _: _handler(), Details(PUSH))
    behaviour = behaviour_of(handler)
    assert behaviour.experimental_thread_pool is pools[0]
    assert gate.in_flight == 1
    assert behaviour(iter(()), None) == b"done"
    assert gate.in_flight == 0


def test_over_the_cap_is_refused_on_its_own_pool_in_the_contract_shape(
    pools: tuple[ThreadPoolExecutor, ThreadPoolExecutor],
) -> None:
    interceptor, gate, _ = _interceptor(pools, capped=0)
    # Wrapped by the request id as on the server; the pool must survive the wrapping.
    handler = RequestIdInterceptor().intercept_service(
        lambda d: interceptor.intercept_service(lambda _: _handler(), d), Details(PUSH)
    )
    behaviour = behaviour_of(handler)
    assert handler.request_streaming  # the refusal never waits for the request message
    assert behaviour.experimental_thread_pool is pools[1]
    ctx = AbortingContext()
    with pytest.raises(RuntimeError):
        behaviour(iter(()), ctx)
    assert ctx.status.code == grpc.StatusCode.UNAVAILABLE
    details = status_pb2.Status.FromString(
        dict(ctx.status.trailing_metadata)["grpc-status-details-bin"]
    ).details
    info, retry = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
    assert details[0].Unpack(info) and details[1].Unpack(retry)
    assert (info.reason, info.domain, retry.retry_delay.seconds) == ("overloaded", "logops", 2)
    assert gate.in_flight == 0


def test_other_methods_have_a_lane_of_their_own(
    pools: tuple[ThreadPoolExecutor, ThreadPoolExecutor],
) -> None:
    interceptor, capped, others = _interceptor(pools, capped=0, others=1)
    health = Details("/grpc.health.v1.Health/Check")
    first = interceptor.intercept_service(lambda _: _handler(), health)
    assert others.in_flight == 1 and capped.in_flight == 0
    assert not hasattr(behaviour_of(first), "experimental_thread_pool")  # the server's pool
    second = interceptor.intercept_service(lambda _: _handler(), health)
    assert behaviour_of(second).experimental_thread_pool is pools[1]  # refused
    assert interceptor.intercept_service(lambda _: None, Details(PUSH)) is None


def test_slot_comes_back_when_grpcio_drops_an_admitted_call_unrun(
    pools: tuple[ThreadPoolExecutor, ThreadPoolExecutor],
) -> None:
    interceptor, gate, _ = _interceptor(pools, capped=1)
    handler = interceptor.intercept_service(lambda _: _handler(), Details(PUSH))
    assert gate.in_flight == 1
    del handler  # as grpcio does when its own backstop refuses the call
    gc.collect()
    assert gate.in_flight == 0
