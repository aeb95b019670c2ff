"""Datahub tables: the company's own data brought in, versioned, with nothing lost.

An import reads a source (a CSV/TSV file in UTF-8 or Shift_JIS, Parquet, JSON Lines,
Excel, a database table) into a new **version** of a table: `append` adds the rows to
the current version, `upsert` replaces the rows with the same key and adds the others,
`replace` starts over. Every version is kept until pruned, so an import can be rolled
back to exactly what was there. **No row vanishes**: a row that cannot be read (wrong
field count, a value that does not fit its column's type) is a `Reject` with its line,
column and reason, kept beside the version, and

    rows_imported + rows_rejected == rows in the source.

This module is the vocabulary and the checks; reading files is `sources/`, storing and
typing is the analytics adapter (`storage/duckdb_datahub.py`).
"""

from __future__ import annotations

import bisect
import codecs
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from .errors import FieldError, InvalidInput

__all__ = [
    "COLUMN_TYPES",
    "ENCODINGS",
    "FORMATS",
    "MODES",
    "ColumnType",
    "ImportOptions",
    "ImportResult",
    "LineMap",
    "Mode",
    "Reject",
    "column_names",
    "format_for",
    "nth_kept",
    "table_name",
]

ColumnType = Literal["text", "integer", "number", "boolean", "date", "timestamp"]
COLUMN_TYPES: tuple[str, ...] = get_args(ColumnType)
Mode = Literal["append", "upsert", "replace"]
MODES: tuple[str, ...] = get_args(Mode)
Format = Literal["csv", "tsv", "parquet", "jsonl", "excel"]
FORMATS: tuple[str, ...] = get_args(Format)
#: what `encoding` may name: `auto` looks (a BOM, else UTF-8 if the bytes are UTF-8, else
#: CP932, the superset of Shift_JIS that Japanese Windows, POS and CRM exports write)
ENCODINGS = ("auto", "utf-8", "utf-8-sig", "cp932", "shift_jis", "euc-jp", "utf-16")

_EXTENSIONS: dict[str, Format] = {
    ".csv": "csv", ".txt": "csv", ".tsv": "tsv", ".tab": "tsv", ".parquet": "parquet", ".pq": "parquet",
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
    ".xlsx": "excel", ".xlsm": "excel", ".xls": "excel", ".ods": "excel",
}  # fmt: skip

# lower-case ASCII so a table is named the same in every SQL dialect without quotes
_TABLE = re.compile(r"[a-z][a-z0-9_]{0,62}")
#: names the analytics store uses for itself
RESERVED_TABLES = frozenset({"events", "event_rows", "events_hot", "people", "identifiers", "memberships"})
#: how many rejects an import answers with (all are kept in its reject table)
REJECTS_SHOWN = 100


def table_name(name: str, field_name: str = "table") -> str:
    if not _TABLE.fullmatch(name):
        raise InvalidInput.for_field(
            field_name,
            f"{name!r} is not a table name: lower-case letters, digits and _, starting with a letter, at most 63",
        )
    if name in RESERVED_TABLES:
        raise InvalidInput.for_field(field_name, f"{name!r} is a name tsunagu uses itself; pick another")
    return name


def format_for(filename: str, given: str | None = None) -> Format:
    """The format named, else the one the file's extension says."""
    if given:
        if given not in FORMATS:
            raise InvalidInput.for_field("format", f"{given!r} is not one of {', '.join(FORMATS)}")
        return given  # type: ignore[return-value]
    dot = filename.rfind(".")
    ext = filename[dot:].lower() if dot >= 0 else ""
    if ext == ".gz":
        raise InvalidInput.for_field("file", "compressed files are not read yet: decompress it first")
    fmt = _EXTENSIONS.get(ext)
    if fmt is None:
        raise InvalidInput.for_field(
            "format", f"cannot tell the format of {filename!r} from its name: give format ({', '.join(FORMATS)})"
        )
    return fmt


@dataclass(frozen=True)
class ImportOptions:
    """How to read a source and what to do with its rows (checked by `checked`)."""

    mode: Mode = "append"
    key: tuple[str, ...] = ()  # upsert: the columns that say which rows are the same
    encoding: str = "auto"
    delimiter: str | None = None  # None: the first line says (, tab ; |)
    header: bool | None = None  # None: the first row says
    types: Mapping[str, ColumnType] = field(default_factory=dict)  # None for a column: inferred
    format: str | None = None
    sheet: str | None = None  # Excel: a sheet's name (default: the first)

    def checked(self) -> ImportOptions:
        errors: list[FieldError] = []
        if self.mode not in MODES:
            errors.append(FieldError("mode", f"{self.mode!r} is not one of {', '.join(MODES)}"))
        if self.mode == "upsert" and not self.key:
            errors.append(FieldError("key", "upsert needs the key column(s) that say which rows are the same"))
        if self.mode != "upsert" and self.key:
            errors.append(FieldError("key", f"a key is only used by upsert, not {self.mode}"))
        if len(set(self.key)) != len(self.key):
            errors.append(FieldError("key", "a column is named twice"))
        enc = self.encoding.lower().replace("_", "-")
        if enc in ("sjis", "shift-jis", "shift_jis", "windows-31j", "ms932", "x-sjis"):
            # what is labelled Shift_JIS is, from Windows, POS and CRM exports, CP932: the same
            # bytes plus NEC and IBM extensions (①, ㈱, 髙) that strict Shift_JIS refuses
            enc = "cp932"
        if enc not in ENCODINGS:
            try:
                codecs.lookup(enc)
            except LookupError:
                errors.append(FieldError("encoding", f"{self.encoding!r} is not an encoding: use auto, utf-8 or cp932"))
        if self.delimiter is not None and (len(self.delimiter) != 1 or self.delimiter in '"\r\n'):
            errors.append(FieldError("delimiter", "must be one character, not a quote or a line break"))
        for col, typ in self.types.items():
            if typ not in COLUMN_TYPES:
                errors.append(FieldError(f"types.{col}", f"{typ!r} is not one of {', '.join(COLUMN_TYPES)}"))
        if errors:
            raise InvalidInput.for_fields(errors)
        return ImportOptions(
            self.mode, self.key, enc, self.delimiter, self.header, dict(self.types), self.format, self.sheet
        )


@dataclass(frozen=True)
class Reject:
    """A row of the source that is not in the table, and why: `line` is where it starts in
    the file (1-based, as an editor shows it; a spreadsheet's row number), `column` the
    field that did not fit (None when the whole row is wrong), `text` what was there."""

    line: int
    column: str | None
    reason: str
    text: str

    def to_json(self) -> dict[str, Any]:
        return {"line": self.line, "column": self.column, "reason": self.reason, "text": self.text}


@dataclass
class ImportResult:
    table: str
    version: int
    mode: str
    rows_in_source: int
    rows_imported: int  # rows of the source now in the table
    rows_rejected: int
    rejects: list[Reject]  # the first REJECTS_SHOWN, in line order
    columns: list[tuple[str, str]]  # (name, type) of the new version
    rows_total: int  # rows in the new version
    encoding: str | None = None  # what a text source was read as
    format: str = "csv"
    source: str = ""
    #: columns read as text because a few values did not fit the type most did:
    #: {"column", "type", "fits", "values"} (name the type to reject those instead)
    hints: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "table": self.table, "version": self.version, "mode": self.mode, "format": self.format,
            "source": self.source, "encoding": self.encoding, "rows_in_source": self.rows_in_source,
            "rows_imported": self.rows_imported, "rows_rejected": self.rows_rejected,
            "rows_total": self.rows_total, "columns": [{"name": n, "type": t} for n, t in self.columns],
            "rejects": [r.to_json() for r in self.rejects], "hints": self.hints,
        }  # fmt: skip


def column_names(raw: Sequence[str | None]) -> list[str]:
    """Header cells as column names: as written (Japanese too), trimmed; an empty one is
    `columnN` (its position); a repeated one gets `_2`, `_3`."""
    out: list[str] = []
    seen: set[str] = set()
    for i, cell in enumerate(raw, 1):
        name = (cell or "").strip().lstrip("\ufeff") or f"column{i}"
        base, n = name, 1
        while name.lower() in seen:  # SQL names are case-blind
            n += 1
            name = f"{base}_{n}"
        seen.add(name.lower())
        out.append(name)
    return out


class LineMap:
    """Record numbers to the lines they start on, for a file whose quoted fields may hold
    line breaks: `embedded` are the line numbers whose line break is inside quotes (the
    next line continues the same record), in order."""

    def __init__(self, embedded: Iterable[int] = ()) -> None:
        self.embedded = sorted(embedded)

    def line(self, record: int) -> int:
        """The line record `record` (1-based, the header being record 1) starts on."""
        # start(k) = k + (embedded breaks before it); start(k) grows faster than the count,
        # so walk: each embedded break below the current guess pushes it one further
        line, seen = record, 0
        while True:
            n = bisect.bisect_left(self.embedded, line)
            if n == seen:
                return line
            line, seen = record + n, n

    def lines(self, records: Iterable[int]) -> list[int]:
        return [self.line(r) for r in records]


def nth_kept(row: int, skipped: Sequence[int]) -> int:
    """The number of the `row`-th (0-based) record not in `skipped` (sorted, 1-based):
    where a row that was read lies among the records, given those that were not (the
    header, blank lines, rows of the wrong shape)."""
    at = row + 1
    while True:  # the least fixed point of at = row + 1 + |skipped <= at|, from below
        n = bisect.bisect_right(skipped, at)
        if at == row + 1 + n:
            return at
        at = row + 1 + n
