"""Datahub imports: a file or a database query into a new version of a table.

The runtime around `core.ports.Datahub`: it picks the reader a source needs
(`sources/`), hands the rows to the workspace's Datahub store and cleans up after. The
API (`api/datahub.py`) and the CLI (`tsunagu import`) call these; so will jobs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .core.datahub import ImportOptions, ImportResult, format_for, table_name
from .core.errors import InvalidInput
from .core.ports import Datahub

__all__ = ["import_database", "import_file"]

Progress = Callable[[int, int], None]


def import_file(
    hub: Datahub,
    table: str,
    path: Path,
    options: ImportOptions,
    now: int,
    *,
    filename: str | None = None,
    workdir: Path,
    progress: Progress | None = None,
) -> ImportResult:
    """Import the file at `path` (named `filename` by whoever sent it) into `table`."""
    table_name(table)
    options = options.checked()
    name = filename or path.name
    fmt = format_for(name, options.format)
    if fmt in ("csv", "tsv"):
        from .sources.delimited import stage

        delimiter = options.delimiter or ("\t" if fmt == "tsv" else None)
        staged = stage(path, workdir, encoding=options.encoding, delimiter=delimiter, header=options.header,
                       progress=progress)  # fmt: skip
        try:
            return hub.import_delimited(table, staged, options, now, source=name)
        finally:
            if staged.temporary:
                with contextlib.suppress(OSError):
                    staged.path.unlink()
    if fmt == "parquet":
        return hub.import_parquet(table, path, options, now, source=name)
    if fmt == "jsonl":
        return hub.import_jsonl(table, path, options, now, source=name)
    try:
        from .sources.excel import read_excel
    except ImportError:  # pragma: no cover - python-calamine is a dependency
        raise InvalidInput.for_field("format", "Excel files need python-calamine installed") from None
    reader = read_excel(path, sheet=options.sheet, header=options.header)
    return hub.import_arrow(table, reader, options, now, fmt="excel", source=name)


def import_database(
    hub: Datahub, table: str, url: str, options: ImportOptions, now: int, *,
    source_table: str | None = None, query: str | None = None,
) -> ImportResult:  # fmt: skip
    """A table or a query's result from PostgreSQL or MySQL/MariaDB, read read-only."""
    table_name(table)
    options = options.checked()
    from .sources.database import masked_url, read_database

    reader = read_database(url, table=source_table, query=query)
    shown: Any = source_table or "query"
    return hub.import_arrow(table, reader, options, now, fmt="database", source=f"{masked_url(url)} {shown}")
