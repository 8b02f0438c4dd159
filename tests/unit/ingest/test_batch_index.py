"""The idempotency index: what it remembers, what it forgets first, on both tables.

``IdIndex`` keeps stored batches in the compact C ``IdTable`` when the extension is
built, else in a dict; both must behave as an insertion-ordered map capped at
``max_ids`` that forgets its oldest ids first.
"""

from __future__ import annotations

import tracemalloc
from collections import OrderedDict
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingest import batch_index, native
from services.ingest.batch_index import IdIndex, StoredBatch, encode_entry, id_digest

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
    assert len(index) == 2  # an id being written is held as well
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


COUNT = st.integers(0, 70_000)
ANSWERS = st.builds(
    StoredBatch,
    st.integers(0, 100_000),
    st.integers(0, 100_000),
    st.one_of(st.just((0, 0, 0, 0)), st.tuples(COUNT, COUNT, COUNT, COUNT)),
)


def index_on(table_type: type, max_ids: int) -> IdIndex[object]:
    """An ``IdIndex`` whose tables are of ``table_type``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(batch_index, "_table", table_type)
        return IdIndex(max_ids)


@pytest.mark.parametrize("table_type", TABLES)
@settings(max_examples=100, deadline=None)
@given(ops=st.lists(st.tuples(st.integers(0, 30), ANSWERS, st.booleans()), max_size=200))
def test_answers_keep_their_missing_counts(
    table_type: type, ops: list[tuple[int, StoredBatch, bool]]
) -> None:
    # Counts past 16 bits, zeros after non-zeros and back, through add and through load.
    index = index_on(table_type, 1000)
    model: dict[str, StoredBatch] = {}
    for key, answer, bulk in ops:
        batch_id = f"id-{key}"
        if bulk:
            index.load([batch_id], [answer])
        elif batch_id not in model:
            index.add(batch_id, answer)
        else:
            continue
        model[batch_id] = answer
        assert index.get(batch_id) == answer
    assert all(index.get(k) == v for k, v in model.items())


@pytest.mark.parametrize("table_type", TABLES)
@settings(max_examples=100, deadline=None)
@given(cap=st.integers(1, 20), answers=st.lists(ANSWERS, max_size=100))
def test_every_id_still_remembered_keeps_its_missing_counts(
    table_type: type, cap: int, answers: list[StoredBatch]
) -> None:
    index = index_on(table_type, cap)
    for n, answer in enumerate(answers):
        index.add(f"b{n}", answer)
    kept = list(enumerate(answers))[-cap:]
    assert [index.get(f"b{n}") for n, _ in kept] == [a for _, a in kept]
    assert all(index.get(f"b{n}") is None for n in range(len(answers) - len(kept)))


def test_common_answers_are_shared_and_zeros_are_one_object() -> None:
    index: IdIndex[object] = IdIndex(10)
    assert index.stored(3, 0, (0, 0, 0, 0)) is index.stored(3, 0)
    assert index.stored(3, 0, (0, 0, 0, 0)).missing is batch_index.NO_MISSING
    assert index.stored(3, 0, (1, 0, 0, 0)) is index.stored(3, 0, (1, 0, 0, 0))


class _DigestKeyedTable(batch_index._DictTable):
    """The dict table with the one rule the C ``IdTable`` adds: a key is a 16-byte digest
    (``ValueError`` otherwise). Runs that hide the extension still see that rule kept."""

    def get(self, key: bytes) -> tuple[int, int] | None:
        if len(key) != 16:
            raise ValueError("a key is a 16-byte digest")
        return super().get(key)

    def put(self, key: bytes, accepted: int, rejected: int) -> None:
        if len(key) != 16:
            raise ValueError("a key is a 16-byte digest")
        super().put(key, accepted, rejected)


@pytest.mark.parametrize("table_type", [*TABLES, pytest.param(_DigestKeyedTable, id="dict-16")])
def test_thousands_of_ids_with_counts_past_16_bits_each_keep_their_own(
    table_type: type,
) -> None:
    # Past 65535 a batch's counts take two side-table keys, its digest and one derived
    # from it: among thousands of ids no key may land on another's (or on its own).
    index = index_on(table_type, 10_000)
    answers = {f"b{n}": StoredBatch(n, 1, (70_000 + n, n, n + 1, n + 2)) for n in range(4000)}
    for batch_id, answer in answers.items():
        index.add(batch_id, answer)
    assert [index.get(batch_id) for batch_id in answers] == list(answers.values())


@pytest.mark.parametrize("table_type", TABLES)
def test_an_id_stored_again_and_again_at_start_up_is_still_answered(table_type: type) -> None:
    # The one case where the side table forgets before the main one: id-2's first side
    # key goes while both keep id-2. A duplicate is still answered: the same accepted
    # and rejected counts, the missing ones kept or, forgotten, zeros.
    index = index_on(table_type, 2)
    packed, wide = (1, 2, 3, 4), (70_000, 1, 2, 3)
    for key, missing in [(2, packed), (1, packed), (3, (0, 0, 0, 0)), (3, packed), (2, wide)]:
        index.load([f"id-{key}"], [StoredBatch(1, 0, missing)])
    assert index.get("id-2") == StoredBatch(1, 0, wide)
    index.load(["id-1", "id-1"], [StoredBatch(1, 0, packed), StoredBatch(1, 0, wide)])
    assert index.get("id-1") == StoredBatch(1, 0, wide)
    assert index.get("id-2") in (StoredBatch(1, 0, wide), StoredBatch(1, 0))


def test_an_index_line_holds_the_answer_where_the_data_is_and_when_to_the_millisecond() -> None:
    stored = StoredBatch(3, 1)
    line = encode_entry("b-1", stored, "20250301.ndjson", 120, 480, 1_740_830_400.123456)
    assert line == b'["b-1",3,1,"20250301.ndjson",120,480,1740830400.123]\n'
    counted = StoredBatch(3, 1, (2, 0, 1, 0))
    lines = encode_entry("b-2", counted, "20250301.1.ndjson", 0, 9, 1_740_830_400.0)
    assert lines == b'["b-2",2,0,1,0]\n["b-2",3,1,"20250301.1.ndjson",0,9,1740830400.0]\n'


def test_an_id_that_cannot_be_written_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"^batch_id cannot be stored: "):
        encode_entry("a\ud800", StoredBatch(1, 0), "20250301.ndjson", 0, 9, 0.0)


def _memory_held_by(build: Callable[[], object]) -> int:
    """Bytes still allocated once ``build`` has returned (what it built is alive)."""
    tracemalloc.start()
    try:
        built = build()
        size = tracemalloc.get_traced_memory()[0]
        del built
        return size
    finally:
        tracemalloc.stop()


def test_ids_without_missing_counts_take_no_room_for_counts() -> None:
    # Only the batches with missing counts have an entry in the second table: with the
    # others there too, two million ids would cost twice the memory.
    def table_alone() -> object:
        table = batch_index._DictTable(20_000)
        for n in range(20_000):
            table.put(id_digest(f"b{n}"), 3, 0)
        return table

    def index() -> object:
        ids = index_on(batch_index._DictTable, 20_000)
        for n in range(20_000):
            ids.add(f"b{n}", StoredBatch(3, 0))
        return ids

    assert _memory_held_by(index) < 1.2 * _memory_held_by(table_alone)
