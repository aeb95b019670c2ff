"""messageId de-duplication over a window of days.

Exact (no hashing, so no false positives that would drop a real event). Ids are kept in
one set per UTC day and a whole day is dropped when it leaves the window, so memory is
about 100 bytes per message over the window; at scale the Redis adapter keeps them.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["DAY_MS", "Deduper"]

DAY_MS = 86_400_000


class Deduper:
    def __init__(self, days: int = 7) -> None:
        self.days = days
        self._by_day: dict[int, set[str]] = {}

    def seen(self, message_id: str) -> bool:
        return any(message_id in ids for ids in self._by_day.values())

    def add(self, message_ids: Iterable[str], now: int) -> None:
        day = now // DAY_MS
        ids = self._by_day.get(day)
        if ids is None:
            ids = self._by_day[day] = set()
            for old in [d for d in self._by_day if d <= day - self.days]:
                del self._by_day[old]
            self._sets = tuple(self._by_day[d] for d in sorted(self._by_day, reverse=True))
        ids.update(message_ids)

    def discard(self, message_ids: Iterable[str]) -> None:
        for ids in self._by_day.values():
            ids.difference_update(message_ids)

    def __len__(self) -> int:
        return sum(len(s) for s in self._by_day.values())
