"""Column names every source shares: `__line` first, then the source's names made unique."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["LINE", "unique_names"]

LINE = "__line"


def unique_names(names: Iterable[str]) -> list[str]:
    """The names in order, a repeat suffixed `_2`, `_3`, … (`__line` is taken already).

    Arrow allows two fields of one name, but the importer, DuckDB and a person reading a
    reject report cannot tell them apart.
    """
    seen = {LINE}
    out: list[str] = []
    for name in names:
        unique, n = name, 2
        while unique in seen:
            unique, n = f"{name}_{n}", n + 1
        seen.add(unique)
        out.append(unique)
    return out
