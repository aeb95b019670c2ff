"""Persons beyond memory: the engine's maps, a bounded cache over a person store.

The engine reads and writes three maps: persons (id -> `Person`), the identity index
(identifier key -> person id) and aliases (merged person id -> survivor). Without a
store they are plain, unbounded dictionaries (tests, tools, a scratch engine). With a
`PersonStore` (core.ports; SQLite in storage.sqlite_state) they are caches over it:

* what changed since the last checkpoint is only in memory and is never evicted (the
  store holds the state as of the checkpoint's log seq, and a restart replays the log
  after it, so a person written ahead of its checkpoint would count twice);
* everything else is loaded on its next event, lookup or merge, and the least recently
  used is evicted when the cache is past its size (`limit`);
* deletions since the checkpoint are remembered, so the store's older row is not read
  back.

The runtime (pipeline) checkpoints when too much is pinned, then trims. Memory is then
about `limit` persons plus what changed in one checkpoint interval.

A lookup the cache cannot answer goes to the store, found or not: keys nobody has seen
(most of an import) are the store's to answer cheaply (storage.sqlite_state asks a Bloom
filter of its keys before reading), and the store keeps its count, so opening is O(1).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from typing import Any

import msgspec

from .people import Person
from .ports import PersonStore

__all__ = ["KeyMap", "Persons"]

_decoder = msgspec.msgpack.Decoder(Person)
_encoder = msgspec.msgpack.Encoder()


class Persons(MutableMapping[str, Person]):
    """person id -> Person: cached, with the store behind it."""

    def __init__(self, store: PersonStore | None = None, limit: int = 0) -> None:
        self.store = store
        self.limit = limit  # persons kept in memory; 0: no bound
        self._mem: OrderedDict[str, Person] = OrderedDict()
        self._gone: set[str] = set()  # deleted since the checkpoint (the store still has them)
        self._new: set[str] = set()  # in memory only: not in the store yet
        self._saving: set[str] = set()  # handed to a checkpoint that is not committed yet
        self._stored = store.count() if store is not None else 0  # kept by the store: O(1)
        #: is this person changed since the checkpoint? (set by the engine)
        self.pinned: Callable[[str], bool] = lambda pid: True
        #: called on a person read from the store (the engine drops what no definition reads)
        self.on_load: Callable[[Person], None] = lambda p: None
        self.loads = 0  # persons read from the store (a figure for benchmarks)
        #: persons a pass over everyone changed (`values()`): the engine marks them dirty
        self.changed: set[str] = set()

    # -- the map -------------------------------------------------------------------------

    def get(self, pid: str, default: Any = None) -> Any:  # type: ignore[override]
        p = self._mem.get(pid)
        if p is not None:
            self._mem.move_to_end(pid)
            return p
        if self.store is None or pid in self._gone:
            return default
        body = self.store.person(pid)
        if body is None:
            return default
        p = _decoder.decode(body)
        self.loads += 1
        self.on_load(p)
        self._put(pid, p)
        return p

    def __getitem__(self, pid: str) -> Person:
        p = self.get(pid)
        if p is None:
            raise KeyError(pid)
        return p

    def __contains__(self, pid: object) -> bool:
        if pid in self._mem:
            return True
        if self.store is None or not isinstance(pid, str) or pid in self._gone:
            return False
        return self.store.person(pid) is not None

    def __setitem__(self, pid: str, person: Person) -> None:
        if pid not in self._mem:
            if self.store is not None and pid not in self._gone and self.store.person(pid) is not None:
                pass  # a stored person replaced (a repair)
            elif self.store is not None:
                self._new.add(pid)
            self._gone.discard(pid)
        self._put(pid, person)

    def _put(self, pid: str, person: Person) -> None:
        self._mem[pid] = person
        self._mem.move_to_end(pid)

    def __delitem__(self, pid: str) -> None:
        had = self._mem.pop(pid, None) is not None
        if pid in self._new and pid in self._saving:
            # A checkpoint in flight writes it: it is new until that commits, and gone
            # from then until the next checkpoint removes it (counted by both: none).
            self._gone.add(pid)
        elif pid in self._new:
            self._new.discard(pid)
        elif self.store is not None and pid not in self._gone:
            self._gone.add(pid)
        elif not had:
            raise KeyError(pid)

    def pop(self, pid: str, *default: Any) -> Any:  # type: ignore[override]
        p = self.get(pid)
        if p is None:
            if default:
                return default[0]
            raise KeyError(pid)
        del self[pid]
        return p

    def __len__(self) -> int:
        if self.store is None:
            return len(self._mem)
        return self._stored + len(self._new) - len(self._gone)

    def __iter__(self) -> Iterator[str]:
        """Every person id: memory first, then the store's others (loaded as they are read)."""
        yield from list(self._mem)
        if self.store is None:
            return
        for pid, _ in self._stored_others():
            yield pid

    def values(self) -> Iterator[Person]:  # type: ignore[override]
        """Every person. The store's are read one at a time and stay in memory only if the
        caller changed them (they are then in `changed`, for the engine to pin)."""
        yield from list(self._mem.values())
        if self.store is None:
            return
        for pid, body in self._stored_others():
            p = _decoder.decode(body)
            self.loads += 1
            self.on_load(p)
            self._put(pid, p)
            yield p
            if pid in self._mem and self._mem[pid] is p and _encoder.encode(p) == body:
                del self._mem[pid]  # read, not changed: the store has it
            else:
                self.changed.add(pid)

    def items(self) -> Iterator[tuple[str, Person]]:  # type: ignore[override]
        for p in self.values():
            yield p.person_id, p

    def _stored_others(self) -> Iterator[tuple[str, bytes]]:
        assert self.store is not None
        seen = set(self._mem)
        after = ""
        while page := self.store.persons_after(after, 2000):
            for pid, body in page:
                if pid not in seen and pid not in self._gone and pid not in self._mem:
                    yield pid, body
            after = page[-1][0]

    # -- the cache -----------------------------------------------------------------------

    def cached(self) -> list[Person]:
        """The persons in memory (what a change to the definitions must prune now; the
        others are pruned by `on_load`)."""
        return list(self._mem.values())

    def in_memory(self) -> int:
        return len(self._mem)

    def _evict(self, tries: int) -> None:
        """Drop up to enough least recently used unchanged persons to get under the limit."""
        mem = self._mem
        pinned = self.pinned
        looked = 0
        while len(mem) > self.limit and looked < tries:
            pid = next(iter(mem))
            if pid in self._new or pid in self._saving or pinned(pid):
                mem.move_to_end(pid)
                looked += 1
                continue
            del mem[pid]

    def trim(self) -> int:
        """After a checkpoint: evict unchanged persons down to the limit. Returns how many."""
        if not self.limit or self.store is None:
            return 0
        before = len(self._mem)
        self._evict(len(self._mem))
        return before - len(self._mem)

    def saving(self, written: Sequence[str]) -> None:
        """A checkpoint took these persons: keep them in memory until it is committed."""
        self._saving.update(written)

    def aborted(self, written: Sequence[str]) -> None:
        self._saving.difference_update(written)
        for pid in written:
            if pid in self._new and pid in self._gone:  # deleted meanwhile: never stored
                self._new.discard(pid)
                self._gone.discard(pid)

    def committed(self, written: Sequence[str], removed: Sequence[str]) -> None:
        """A checkpoint holding `written` and `removed` is in the store."""
        self._saving.difference_update(written)
        for pid in written:
            if pid in self._new:
                self._new.discard(pid)
                self._stored += 1
        for pid in removed:
            if pid in self._gone:
                self._gone.discard(pid)
                self._stored -= 1


class KeyMap(MutableMapping[str, str]):
    """A string -> string map (identity index, aliases): cached, with the store behind it.

    `changes()` hands the runtime what changed since the last checkpoint (a value of None
    is a deletion); `committed()` says the store holds them.
    """

    def __init__(self, lookup: Callable[[str], str | None] | None = None,
                 scan: Callable[[], Iterator[tuple[str, str]]] | None = None, limit: int = 0) -> None:  # fmt: skip
        self._lookup = lookup
        self._scan = scan
        self.limit = limit
        self._mem: dict[str, str] = {}
        self._changed: set[str] = set()  # set or deleted since the last changes()
        self._pending: dict[str, str | None] = {}  # handed to a checkpoint, not yet committed
        self._gone: set[str] = set()  # deleted, not yet in the store

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        v = self._mem.get(key)
        if v is not None:
            return v
        if self._lookup is None or key in self._gone:
            return default
        v = self._lookup(key)
        if v is None:
            return default
        if self.limit and len(self._mem) >= self.limit:
            self._evict()
        self._mem[key] = v
        return v

    def __getitem__(self, key: str) -> str:
        v = self.get(key)
        if v is None:
            raise KeyError(key)
        return v

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __setitem__(self, key: str, value: str) -> None:
        self._mem[key] = value
        if self._lookup is not None:
            self._gone.discard(key)
            self._changed.add(key)

    def __delitem__(self, key: str) -> None:
        if self.get(key) is None:
            raise KeyError(key)
        self._mem.pop(key, None)
        if self._lookup is not None:
            self._changed.add(key)
            self._gone.add(key)

    def pop(self, key: str, *default: Any) -> Any:  # type: ignore[override]
        v = self.get(key)
        if v is None:
            if default:
                return default[0]
            raise KeyError(key)
        del self[key]
        return v

    def __iter__(self) -> Iterator[str]:
        for k, _ in self.items():
            yield k

    def items(self) -> Iterator[tuple[str, str]]:  # type: ignore[override]
        mem = dict(self._mem)
        yield from mem.items()
        if self._scan is not None:
            for k, v in self._scan():
                if k not in mem and k not in self._gone and k not in self._changed:
                    yield k, v

    def __len__(self) -> int:
        return sum(1 for _ in self.items())

    def changes(self) -> dict[str, str | None]:
        """What changed since the last call (None: deleted), kept pending until committed."""
        out = {k: self._mem.get(k) for k in self._changed}
        self._pending.update(out)
        self._changed.clear()
        return out

    def committed(self, changes: dict[str, str | None]) -> None:
        for k in changes:
            self._pending.pop(k, None)
            if k not in self._changed:
                self._gone.discard(k)

    def restore(self, changes: dict[str, str | None]) -> None:
        """A checkpoint failed: its changes go with the next one."""
        for k in changes:
            self._pending.pop(k, None)
        self._changed.update(changes)

    def _evict(self) -> None:
        """Drop the oldest half of the unchanged entries (re-read from the store on use)."""
        keep = self._changed | self._pending.keys()
        drop = [k for k in list(self._mem)[: len(self._mem) // 2] if k not in keep]
        for k in drop:
            del self._mem[k]

    def trim(self) -> None:
        if self.limit and self._lookup is not None and len(self._mem) > self.limit:
            self._evict()
