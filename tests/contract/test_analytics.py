"""The `AnalyticsStore` port on every backend: batches behind the log, SQL over them.

A batch (`AnalyticsBatch`, built as `pipeline.read_record` builds one) is written in one
transaction with the log seq it covers; people are upserted, removed and merged; a
forgotten person's events, row and aliases go; the store's own writer tails a log and
moves a row it refuses aside without stopping (docs/storage.md). The SQL here is plain
enough for every engine: the platform's own SQL reaches other engines through sqlglot.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from tsunagu.core.errors import Unavailable
from tsunagu.core.ports import EVENT_COLUMNS, AnalyticsBatch, AnalyticsStore, LogRecord, Reject

from .conftest import WAIT_S, Opened, unlike_port

NOW = 1_790_000_000_000


def _event(batch: AnalyticsBatch, seq: int, message_id: str, person_id: str, **values: Any) -> None:
    """One event row, as `pipeline.read_record` appends it to a batch's columns."""
    row = {
        "seq": seq, "message_id": message_id, "person_id": person_id, "type": "track", "event": "view",
        "channel": "web", "store_id": None, "timestamp": NOW, "received_at": NOW, "user_id": None,
        "anonymous_id": None, "properties": b'{"revenue": 5}', "context": b"{}", "traits": {},
    } | values  # fmt: skip
    for column in EVENT_COLUMNS:
        batch.events[column].append(row[column])


def _person(person_id: str, event_count: int = 1, merged_ids: list[str] | None = None) -> tuple[Any, ...]:
    """One people row, as the pipeline hands a person over."""
    return (person_id, {"user_id": [f"U-{person_id}"]}, {"rank": "gold"}, NOW, NOW + 1, {"web": event_count}, {},
            event_count, merged_ids or [])  # fmt: skip


def _events(store: AnalyticsStore) -> list[tuple[Any, ...]]:
    return store.query("SELECT seq, message_id, person_id FROM events ORDER BY seq, message_id")


def _people(store: AnalyticsStore) -> list[tuple[Any, ...]]:
    return store.query("SELECT person_id, event_count, merged_ids FROM people ORDER BY person_id")


def _aliases(store: AnalyticsStore) -> list[tuple[Any, ...]]:
    return store.query("SELECT alias, person_id FROM person_aliases ORDER BY alias")


def test_the_backend_has_every_method_of_the_analytics_store_port(analytics: Opened[AnalyticsStore]) -> None:
    assert unlike_port(analytics.store, AnalyticsStore) == []


def test_a_new_store_is_at_seq_zero_with_empty_tables(analytics: Opened[AnalyticsStore]) -> None:
    store = analytics.store
    assert store.applied_seq() == 0 and store.error is None
    for table in ("events", "people", "person_aliases", "person_events"):
        assert store.query(f"SELECT count(*) FROM {table}") == [(0,)], table


def test_a_written_batch_is_there_for_sql_with_its_seq(analytics: Opened[AnalyticsStore]) -> None:
    store = analytics.store
    batch = AnalyticsBatch(seq=3, people=[_person("p1", 2), _person("p2")])
    _event(batch, 2, "m1", "p1", event="view", timestamp=NOW - 5_000)
    _event(batch, 3, "m2", "p1", event="buy", properties=b'{"revenue": 1200}')
    _event(batch, 3, "m3", "p2", type="page", event="top", channel="app")
    store.write(batch)
    assert store.applied_seq() == 3
    assert _events(store) == [(2, "m1", "p1"), (3, "m2", "p1"), (3, "m3", "p2")]
    assert store.query("SELECT message_id FROM events WHERE person_id = ? AND event = ?", ["p1", "buy"]) == [("m2",)]
    assert store.query("SELECT count(*) FROM events WHERE person_id = ?", ["p1' OR '1'='1"]) == [(0,)]  # bound
    (first,) = store.query_dicts("SELECT type, event, channel, timestamp FROM events WHERE message_id = ?", ["m1"])
    assert first == {"type": "track", "event": "view", "channel": "web",
                     "timestamp": datetime.fromtimestamp((NOW - 5_000) / 1000, UTC)}  # fmt: skip
    assert _people(store) == [("p1", 2, []), ("p2", 1, [])]


def test_applied_seq_is_the_highest_seq_written_also_after_a_reopen(analytics: Opened[AnalyticsStore]) -> None:
    store = analytics.store
    store.write(AnalyticsBatch(seq=5))
    store.write(AnalyticsBatch(seq=3, people=[_person("p1")]))  # persons only, with an older seq
    assert store.applied_seq() == 5
    store = analytics.reopen()  # a restart replays the log after this seq: 4 and 5 must not come twice
    assert store.applied_seq() == 5


def test_people_rows_are_replaced_by_later_ones_and_removed_persons_disappear(
    analytics: Opened[AnalyticsStore],
) -> None:
    store = analytics.store
    store.write(AnalyticsBatch(seq=1, people=[_person("p1"), _person("p2"), _person("p3")]))
    store.write(AnalyticsBatch(seq=2, people=[_person("p1", 5), _person("p1", 6)], removed=["p2"]))
    assert _people(store) == [("p1", 6, []), ("p3", 1, [])]  # the newest row of a person handed over twice
    assert store.applied_seq() == 2


def test_merges_point_every_merged_id_at_its_last_survivor(analytics: Opened[AnalyticsStore]) -> None:
    store = analytics.store
    first = AnalyticsBatch(seq=1, people=[_person("a"), _person("b"), _person("c"), _person("d")])
    for mid, pid in (("m1", "a"), ("m2", "b"), ("m3", "c"), ("m4", "d")):
        _event(first, 1, mid, pid)
    store.write(first)
    store.write(AnalyticsBatch(seq=2, merges=[("a", "b"), ("b", "c")]))  # a chain in one batch
    assert _aliases(store) == [("a", "c"), ("b", "c")]
    store.write(AnalyticsBatch(seq=3, merges=[("c", "d")], people=[_person("d", 4, ["a", "b", "c"])]))
    assert _aliases(store) == [("a", "d"), ("b", "d"), ("c", "d")]  # and across batches
    assert _people(store) == [("d", 4, ["a", "b", "c"])]  # the merged-away persons' rows are gone
    rows = store.query("SELECT message_id, canonical_person_id FROM person_events ORDER BY message_id")
    assert rows == [("m1", "d"), ("m2", "d"), ("m3", "d"), ("m4", "d")]


def test_forget_deletes_a_persons_events_row_and_aliases_even_from_the_same_batch(
    analytics: Opened[AnalyticsStore],
) -> None:
    store = analytics.store
    first = AnalyticsBatch(seq=1, people=[_person("p1"), _person("p2")], merges=[("old", "p1")])
    _event(first, 1, "m1", "p1")
    _event(first, 1, "m2", "p2")
    store.write(first)
    second = AnalyticsBatch(seq=2, forget=["p1"])
    _event(second, 2, "m3", "p1")  # logged before the forget record, written with it
    _event(second, 2, "m4", "p2")
    store.write(second)
    assert _events(store) == [(1, "m2", "p2"), (2, "m4", "p2")]
    assert _people(store) == [("p2", 1, [])]
    assert _aliases(store) == []
    assert store.applied_seq() == 2


def test_a_reopened_store_keeps_its_rows_and_seq(analytics: Opened[AnalyticsStore]) -> None:
    store = analytics.store
    batch = AnalyticsBatch(seq=4, people=[_person("p1", 3)], merges=[("p0", "p1")])
    _event(batch, 4, "m1", "p1")
    store.write(batch)
    before = (_events(store), _people(store), _aliases(store))
    store = analytics.reopen()
    assert store.applied_seq() == 4
    assert (_events(store), _people(store), _aliases(store)) == before


class _Log:
    """A log for the store's writer to tail: records the test appends as it goes."""

    def __init__(self) -> None:
        self.records: list[LogRecord] = []
        self._lock = threading.Lock()

    def add(self, message_id: str, person_id: str, properties: bytes = b"{}") -> int:
        with self._lock:
            seq = len(self.records) + 1
            rec = LogRecord(seq, "events", NOW + seq, properties, message_id.encode(), person_id.encode())
            self.records.append(rec)
            return seq

    def tail(self, after_seq: int, limit: int) -> list[LogRecord]:
        with self._lock:
            return [r for r in self.records if r.seq > after_seq][:limit]


def _read(rec: LogRecord, batch: AnalyticsBatch) -> None:
    """The test's record reader: one event a record (the pipeline's decodes msgpack)."""
    _event(batch, rec.seq, rec.ids.decode(), rec.people.decode(), received_at=rec.received_at, properties=rec.body)


def test_the_stores_writer_tails_the_log_and_takes_the_persons_handed_over(
    analytics: Opened[AnalyticsStore],
) -> None:
    store = analytics.store
    log = _Log()
    for i in range(250):  # more than one page of the tail
        log.add(f"m{i}", f"p{i % 3}")
    store.start(log.tail, _read, 3600.0)  # a long interval: wait_for is what wakes it
    assert store.wait_for(250, WAIT_S)
    assert store.applied_seq() == 250 and store.error is None
    assert store.query("SELECT count(*), count(DISTINCT person_id) FROM events") == [(250, 3)]
    store.hand_over([_person("p0", 84), _person("p1", 83)], [])
    seq = log.add("m250", "p2")
    assert store.wait_for(seq, WAIT_S)
    assert _people(store) == [("p0", 84, []), ("p1", 83, [])]
    store.hand_over([], ["p1"])
    assert store.wait_for(seq, WAIT_S)  # also waits for what was handed over since
    assert _people(store) == [("p0", 84, [])]
    assert store.query("SELECT max(seq) FROM events") == [(251,)]


def test_a_row_the_store_refuses_goes_to_on_reject_and_its_neighbours_are_written(
    analytics: Opened[AnalyticsStore],
) -> None:
    store = analytics.store
    log = _Log()
    rejected: list[Reject] = []
    log.add("good-1", "p1", b'{"revenue": 5}')
    bad = log.add("bad", "p2", b'{"s": "\xff"}')  # not UTF-8: no engine takes it as JSON text
    last = log.add("good-2", "p1", b'{"revenue": 7}')
    store.start(log.tail, _read, 3600.0, rejected.append)
    assert store.wait_for(last, WAIT_S)
    assert store.error is None and store.applied_seq() == last
    assert store.query("SELECT message_id FROM events ORDER BY message_id") == [("good-1",), ("good-2",)]
    (reject,) = rejected
    assert (reject.table, reject.seq, reject.message_id, reject.person_id) == ("events", bad, "bad", "p2")
    assert reject.reason and reject.body


def test_reads_after_close_raise_unavailable_and_waits_end(analytics: Opened[AnalyticsStore]) -> None:
    store = analytics.store
    log = _Log()
    store.start(log.tail, _read, 3600.0)
    analytics.close()
    with pytest.raises(Unavailable):
        store.query("SELECT 1")
    with pytest.raises(Unavailable):
        store.query_dicts("SELECT 1")
    assert store.wait_for(1, WAIT_S) is False  # nothing more will be written
