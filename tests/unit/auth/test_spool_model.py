"""Any sequence of puts, acks and reopenings leaves the spool matching a plain deque."""

from __future__ import annotations

import shutil
import tempfile
from collections import deque
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from services.auth.spool import Spool, SpoolFull
from services.auth.spool.codec import prepare_record

MAX_BATCHES = 12
MAX_BYTES = 6000
MEDIA = "application/json"
META = {"emitter": "model"}
NOW = 1000.0


def record_size(batch_id: str, body: bytes) -> int:
    """What a record takes on disk (the bound counts it), whatever the seed."""
    return prepare_record(batch_id, MEDIA, "identity", META, body, 1, NOW, 0).size


class SpoolMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="spool-model-"))
        self.spool = self.open()
        # (seq, batch_id, body, size) of every batch put and not yet acked, oldest first.
        self.model: deque[tuple[int, str, bytes, int]] = deque()
        self.count = 0
        self.last_seq = 0
        self.acked = 0

    def open(self) -> Spool:
        # A small segment size, so that rolling over and removing segments happen often.
        # No fsyncs, for speed: which fsyncs happen is pinned in test_spool_durability.
        spool = Spool(
            self.folder, MAX_BYTES, MAX_BATCHES, durability="none", segment_bytes=700,
            clock=lambda: NOW,
        )
        spool.open()
        return spool

    @rule(size=st.integers(0, 900))
    def put(self, size: int) -> None:
        self.count += 1
        batch_id = f"b{self.count}"
        body = bytes([self.count % 256]) * size
        need = record_size(batch_id, body)
        used = sum(entry[3] for entry in self.model)
        if len(self.model) >= MAX_BATCHES or used + need > MAX_BYTES:
            with pytest.raises(SpoolFull):
                self.spool.put(batch_id, MEDIA, "identity", META, body, 1)
            return
        batch = self.spool.put(batch_id, MEDIA, "identity", META, body, 1)
        assert batch.seq > self.last_seq
        self.last_seq = batch.seq
        self.model.append((batch.seq, batch_id, body, need))

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def ack(self, data: st.DataObject) -> None:
        upto = data.draw(st.integers(0, len(self.model) - 1))
        self.acked = self.model[upto][0]
        self.spool.ack(self.acked)
        for _ in range(upto + 1):
            self.model.popleft()

    @rule(data=st.data())
    def ack_again(self, data: st.DataObject) -> None:
        self.spool.ack(data.draw(st.integers(0, self.acked)))

    @rule()
    def reopen(self) -> None:
        self.spool.close()
        self.spool = self.open()

    @invariant()
    def matches_the_model(self) -> None:
        peeked = self.spool.peek(MAX_BATCHES + 1)
        assert [(b.seq, b.batch_id, b.body) for b in peeked] == [m[:3] for m in self.model]
        assert self.spool.depth() == (len(self.model), sum(m[3] for m in self.model))

    def teardown(self) -> None:
        self.spool.close()
        shutil.rmtree(self.folder, ignore_errors=True)


SpoolMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None
)
test_spool_matches_a_deque = SpoolMachine.TestCase
