"""kill -9 either gateway mid-stream: every acknowledged batch is stored exactly once.

Real processes, as a user runs them: ``logops ingest`` verifying the Auth Gateway's hop
key, and ``logops auth`` forwarding to it over gRPC, signed with that key, with a durable
spool. Two signed client streams (the SDK with ``RetryingTransport``) push numbered
batches through the Auth Gateway, on the front under test, while:

1. Ingest is killed: pushes are answered ``spooled``, the breaker opens and the spool
   grows; Ingest restarts on its ports and sink, the spool drains, pushes go through again.
2. The Auth Gateway is killed and restarted on its ports with its spool: the clients'
   retries (same batch_id) carry on.
3. Ingest is killed, then the Auth Gateway with batches in its spool: the restarted Auth
   Gateway still holds every batch it answered ``spooled``, and delivers them once Ingest
   is back, also when it is killed again while delivering.

Then the sink must hold every record of every batch answered accepted, duplicate or
spooled exactly once, and nothing twice (PRODUCT.md section 9).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import stored_lines
from tests.integration.outage_support import (
    CLIENT_DEADLINE_SEC,
    CLIENT_EMITTER,
    Pipeline,
    Stream,
    account,
    total,
    wait_until,
    write_keys,
)

pytestmark = pytest.mark.slow

BREAKER_TRIPS = 'logops_auth_forward_attempts_total{outcome="breaker_open"}'


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    pipe = Pipeline(tmp_path, write_keys(tmp_path / "keys"))
    try:
        pipe.start()
        yield pipe
    finally:
        pipe.stop()


def progress(streams: list[Stream], outcome: str, more: int, what: str) -> None:
    """Wait until the streams have had ``more`` answers of ``outcome`` from now on."""
    start = total(streams, outcome)
    wait_until(lambda: total(streams, outcome) >= start + more, what)


def retries(streams: list[Stream]) -> int:
    return sum(sent.retries for s in streams for sent in list(s.sent))


def ingest_outage(pipe: Pipeline, streams: list[Stream]) -> None:
    pipe.kill_ingest()
    progress(streams, "spooled", 10, "pushes answered spooled while Ingest is down")
    wait_until(lambda: (pipe.metric(BREAKER_TRIPS) or 0) > 0, "the breaker opened")
    wait_until(lambda: pipe.spool_batches() > 0, "the spool holding batches")
    pipe.restart_ingest()
    wait_until(lambda: pipe.spool_batches() == 0, "the spool drained into the new Ingest")
    progress(streams, "accepted", 10, "pushes forwarded again after Ingest's restart")


def auth_crash(pipe: Pipeline, streams: list[Stream]) -> None:
    progress(streams, "accepted", 5, "the stream flowing before the Auth Gateway's crash")
    retried = retries(streams)
    pipe.kill_auth()
    pipe.restart_auth()
    progress(streams, "accepted", 10, "pushes answered by the restarted Auth Gateway")
    assert retries(streams) > retried, "the clients retried across the restart"


def auth_crash_with_spooled_batches(pipe: Pipeline, streams: list[Stream]) -> None:
    pipe.kill_ingest()
    before = total(streams, "spooled")
    progress(streams, "spooled", 10, "pushes answered spooled while Ingest is down again")
    pipe.kill_auth()
    # Answered spooled since Ingest died, so never delivered: all must be in the spool.
    spooled = total(streams, "spooled") - before
    pipe.restart_auth()
    held = pipe.spool_batches()
    assert held >= spooled, "the restarted Auth Gateway lost spooled batches"
    pipe.restart_ingest()
    # Killed again once the drain has begun: a batch Ingest stored but the spool had not
    # let go of yet is delivered again, and Ingest must take it as a duplicate.
    wait_until(lambda: pipe.spool_batches() < held, "the recovered spool draining")
    pipe.kill_auth()
    pipe.restart_auth()
    wait_until(lambda: pipe.spool_batches() == 0, "the recovered spool delivered")
    progress(streams, "accepted", 10, "pushes forwarded after the restarts")


@pytest.mark.parametrize("front", ["grpc", "http"])
def test_nothing_acknowledged_is_lost_when_either_gateway_is_killed(
    pipeline: Pipeline, front: str
) -> None:
    run_id = f"outage-{front}-{uuid.uuid4().hex[:8]}"
    streams = [Stream(f"s{i}", pipeline.client(front), run_id) for i in range(2)]
    for stream in streams:
        stream.start()
    try:
        progress(streams, "accepted", 10, "the stream flowing through both gateways")
        ingest_outage(pipeline, streams)
        auth_crash(pipeline, streams)
        auth_crash_with_spooled_batches(pipeline, streams)
    finally:
        for stream in streams:
            stream.halt()
        for stream in streams:
            stream.join(CLIENT_DEADLINE_SEC + 10)
    assert not any(stream.is_alive() for stream in streams)
    wait_until(lambda: pipeline.spool_batches() == 0, "the spool empty at the end")
    # Batches the last Ingest already held when they came again (a retry, a redelivery).
    known = pipeline.metric("logops_ingest_duplicate_batches_total", pipeline.ingest)
    assert pipeline.stop() == [0, 0]

    lines = stored_lines(pipeline.sink)
    acc = account([sent for s in streams for sent in s.sent], lines, run_id)
    print(f"\n{front}: {acc.summary()}; the last Ingest answered duplicate {known:g} times")
    assert not acc.lost, f"acknowledged but not stored: {sorted(acc.lost.items())[:5]}"
    assert not acc.doubled, f"stored twice: {acc.doubled[:10]}"
    assert not acc.torn, f"unacknowledged batches stored in part: {acc.torn}"
    assert not acc.unknown, f"stored but never sent: {acc.unknown[:5]}"
    assert acc.answers["spooled"] >= 20 and acc.answers["accepted"] >= 40
    assert {line["emitter"] for line in lines} == {CLIENT_EMITTER}
