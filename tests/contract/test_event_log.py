"""The `EventLog` port on every backend: what the pipeline relies on from a log.

An acknowledgement means the record is durable and readable (docs/storage.md,
docs/decisions/0001-event-log.md); records come back in seq order; a reopened log holds
every acknowledged record; a forgotten person's records are rewritten in place; a record
that cannot be committed reaches its request as an exception and the log goes on.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

import pytest

from tsunagu.core.ports import EventLog, LogRecord

from .conftest import WAIT_S, Opened, unlike_port

NOW = 1_790_000_000_000
Result = LogRecord | BaseException


class _Acks:
    """The `done` calls of each seq, as they arrive from the log's thread."""

    def __init__(self) -> None:
        self.calls: dict[int, list[Result]] = defaultdict(list)
        self._changed = threading.Condition()

    def done(self, seq: int) -> _Done:
        return _Done(self, seq)

    def record(self, seq: int, result: Result) -> None:
        with self._changed:
            self.calls[seq].append(result)
            self._changed.notify_all()

    def wait(self, *seqs: int) -> list[Result]:
        """The first result of each seq, once every one has its `done`."""
        with self._changed:
            arrived = self._changed.wait_for(lambda: all(self.calls.get(s) for s in seqs), WAIT_S)
            assert arrived, f"no done for seqs {[s for s in seqs if not self.calls.get(s)]}"
            return [self.calls[s][0] for s in seqs]


class _Done:
    def __init__(self, acks: _Acks, seq: int) -> None:
        self.acks, self.seq = acks, seq

    def __call__(self, result: Result) -> None:
        self.acks.record(self.seq, result)


def _record(seq: int, *, kind: str = "events", received_at: int = NOW) -> LogRecord:
    """A record whose every field says its seq, so a mix-up shows."""
    return LogRecord(seq, kind, received_at, f"body {seq}".encode(), f"ids {seq}".encode(), f"people {seq}".encode())


def _append(log: EventLog, acks: _Acks, rec: LogRecord) -> None:
    log.append(rec.seq, rec.kind, rec.received_at, rec.body, rec.ids, rec.people, acks.done(rec.seq))


def _append_and_wait(log: EventLog, rec: LogRecord) -> Result:
    acks = _Acks()
    _append(log, acks, rec)
    (result,) = acks.wait(rec.seq)
    return result


def test_the_backend_has_every_method_of_the_event_log_port_as_declared(event_log: Opened[EventLog]) -> None:
    assert unlike_port(event_log.store, EventLog) == []


def test_an_empty_log_reads_nothing_and_its_last_seq_is_zero(event_log: Opened[EventLog]) -> None:
    log = event_log.store
    assert log.last_seq() == 0
    assert log.read(0) == [] and log.tail(0) == [] and log.read_range(0, 10) == [] and log.read_seqs([1]) == []
    assert list(log.recent_ids(0)) == []


def test_append_calls_done_once_with_the_record_when_it_is_already_readable(event_log: Opened[EventLog]) -> None:
    log = event_log.store
    acks = _Acks()
    seen_in_done: list[list[LogRecord]] = []
    rec = LogRecord(1, "events", NOW, b"\x00msgpack\xff", b"\x91\xa1m", b"\x92\x91\xa1p\x90")

    def done(result: Result) -> None:
        seen_in_done.append(log.read(0))  # the record is durable by now: any reader sees it
        acks.record(1, result)

    log.append(rec.seq, rec.kind, rec.received_at, rec.body, rec.ids, rec.people, done)
    assert acks.wait(1) == [rec]
    assert seen_in_done == [[rec]]
    assert log.read(0) == [rec] and log.last_seq() == 1
    event_log.close()  # every callback has run once the log is closed
    assert len(acks.calls[1]) == 1


def test_records_appended_without_waiting_come_back_in_seq_order_from_read_and_tail(
    event_log: Opened[EventLog],
) -> None:
    log = event_log.store
    acks = _Acks()
    records = [_record(seq) for seq in range(1, 301)]
    for rec in records:  # queued faster than they commit: several share a group commit
        _append(log, acks, rec)
    assert acks.wait(*range(1, 301)) == records  # each done gets its own record
    assert log.read(0) == records
    assert log.read(100, 50) == records[100:150]
    assert log.read(300) == []
    assert log.tail(0) == records[:200]  # the default page
    assert log.tail(250) == records[250:]
    assert log.tail(10, 5) == records[10:15]
    assert log.last_seq() == 300


def test_read_range_and_read_seqs_return_exactly_the_records_asked_for(event_log: Opened[EventLog]) -> None:
    log = event_log.store
    acks = _Acks()
    records = [_record(seq) for seq in range(1, 11)]
    for rec in records:
        _append(log, acks, rec)
    acks.wait(*range(1, 11))
    assert log.read_range(3, 6) == records[3:6]  # after 3, up to 6 included
    assert log.read_range(8, 100) == records[8:]
    assert log.read_range(5, 5) == []
    assert log.read_seqs([2, 5, 10]) == [records[1], records[4], records[9]]
    assert log.read_seqs([4, 99]) == [records[3]]  # a seq the log does not hold is left out


def test_a_reopened_log_holds_every_acknowledged_record_of_every_kind(event_log: Opened[EventLog]) -> None:
    log = event_log.store
    acks = _Acks()
    kinds = ["events", "forget", "define", "undefine", "backfill", "tick"]
    records = [_record(seq, kind=kinds[seq % len(kinds)], received_at=NOW + seq) for seq in range(1, 501)]
    for rec in records:
        _append(log, acks, rec)
    assert acks.wait(*range(1, 501)) == records
    log = event_log.reopen()
    assert log.read(0, 1000) == records
    assert log.last_seq() == 500
    assert _append_and_wait(log, _record(501)) == _record(501)  # and it goes on from there


def test_close_commits_and_acknowledges_what_was_appended_before_it(event_log: Opened[EventLog]) -> None:
    log = event_log.store
    acks = _Acks()
    records = [_record(seq) for seq in range(1, 101)]
    for rec in records:
        _append(log, acks, rec)
    event_log.close()  # at once: the requests in flight still get their answer
    assert [acks.calls[rec.seq] for rec in records] == [[rec] for rec in records]
    log = event_log.reopen()
    assert log.read(0) == records


def test_rewrite_replaces_the_body_ids_and_people_of_one_record_and_nothing_else(
    event_log: Opened[EventLog],
) -> None:
    log = event_log.store
    acks = _Acks()
    records = [_record(seq, received_at=NOW) for seq in range(1, 4)]
    for rec in records:
        _append(log, acks, rec)
    acks.wait(1, 2, 3)
    for i in range(20):  # each rewrite is visible as soon as it returns, every time
        log.rewrite(2, f"without them {i}".encode(), b"fewer ids", b"fewer people")
        assert log.read(1, 1)[0].body == f"without them {i}".encode(), f"rewrite {i} returned before its commit"
    log.rewrite(2, b"without them", b"fewer ids", b"fewer people")
    rewritten = LogRecord(2, "events", NOW, b"without them", b"fewer ids", b"fewer people")
    assert log.read(0) == [records[0], rewritten, records[2]]
    assert sorted(log.recent_ids(NOW)) == sorted([(NOW, b"ids 1"), (NOW, b"fewer ids"), (NOW, b"ids 3")])
    log = event_log.reopen()
    assert log.read(0) == [records[0], rewritten, records[2]]


def test_recent_ids_yields_the_ids_of_event_records_received_since_a_time(event_log: Opened[EventLog]) -> None:
    log = event_log.store
    acks = _Acks()
    records = [
        _record(1, received_at=NOW - 2_000),
        _record(2, received_at=NOW - 1_000),
        _record(3, kind="forget", received_at=NOW - 1_000),  # a control record holds no message ids
        _record(4, kind="tick", received_at=NOW),
        _record(5, received_at=NOW),
    ]
    for rec in records:
        _append(log, acks, rec)
    acks.wait(1, 2, 3, 4, 5)
    assert sorted(log.recent_ids(NOW - 1_000)) == [(NOW - 1_000, b"ids 2"), (NOW, b"ids 5")]
    assert sorted(log.recent_ids(NOW + 1)) == []
    assert len(list(log.recent_ids(0))) == 3


def test_an_append_the_log_cannot_commit_reaches_done_as_an_exception_and_the_log_goes_on(
    event_log: Opened[EventLog],
) -> None:
    log = event_log.store
    assert _append_and_wait(log, _record(1)) == _record(1)
    again = LogRecord(1, "events", NOW, b"another body", b"", b"")  # a seq the log holds already
    assert isinstance(_append_and_wait(log, again), BaseException)
    assert log.read(0) == [_record(1)]  # the first record stands
    assert _append_and_wait(log, _record(2)) == _record(2)  # the writer is still there
    assert log.read(0) == [_record(1), _record(2)] and log.last_seq() == 2


def test_a_rewrite_the_log_cannot_store_raises_to_its_caller_and_the_log_goes_on(event_log: Opened[EventLog]) -> None:
    log = event_log.store
    assert _append_and_wait(log, _record(1)) == _record(1)
    unstorable: Any = object()
    with pytest.raises(Exception):  # noqa: B017 (each backend's driver raises its own error)
        log.rewrite(1, unstorable, b"", b"")
    assert log.read(0) == [_record(1)]
    assert _append_and_wait(log, _record(2)) == _record(2)
    log.rewrite(2, b"rewritten", b"", b"")
    assert log.read(1) == [LogRecord(2, "events", NOW, b"rewritten", b"", b"")]
