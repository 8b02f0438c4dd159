"""The idempotency index: what it remembers, what it forgets first, on both tables.

``IdIndex`` keeps stored batches in the compact C ``IdTable`` when the extension is
built, else in a dict; both must behave as an insertion-ordered map capped at
``max_ids`` that forgets its oldest ids first.
"""

from __future__ import annotations

from collections import OrderedDict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingest import batch_index, native
from services.ingest.batch_index import IdIndex, StoredBatch, id_digest

TABLES = [pytest.param(batch_index._DictTable, id="dict")]
if native.AVAILABLE:
    from services.ingest import _native  # type: ignore[attr-defined]

    TABLES.append(pytest.param(_native.IdTable, id="c"))

OPS = st.lists(
    st.tuples(st.booleans(), st.integers(0, 40), st.integers(0, 2**32 - 1)), max_size=400
)


@pytest.mark.parametrize("table_type", TABLES)
@settings(max_examples=150, deadline=None)
@given(cap=st.integers(1, 20), ops=OPS)
def test_tables_behave_as_a_capped_insertion_ordered_map(
    table_type: type, cap: int, ops: list[tuple[bool, int, int]]
) -> None:
    table = table_type(cap)
    model: OrderedDict[int, tuple[int, int]] = OrderedDict()
    for is_put, key, count in ops:
        digest = id_digest(str(key))
        if is_put:
            if key not in model and len(model) == cap:
                model.popitem(last=False)
            model[key] = (count, 0)  # a known id keeps its place
            table.put(digest, count, 0)
        else:
            assert table.get(digest) == model.get(key)
    assert len(table) == len(model)
    assert all(table.get(id_digest(str(k))) == v for k, v in model.items())


@pytest.mark.skipif(not native.AVAILABLE, reason="the C extension is not built")
def test_the_c_table_grows_past_its_first_sizes_and_stays_small() -> None:
    table = _native.IdTable(100_000)
    for i in range(150_000):
        table.put(id_digest(f"batch-{i}"), i % 1000, 1)
    assert len(table) == 100_000
    assert table.get(id_digest("batch-49999")) is None
    assert table.get(id_digest("batch-50000")) == (0, 1)
    assert table.get(id_digest("batch-149999")) == (999, 1)
    assert table.nbytes / len(table) <= 48


def test_pending_values_wait_beside_the_table_until_replaced_or_discarded() -> None:
    index: IdIndex[object] = IdIndex(10)
    pending = object()
    index.add("b1", pending)
    assert index.get("b1") is pending
    index.replace("b1", pending, StoredBatch(5, 1))
    assert index.get("b1") == StoredBatch(5, 1)
    other = object()
    index.add("b2", other)
    index.discard("b2", other)
    assert index.get("b2") is None
    assert len(index) == 1


def test_load_lets_the_later_answer_win() -> None:
    index: IdIndex[StoredBatch] = IdIndex(10)
    index.load(["a", "b", "a"], [StoredBatch(1, 0), StoredBatch(2, 0), StoredBatch(3, 0)])
    assert (index.get("a"), index.get("b")) == (StoredBatch(3, 0), StoredBatch(2, 0))
    assert len(index) == 2


def test_ids_that_differ_only_in_lone_surrogates_are_told_apart() -> None:
    assert id_digest("a\ud800") != id_digest("a\udc00")
