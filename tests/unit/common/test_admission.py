"""The in-flight cap: one request past it is refused at once, saying how many may run."""

from __future__ import annotations

import pytest

from services.common.admission import InflightSlots
from services.common.errors import Unavailable


def test_one_request_past_the_cap_is_refused_naming_the_cap() -> None:
    seen: list[tuple[str, int]] = []
    slots = InflightSlots(2, 0.5, lambda front, delta: seen.append((front, delta)))
    with slots.admitted("http"), slots.admitted("grpc"):
        with pytest.raises(Unavailable) as refused, slots.admitted("http"):
            pass
        assert refused.value.message == "more than 2 requests in flight"
        assert (refused.value.reason, refused.value.retry_after) == ("overloaded", 0.5)
    assert seen == [("http", 1), ("grpc", 1), ("grpc", -1), ("http", -1)]
    with slots.admitted("http"):
        pass
