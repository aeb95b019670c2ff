"""An exact "not stored" for the person store: Bloom filters over the keys it holds.

    person(id) / key(k) ─▶ filter ── absent ──▶ None, no read
                                 └── maybe ───▶ SQLite point read (a false positive finds nothing)

Most lookups of an import are for keys no store has seen: a new user id, a new anonymous
id, the id of the person about to be created. Each was a SQLite point read that missed.
The filter answers those without the read and never answers "absent" for a stored key,
so a result never changes; a false positive (1 % a filter) costs the read it replaced.

The design is storage.sqlite_dedupe's: mmap-backed filter files (pybloomfiltermmap3), a
chain whose last filter grows (a full one is followed by one of twice its capacity; a
lookup asks each). Keys are only ever added. A key the store deletes (a forget, a merge
that removes the loser, an identifier moved) stays in the filter as a false positive:
answered by the read, as before. A rebuild sheds them.

`filters.json` says what the files hold: every key of the store named `token` (a value
in the store's meta, new at every rebuild, so the files of another store, or of this
one before a `clear`, are never taken for its own) as of its `applied_seq` `seq`. The
store adds a checkpoint's keys and syncs the files before it commits, and records the
seq after; files that do not open, are of another token or are behind the store's seq
(written without them: an older version, a restored copy of the database) are rebuilt.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pybloomfilter

__all__ = ["KeyFilter"]

_META = "filters.json"
MIN_CAPACITY = 1 << 16  # keys in a new store's first filter (80 KB at 1 %)


class KeyFilter:
    """A set of strings that answers "absent" only for strings never added."""

    def __init__(self, directory: Path, error_rate: float = 0.01) -> None:
        self.directory = directory
        self.error_rate = error_rate
        self.token = ""
        self._filters: list[pybloomfilter.BloomFilter] = []
        self._count = 0  # keys added to the last filter
        self._capacity = 0  # what the last filter was sized for

    def __contains__(self, key: str) -> bool:
        """False only if `key` was never added. Before `open` or `reset`: always True."""
        filters = self._filters
        if not filters:
            return True
        for f in filters:  # noqa: SIM110 - any() over a generator costs more than the lookup
            if key in f:
                return True
        return False

    def add(self, key: str) -> None:
        for f in self._filters:
            if key in f:
                # Already answered "maybe" (added, or a false positive): bits are never
                # cleared, so it stays "maybe" without taking room in the last filter.
                return
        if self._count >= self._capacity:
            self._new(self._capacity * 2)
        self._filters[-1].add(key)
        self._count += 1

    def update(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.add(key)

    # -- the files -------------------------------------------------------------------------

    def open(self, token: str, seq: int) -> bool:
        """Open the files if they hold every key of the store `token` as of `seq`."""
        meta = self._read_meta()
        if meta is None or meta.get("token") != token or meta.get("error_rate") != self.error_rate:
            return False
        if not isinstance(meta.get("seq"), int) or meta["seq"] < seq:
            return False
        paths: list[Path] = []
        while (path := self.directory / f"{token}.{len(paths)}.bloom").exists():
            paths.append(path)
        # A file missing is keys missing; one more (grown during a checkpoint that did not
        # record its seq) holds only keys added since.
        if not isinstance(meta.get("filters"), int) or not 0 < meta["filters"] <= len(paths):
            return False
        filters = []
        try:
            for path in paths:
                filters.append(pybloomfilter.BloomFilter.open(str(path), "rw"))
        except (OSError, ValueError):
            for f in filters:
                f.close()
            return False
        self.close()
        self.token, self._filters = token, filters
        self._capacity = filters[-1].capacity
        self._count = min(filters[-1].approx_len, self._capacity)  # an estimate from the bits
        return True

    def reset(self, token: str, capacity: int) -> None:
        """Empty, for the store `token`, sized for `capacity` keys: the old files go."""
        self.close()
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / _META).unlink(missing_ok=True)  # first: no file set is described
        for path in self.directory.glob("*.bloom"):
            path.unlink()
        self.token = token
        self._new(max(MIN_CAPACITY, capacity))

    def sync(self) -> None:
        """Write the filters' pages to disk (before the store commits what they cover).

        `BloomFilter.sync` only schedules the write (7 µs for 72 MB of dirty pages here),
        so each file is fsync'd too: that writes the pages the mapping dirtied (40-60 ms
        for a 72 MB filter, on the checkpoint's thread, without the GIL).
        """
        for f in list(self._filters):
            f.sync()
            fd = os.open(f.filename, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def covers(self, seq: int) -> None:
        """Record that the synced files hold every key of the store as of `seq`."""
        tmp = self.directory / f"{_META}.{os.getpid()}.{id(self):x}.tmp"  # a writer's own: never renamed twice
        with open(tmp, "w") as out:
            meta = {"token": self.token, "seq": seq, "error_rate": self.error_rate, "filters": len(self._filters)}
            json.dump(meta, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.directory / _META)

    def close(self) -> None:
        for f in self._filters:
            f.close()
        self._filters = []

    def stats(self) -> dict[str, int]:
        return {
            "filters": len(self._filters),
            "filter_bytes": sum(f.num_bits // 8 for f in self._filters),
            "keys": sum(f.capacity for f in self._filters[:-1]) + self._count,
        }

    def _new(self, capacity: int) -> None:
        path = self.directory / f"{self.token}.{len(self._filters)}.bloom"
        self._filters.append(pybloomfilter.BloomFilter(capacity, self.error_rate, str(path)))
        self._count, self._capacity = 0, capacity

    def _read_meta(self) -> dict[str, Any] | None:
        try:
            meta = json.loads((self.directory / _META).read_text())
        except (OSError, ValueError):
            return None
        return meta if isinstance(meta, dict) else None
