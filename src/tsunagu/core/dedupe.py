"""messageId de-duplication over a window, all in memory: the reference answer.

Exact (no hashing, so no false positive that would drop a real event). Every id is held
with the time it was added, about 100 bytes an id, so this is for tests and small
workspaces: the pipeline uses the bounded adapter in `storage/sqlite_dedupe.py`, which
must answer exactly like this (tests/contract/test_deduper.py checks it).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

__all__ = ["MemoryDeduper"]


class MemoryDeduper:
    """The `core.ports.Deduper` contract as a dict: id -> when it was added."""

    def __init__(self, window_ms: int) -> None:
        self.window_ms = window_ms
        self.now = 0
        # insertion order is time order; an OrderedDict pops its oldest key in O(1)
        self._added: OrderedDict[str, int] = OrderedDict()

    def open(self, now: int) -> None:
        self.advance(now)

    def advance(self, now: int) -> None:
        if now <= self.now:
            return
        self.now = now
        cutoff = now - self.window_ms
        added = self._added
        while added:
            mid, at = added.popitem(last=False)
            if at >= cutoff:
                added[mid] = at
                added.move_to_end(mid, last=False)
                break

    def seen(self, message_id: str) -> bool:
        at = self._added.get(message_id)
        return at is not None and at >= self.now - self.window_ms

    def add(self, message_ids: Iterable[str], now: int) -> None:
        self.advance(now)
        at = self.now  # a clock that went back does not reorder the window
        for mid in message_ids:
            self._added[mid] = at
            self._added.move_to_end(mid)

    def discard(self, message_ids: Iterable[str]) -> None:
        for mid in message_ids:
            self._added.pop(mid, None)

    def checkpoint(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __len__(self) -> int:
        return len(self._added)
