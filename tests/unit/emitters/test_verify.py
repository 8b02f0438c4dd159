"""logops verify's reconciliation on hand-made run folders and sink files."""

from __future__ import annotations

import json
import random
from collections import Counter
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emitters import sink_reader
from emitters.seqtable import SeqTable
from emitters.verify import VerifyInputError, percentiles, verify_run
from tests.unit.emitters.runfolder import DAY, T0, RunFolder, lines_for, stored_line, write_sink


def _one_stream(tmp_path: Path, batches: int = 5, size: int = 100) -> tuple[RunFolder, str]:
    rf = RunFolder(tmp_path)
    stream = rf.emitter("web")
    for b in range(batches):
        rf.send("web", stream, b * size, size, t=T0 + b)
    return rf, stream


def test_everything_stored_once_is_ok_with_exact_latency(tmp_path: Path) -> None:
    rf, stream = _one_stream(tmp_path)
    for b in range(5):
        # Batch b was sent at T0 + b and stored 12 ms (then 40 ms) later.
        delay = 0.012 if b < 4 else 0.040
        write_sink(
            rf.sink_dir / f"{DAY}.ndjson",
            lines_for(rf, "web", stream, range(b * 100, b * 100 + 100), T0 + b + delay),
        )
    report = verify_run(rf.write(), rf.sink_dir)
    (acc,) = report.streams
    assert (acc.emitter, acc.stream) == ("web", "web#0")
    assert (acc.sent, acc.acknowledged, acc.stored, acc.delivered) == (500, 500, 500, 500)
    assert (acc.missing, acc.duplicated, acc.unexpected, acc.out_of_order) == (0, 0, 0, 0)
    assert acc.latency_ms is not None
    assert (acc.latency_ms.count, acc.latency_ms.p50, acc.latency_ms.p95) == (500, 12, 40)
    assert (acc.latency_ms.p99, acc.latency_ms.max) == (40, 40)
    assert report.totals.delivered_ratio == 1.0
    assert report.ok and report.exit_code == 0
    assert json.loads(json.dumps(report.to_dict()))["totals"]["missing"] == 0


def test_latency_counts_from_the_first_send_of_a_batch(tmp_path: Path) -> None:
    rf, stream = _one_stream(tmp_path, batches=2)
    # Batch 1 sent again 30 s later: answered "duplicate", stored the first time.
    rf.send("web", stream, 100, 100, outcome="duplicate", t=T0 + 31)
    write_sink(rf.sink_dir / f"{DAY}.ndjson", lines_for(rf, "web", stream, range(100), T0 + 0.007))
    write_sink(
        rf.sink_dir / f"{DAY}.ndjson", lines_for(rf, "web", stream, range(100, 200), T0 + 1.009)
    )
    report = verify_run(rf.write(), rf.sink_dir)
    lat = report.totals.latency_ms
    assert lat is not None and (lat.count, lat.p50, lat.max) == (200, 7, 9)
    assert report.totals.acknowledged == 200 and report.ok


def test_missing_records_are_loss_with_their_ranges(tmp_path: Path) -> None:
    rf, stream = _one_stream(tmp_path)
    kept = [s for s in range(500) if not (10 <= s <= 19 or s == 40 or s >= 498)]
    write_sink(rf.sink_dir / f"{DAY}.ndjson", lines_for(rf, "web", stream, kept))
    report = verify_run(rf.write(), rf.sink_dir)
    (acc,) = report.streams
    assert acc.missing == 13
    assert acc.missing_ranges == [(10, 19), (40, 40), (498, 499)]
    assert report.totals.delivered_ratio == pytest.approx(487 / 500)
    assert not report.ok and report.exit_code == 1
    out = report.to_dict()
    assert out["streams"][0]["missing_ranges"] == [[10, 19], [40, 40], [498, 499]]
    assert out["exit_code"] == 1


def test_only_the_first_few_missing_ranges_are_listed(tmp_path: Path) -> None:
    rf, stream = _one_stream(tmp_path, batches=1)
    write_sink(rf.sink_dir / f"{DAY}.ndjson", lines_for(rf, "web", stream, range(0, 100, 2)))
    (acc,) = verify_run(rf.write(), rf.sink_dir).streams
    assert acc.missing == 50
    assert acc.missing_ranges == [(1, 1), (3, 3), (5, 5), (7, 7), (9, 9)]


def test_a_batch_stored_twice_is_duplicated_not_out_of_order(tmp_path: Path) -> None:
    rf, stream = _one_stream(tmp_path, batches=3)
    path = rf.sink_dir / f"{DAY}.ndjson"
    write_sink(path, lines_for(rf, "web", stream, range(300)))
    write_sink(path, lines_for(rf, "web", stream, range(100, 200)))
    write_sink(path, lines_for(rf, "web", stream, [7, 7]))
    report = verify_run(rf.write(), rf.sink_dir)
    (acc,) = report.streams
    assert (acc.stored, acc.delivered, acc.duplicated) == (402, 300, 102)
    assert (acc.missing, acc.out_of_order) == (0, 0)
    assert report.exit_code == 1


def test_a_failed_send_that_arrived_is_unexpected_not_loss(tmp_path: Path) -> None:
    rf, stream = _one_stream(tmp_path, batches=2)
    rf.send("web", stream, 200, 100, outcome="failed", t=T0 + 2, reason="unavailable")
    # A partial batch: 305 and 307 were refused, so they are neither acknowledged nor lost.
    rf.send("web", stream, 300, 10, outcome="partial", t=T0 + 3, rejected=[305, 307])
    stored = [*range(200), *range(200, 250), *(s for s in range(300, 310) if s not in (305, 307))]
    write_sink(rf.sink_dir / f"{DAY}.ndjson", lines_for(rf, "web", stream, stored))
    report = verify_run(rf.write(), rf.sink_dir)
    (acc,) = report.streams
    assert (acc.sent, acc.acknowledged, acc.delivered) == (310, 208, 208)
    assert (acc.unexpected, acc.missing, acc.duplicated) == (50, 0, 0)
    assert report.ok


def test_a_rejected_record_that_was_stored_anyway_is_unexpected(tmp_path: Path) -> None:
    rf, stream = _one_stream(tmp_path, batches=0)
    rf.send("web", stream, 0, 10, outcome="rejected", reason="invalid_record")
    rf.send("web", stream, 10, 10, outcome="accepted", rejected=[12])
    write_sink(rf.sink_dir / f"{DAY}.ndjson", lines_for(rf, "web", stream, [3, *range(10, 20)]))
    (acc,) = verify_run(rf.write(), rf.sink_dir).streams
    assert (acc.acknowledged, acc.delivered, acc.unexpected, acc.missing) == (9, 9, 2, 0)


def test_out_of_order_counts_each_step_back(tmp_path: Path) -> None:
    rf, stream = _one_stream(tmp_path)
    order = [*range(100), *range(200, 300), *range(100, 200), *range(300, 500)]
    order[450], order[451] = order[451], order[450]
    write_sink(rf.sink_dir / f"{DAY}.ndjson", lines_for(rf, "web", stream, order))
    report = verify_run(rf.write(), rf.sink_dir)
    assert report.streams[0].out_of_order == 2
    assert report.ok  # reordering is reported, it is not loss


def test_rotated_and_archived_files_are_read_in_ingest_order(tmp_path: Path) -> None:
    rf, stream = _one_stream(tmp_path)
    sink = rf.sink_dir
    write_sink(sink / f"{DAY}.ndjson.gz", lines_for(rf, "web", stream, range(100)), gz=True)
    write_sink(sink / f"{DAY}.1.ndjson", lines_for(rf, "web", stream, range(100, 200)))
    write_sink(sink / f"{DAY}.2.ndjson.gz", lines_for(rf, "web", stream, range(200, 300)), gz=True)
    # Housekeeping stopped between writing the archive and removing the original: the same
    # file twice, read once.
    write_sink(sink / f"{DAY}.2.ndjson", lines_for(rf, "web", stream, range(200, 300)))
    write_sink(sink / f"{DAY}.10.ndjson", lines_for(rf, "web", stream, range(400, 500)))
    write_sink(sink / f"{DAY}.3.ndjson", lines_for(rf, "web", stream, range(300, 400)))
    # Not sink data files: never read.
    write_sink(sink / f"{DAY}.ndjson.tmp", lines_for(rf, "web", stream, range(5)))
    write_sink(sink / ".index" / f"{DAY}.ndjson", lines_for(rf, "web", stream, range(5)))
    report = verify_run(rf.write(), sink)
    (acc,) = report.streams
    assert (acc.stored, acc.delivered, acc.duplicated, acc.out_of_order) == (500, 500, 0, 0)
    assert report.files_read == 5


def test_other_runs_lines_are_skipped(tmp_path: Path) -> None:
    rf, stream = _one_stream(tmp_path, batches=2)
    path = rf.sink_dir / f"{DAY}.ndjson"
    other = lines_for(rf, "web", stream, range(200), run_id="20261201T110000Z-ffffff")
    # Lines of another run that mention this run's id in their text.
    for line in other[:50]:
        line["msg"] = f"replay of {rf.run_id}"
    write_sink(path, other)
    write_sink(path, lines_for(rf, "web", stream, range(200)))
    write_sink(path, lines_for(rf, "web", stream, range(200), run_id=rf.run_id + "x"))
    # A day that ended long before the run started is not read at all.
    write_sink(rf.sink_dir / "20261120.ndjson", lines_for(rf, "web", stream, range(200)))
    report = verify_run(rf.write(), rf.sink_dir)
    (acc,) = report.streams
    assert (acc.stored, acc.duplicated, acc.unexpected) == (200, 0, 0)
    assert report.files_read == 1


def test_lines_crossing_read_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sink_reader, "_BLOCK", 97)
    rf, stream = _one_stream(tmp_path, batches=3)
    rng = random.Random(5)
    mixed = lines_for(rf, "web", stream, range(300))
    mixed += lines_for(rf, "web", stream, range(300), run_id="someone-else")
    rng.shuffle(mixed)
    ours = [line for line in mixed if line["run_id"] == rf.run_id]
    write_sink(rf.sink_dir / f"{DAY}.ndjson", mixed)
    # A torn last line that names the run.
    with (rf.sink_dir / f"{DAY}.ndjson").open("ab") as fh:
        fh.write(b'{"ts":"x","run_id":"' + rf.run_id.encode() + b'","stream":"web#0","se')
    report = verify_run(rf.write(), rf.sink_dir)
    (acc,) = report.streams
    expected_steps = sum(1 for a, b in pairwise(ours) if b["seq"] < a["seq"])
    assert (acc.delivered, acc.missing, acc.duplicated) == (300, 0, 0)
    assert acc.out_of_order == expected_steps
    assert report.bad_lines == 1


def test_a_hostile_emitter_name_is_carried_as_data(tmp_path: Path) -> None:
    rf = RunFolder(tmp_path)
    name = '<script>alert("x")</script>\n\x1b[2J"\u202e'
    stream = rf.emitter(name, stream=name + "#0")
    rf.send(name, stream, 0, 20)
    write_sink(rf.sink_dir / f"{DAY}.ndjson", lines_for(rf, name, stream, range(20)))
    report = verify_run(rf.write(), rf.sink_dir)
    (acc,) = report.streams
    assert (acc.emitter, acc.stream, acc.delivered) == (name, name + "#0", 20)
    assert json.loads(json.dumps(report.to_dict()))["streams"][0]["emitter"] == name


def test_streams_in_the_sink_but_not_in_the_sends(tmp_path: Path) -> None:
    rf, stream = _one_stream(tmp_path, batches=1)
    rf.emitter("quiet")  # named in run.json, sent nothing
    write_sink(rf.sink_dir / f"{DAY}.ndjson", lines_for(rf, "web", stream, range(100)))
    write_sink(rf.sink_dir / f"{DAY}.ndjson", lines_for(rf, "ghost", "ghost#0", range(3)))
    bad = stored_line(rf.run_id, "web", stream, 0, T0)
    write_sink(rf.sink_dir / f"{DAY}.ndjson", [{**bad, "seq": None}, {**bad, "stream": 5}])
    report = verify_run(rf.write(), rf.sink_dir)
    by_stream = {acc.stream: acc for acc in report.streams}
    assert set(by_stream) == {"web#0", "quiet#0", "ghost#0"}
    assert (by_stream["ghost#0"].emitter, by_stream["ghost#0"].unexpected) == ("ghost", 3)
    assert by_stream["quiet#0"].acknowledged == 0
    assert report.unaccounted_lines == 2
    assert report.ok


def test_an_empty_run(tmp_path: Path) -> None:
    rf = RunFolder(tmp_path)
    rf.emitter("web")
    run_dir = rf.write()
    (run_dir / "sends.jsonl").unlink()
    report = verify_run(run_dir, rf.sink_dir)
    assert report.totals.acknowledged == report.totals.stored == 0
    assert report.totals.delivered_ratio is None and report.totals.latency_ms is None
    assert report.ok
    assert report.to_dict()["totals"]["latency_ms"] is None


def test_the_sink_folder_comes_from_run_json(tmp_path: Path) -> None:
    rf, stream = _one_stream(tmp_path, batches=1)
    write_sink(rf.sink_dir / f"{DAY}.ndjson", lines_for(rf, "web", stream, range(100)))
    report = verify_run(rf.write())
    assert report.sink_dir == str(rf.sink_dir)
    assert report.totals.delivered == 100


def test_bad_input(tmp_path: Path) -> None:
    rf, _ = _one_stream(tmp_path, batches=1)
    with pytest.raises(VerifyInputError, match=r"no run\.json"):
        verify_run(rf.run_dir, rf.sink_dir)
    run_dir = rf.write()
    with pytest.raises(VerifyInputError, match="no sink folder"):
        verify_run(run_dir, tmp_path / "nowhere")
    (run_dir / "run.json").write_text("{not json")
    with pytest.raises(VerifyInputError, match="cannot read"):
        verify_run(run_dir, rf.sink_dir)
    (run_dir / "run.json").write_text('{"run_id": 5}')
    with pytest.raises(VerifyInputError, match="no run_id"):
        verify_run(run_dir, rf.sink_dir)


def test_unreadable_send_lines_are_counted(tmp_path: Path) -> None:
    rf, stream = _one_stream(tmp_path, batches=1)
    run_dir = rf.write()
    with (run_dir / "sends.jsonl").open("a") as fh:
        fh.write(
            '{"t": 1, "emitter": "web", "stream": "web#0", "first_seq": -4, "count": 1, '
            '"outcome": "accepted"}\n{"t": 1, "emitter": "web", "stream": "web#0", '
            '"first_seq": 100, "count": 5, "outcome": "lost"}\n'
            '{"t": 1, "emitter": "web", "stream": "web#0", "first_seq": 0, '
            '"count": 1000000000000, "outcome": "accepted"}\n{"t": 1.5, "emit'
        )
    write_sink(rf.sink_dir / f"{DAY}.ndjson", lines_for(rf, "web", stream, range(100)))
    report = verify_run(run_dir, rf.sink_dir)
    assert report.bad_send_lines == 4
    assert report.totals.acknowledged == 100 and report.ok


def test_seq_table_ranges_cross_chunks() -> None:
    table = SeqTable()
    assert table.mark_sent(4000, 200, acked=True) == (200, 200)
    assert table.mark_sent(4100, 200, acked=False) == (100, 0)
    for seq in (4000, 4095, 4150, 4199):
        table.store(seq)
    assert table.missing_ranges(10) == [(4001, 4094), (4096, 4149), (4151, 4198)]


def test_percentiles_are_nearest_rank() -> None:
    hist = Counter({v: 1 for v in range(1, 101)})
    lat = percentiles(hist)
    assert lat is not None
    assert (lat.count, lat.p50, lat.p95, lat.p99, lat.max) == (100, 50, 95, 99, 100)
    assert percentiles(Counter()) is None


_SEND = st.tuples(
    st.integers(0, 60),
    st.integers(0, 25),
    st.sampled_from(["accepted", "failed", "partial"]),
    st.lists(st.integers(0, 90), max_size=3),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sends=st.lists(_SEND, max_size=8), stored=st.lists(st.integers(0, 90), max_size=120))
def test_agrees_with_a_plain_count(
    tmp_path_factory: pytest.TempPathFactory,
    sends: list[tuple[int, int, str, list[int]]],
    stored: list[int],
) -> None:
    rf = RunFolder(tmp_path_factory.mktemp("run"))
    stream = rf.emitter("web")
    acked: set[int] = set()
    sent: set[int] = set()
    for first, count, outcome, rejected in sends:
        rf.send("web", stream, first, count, outcome=outcome, rejected=rejected)
        batch = set(range(first, first + count))
        sent |= batch
        if outcome != "failed":
            acked |= batch - set(rejected)
    write_sink(rf.sink_dir / f"{DAY}.ndjson", lines_for(rf, "web", stream, stored))
    report = verify_run(rf.write(), rf.sink_dir)
    acc = report.totals
    copies = Counter(stored)
    firsts = list(dict.fromkeys(stored))
    assert acc.sent == len(sent)
    assert acc.acknowledged == len(acked)
    assert acc.missing == len(acked - set(stored))
    assert acc.duplicated == len(stored) - len(copies)
    assert acc.unexpected == len(set(stored) - acked)
    assert acc.out_of_order == sum(1 for a, b in pairwise(firsts) if b < a)
    assert report.ok == (not (acked - set(stored)) and len(stored) == len(copies))


_JUNK_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 2**70),
    st.floats(),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    junk=st.lists(
        st.one_of(
            st.binary(max_size=60),
            st.fixed_dictionaries(
                {"stream": _JUNK_VALUE, "seq": _JUNK_VALUE, "ingest_ts": _JUNK_VALUE}
            ),
        ),
        max_size=20,
    )
)
def test_odd_lines_naming_the_run_never_break_verify(
    tmp_path_factory: pytest.TempPathFactory, junk: list[bytes | dict[str, object]]
) -> None:
    rf, stream = _one_stream(tmp_path_factory.mktemp("run"), batches=1)
    path = rf.sink_dir / f"{DAY}.ndjson"
    write_sink(path, lines_for(rf, "web", stream, range(100)))
    needle = rf.run_id.encode()
    with path.open("ab") as fh:
        for item in junk:
            if isinstance(item, bytes):
                fh.write(item.replace(b"\n", b" ") + needle + b"\n")
            else:
                fh.write(json.dumps({**item, "run_id": rf.run_id}).encode() + b"\n")
    report = verify_run(rf.write(), rf.sink_dir)
    acc = report.totals
    assert acc.delivered == 100 and acc.missing == 0
    # Every odd line is counted somewhere: unreadable, unaccounted, or stored for its stream.
    odd = report.bad_lines + report.unaccounted_lines + acc.stored - 100
    assert odd == len(junk)
