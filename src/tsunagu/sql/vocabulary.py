"""The workspace's vocabulary read from the analytics store, at a bounded cost.

`read` fills a `tsunagu.core.vocabulary.Vocabulary` up to a log seq; `increment` reads
only what came after the seq one covers (`merge` adds it), so a cached vocabulary is
kept current for a few milliseconds a request. What each part costs over 50M events and
1M people (bench/segments.py's file, 2 threads; docs/segments.md#warnings):

* **names and counts**, exact: one grouped scan of four narrow columns (type, event,
  channel, store id) — about a second, once; an increment prunes to its rows by `seq`;
* **properties and values**, sampled: the latest `TAIL_ROWS` events (by `seq`, pruned by
  the zone maps), at most `SAMPLE_PER_EVENT` of each name, then, for a name the tail
  missed, its own latest events (looked for in the `LOOK_BACK` log records before its
  latest one) — tens of milliseconds;
* **traits**, exact: the keys of every person's traits — about 0.1 s over 1M people —
  and the values of the first `PEOPLE_SAMPLED` people.

DuckDB's SQL, as the embedded analytics store speaks it (`json_keys`): these are reads of
the store's own tables, not rules compiled for a warehouse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb
import msgspec

from ..core.vocabulary import SAMPLE_PER_EVENT, Vocabulary

__all__ = ["LOOK_BACK", "PEOPLE_SAMPLED", "TAIL_ROWS", "Increment", "increment", "merge", "read", "read_traits"]

TAIL_ROWS = 50_000
LOOK_BACK = 1_000_000
PEOPLE_SAMPLED = 2_000
#: names sampled one query each, at most (a sender may invent a name on every event)
MAX_LOOKUPS = 100
_TYPES = "type IN ('track', 'page', 'screen')"
_decode = msgspec.json.Decoder().decode


@dataclass
class Increment:
    """The rows of the events after one seq, up to another (`merge` adds them)."""

    after: int
    upto: int
    counts: list[tuple[Any, ...]] = field(default_factory=list)
    samples: list[tuple[str, str | None, str | None]] = field(default_factory=list)  # (type, event, properties)


def _counts(con: duckdb.DuckDBPyConnection, after: int, upto: int) -> list[tuple[Any, ...]]:
    return con.execute(
        f"SELECT type, event, channel, store_id, count(*), max(seq) FROM events"
        f" WHERE {_TYPES} AND seq > ? AND seq <= ? GROUP BY ALL",
        [after, upto],
    ).fetchall()


def _tail(con: duckdb.DuckDBPyConnection, after: int, upto: int, rows: int) -> list[tuple[Any, ...]]:
    """Up to `rows` events after `after`, the latest `SAMPLE_PER_EVENT` of each name."""
    return con.execute(
        f"SELECT type, event, properties FROM (SELECT type, event, properties, seq FROM events"
        f" WHERE {_TYPES} AND seq > ? AND seq <= ? LIMIT ?)"
        f" QUALIFY row_number() OVER (PARTITION BY type, event ORDER BY seq DESC) <= ?",
        [after, upto, rows, SAMPLE_PER_EVENT],
    ).fetchall()


def increment(con: duckdb.DuckDBPyConnection, after: int, upto: int) -> Increment:
    """The counts of the events in (`after`, `upto`] and a sample of their properties."""
    out = Increment(after, upto)
    if upto > after:
        out.counts = _counts(con, after, upto)
        out.samples = _tail(con, max(after, upto - TAIL_ROWS), upto, TAIL_ROWS)
    return out


def merge(vocab: Vocabulary, rows: Increment) -> None:
    """Add an increment's rows (the counts, and samples of names not sampled enough yet)."""
    vocab.add_counts(rows.counts)
    for typ, event, props in rows.samples:
        name = event if typ == "track" else f"${typ}"
        seen = vocab.events.get(name or "")
        if seen is None or seen.sampled < SAMPLE_PER_EVENT:
            vocab.add_sample(typ, event, _decode(props) if props else None)
    vocab.seq = max(vocab.seq, rows.upto)


def read_traits(con: duckdb.DuckDBPyConnection, vocab: Vocabulary) -> None:
    """Every trait name with how many people hold it, and a sample of their values (replacing
    what `vocab` held: give it a fresh one to swap in where others read the old)."""
    people = con.execute("SELECT count(*) FROM people").fetchone()
    rows = con.execute(
        "SELECT k, count(*) FROM (SELECT unnest(json_keys(traits)) AS k FROM people"
        " WHERE json_type(traits) = 'OBJECT') GROUP BY k"
    ).fetchall()
    vocab.add_traits([(str(k), int(n)) for k, n in rows], int(people[0]) if people else 0)
    vocab.trait_values = {}
    vocab.people_sampled = 0
    for (traits,) in con.execute("SELECT traits FROM people LIMIT ?", [PEOPLE_SAMPLED]).fetchall():
        vocab.add_trait_sample(_decode(traits) if traits else None)


def read(con: duckdb.DuckDBPyConnection, upto: int) -> Vocabulary:
    """The vocabulary of the events up to log seq `upto`, and of the people now."""
    vocab = Vocabulary()
    merge(vocab, increment(con, 0, upto))
    # names the tail missed (or saw little of): their own latest events
    short = [(n, s) for n, s in vocab.events.items() if s.sampled < min(s.count, SAMPLE_PER_EVENT)]
    short.sort(key=lambda item: -item[1].count)
    for name, seen in short[:MAX_LOOKUPS]:
        view = name[1:] if name in ("$page", "$screen") else None
        which = "type = ?" if view else "type = 'track' AND event = ?"
        rows = con.execute(
            f"SELECT properties FROM events WHERE {which} AND seq > ? AND seq <= ? LIMIT ?",
            [view or name, max(0, seen.last_seq - LOOK_BACK), seen.last_seq, SAMPLE_PER_EVENT],
        ).fetchall()
        seen.sampled = 0  # sampled again, from the start: the tail's are among these
        seen.keys.clear()
        seen.values.clear()
        for (props,) in rows:
            vocab.add_sample(view or "track", None if view else name, _decode(props) if props else None)
    read_traits(con, vocab)
    return vocab
