"""A Datahub store on a real DuckDB file, and a helper that imports a file as the API does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tsunagu.core.datahub import ImportOptions, ImportResult
from tsunagu.datahub import import_file
from tsunagu.storage.duckdb_datahub import DuckDBDatahub

NOW = 1_790_000_000_000


class Hub:
    def __init__(self, path: Path) -> None:
        self.dir = path.parent
        self.con = duckdb.connect(str(path))
        self.store = DuckDBDatahub(self.con.cursor, timezone="Asia/Tokyo")
        self.now = NOW

    def load(self, table: str, name: str, data: bytes, **options: Any) -> ImportResult:
        path = self.dir / name
        path.write_bytes(data)
        self.now += 1000
        return import_file(self.store, table, path, ImportOptions(**options), self.now, workdir=self.dir)

    def rows(self, table: str, order: str = "") -> list[tuple[Any, ...]]:
        return self.con.execute(f"SELECT * FROM datahub.{table} {order}").fetchall()


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = Hub(tmp_path / "analytics.duckdb")
    yield h
    h.con.close()
