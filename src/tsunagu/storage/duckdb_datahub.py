"""Datahub tables in the analytics DuckDB file: versions, types, rejects (core/datahub.py).

Layout, in the workspace's analytics.duckdb (so SQL joins them with events and people):

    datahub_tables      name, current version
    datahub_versions    one row an import (or rollback): mode, source, counts, columns
    datahub."NAME"      a view of the current version: what queries read
    datahub."NAME@V"    version V's rows (kept for the last KEEP_VERSIONS versions)
    datahub."NAME@V!rejects"  its rejects: line, column, reason, text

An import stages the source's rows as text (or as the types a typed source has), infers
each column's type from every value, converts, and writes the new version in one
transaction; the view moves to it only when all is written, so readers see the old
version or the new one, never half. Values are read the way Japanese business files
write them: full-width digits and signs, `1,234`, `¥1,234`, `1,234円`, `2024/5/1 8:26`,
`2024年5月1日`, `令和6年5月1日` (and 元年), ISO 8601 with an offset (turned into the
workspace's local time); an integer with leading zeros (`000123`, a member id) is text.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import json
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from ..core.datahub import (
    REJECTS_SHOWN,
    ColumnType,
    ImportOptions,
    ImportResult,
    LineMap,
    Reject,
    nth_kept,
    table_name,
)
from ..core.errors import Conflict, FieldError, InvalidInput, NotFound

__all__ = ["KEEP_VERSIONS", "DuckDBDatahub"]

KEEP_VERSIONS = 10  # versions whose rows are kept for a rollback; older ones keep their record

_SCHEMA = """
CREATE SCHEMA IF NOT EXISTS datahub;
CREATE TABLE IF NOT EXISTS datahub_tables (
    name VARCHAR PRIMARY KEY, current INTEGER NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS datahub_versions (
    name VARCHAR NOT NULL, version INTEGER NOT NULL, made_at BIGINT NOT NULL, mode VARCHAR NOT NULL,
    format VARCHAR, source VARCHAR, encoding VARCHAR, key VARCHAR, columns VARCHAR NOT NULL,
    rows_in_source BIGINT, rows_imported BIGINT, rows_rejected BIGINT, rows_total BIGINT NOT NULL,
    restored_from INTEGER, pruned BOOLEAN NOT NULL DEFAULT false, PRIMARY KEY (name, version)
);
"""

SQL_TYPES: dict[str, str] = {
    "text": "VARCHAR", "integer": "BIGINT", "number": "DOUBLE", "boolean": "BOOLEAN", "date": "DATE",
    "timestamp": "TIMESTAMP",
}  # fmt: skip
_INFER_ORDER: tuple[ColumnType, ...] = ("integer", "number", "boolean", "date", "timestamp")
_NOUN = {"integer": "an integer", "number": "a number", "boolean": "true or false", "date": "a date",
         "timestamp": "a date and time"}  # fmt: skip

_FULL = "０１２３４５６７８９＋－ー−．，／：　"
_HALF = "0123456789+---.,/: "
_ERAS = {"令和": 2018, "平成": 1988, "昭和": 1925, "大正": 1911, "明治": 1867}
_DATES = ["%Y/%m/%d", "%Y-%m-%d", "%Y年%m月%d日", "%Y.%m.%d"]
_TIMES = [" %H:%M", " %H:%M:%S", " %H:%M:%S.%f", "T%H:%M", "T%H:%M:%S", "T%H:%M:%S.%f", " %H時%M分", " %H時%M分%S秒"]
_INT_RE = r"[+-]?([0-9]{1,3}(,[0-9]{3})+|[0-9]+)"
_NUM_RE = r"[+-]?(([0-9]{1,3}(,[0-9]{3})+|[0-9]+)(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?"
#: what a date or a time can start like (a superset: the parsers decide)
_DATELIKE = "^(明治|大正|昭和|平成|令和|[0-9])[0-9元年月日/.: T+Z時分秒-]*$"
_TRUE = ("true", "t", "yes", "y", "はい", "○", "有")
_FALSE = ("false", "f", "no", "n", "いいえ", "×", "無")


# json_type() of text that is not JSON raises, and SQL does not short-circuit AND
_OBJECT = "coalesce(CASE WHEN json_valid(j) THEN json_type(j) = 'OBJECT' END, false)"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _list(items: Sequence[str]) -> str:
    return "[" + ", ".join(_lit(i) for i in items) + "]"


def _norm(v: str) -> str:
    # translate() costs 8x a regex match in DuckDB: only where a full-width character is
    wide = f"translate({v}, {_lit(_FULL)}, {_lit(_HALF)})"
    return f"trim(CASE WHEN regexp_matches({v}, '[{_FULL}]') THEN {wide} ELSE {v} END)"


def _money(v: str, normalized: bool = False) -> str:
    n = v if normalized else _norm(v)
    return f"regexp_replace({n}, '^[¥￥$]\\s*|\\s*円$', '', 'g')"


def _gregorian(v: str) -> str:
    """An era year (令和6年…, 平成元年…) written as its Gregorian year."""
    n = _norm(v)
    era = f"regexp_extract({n}, '^(明治|大正|昭和|平成|令和)\\s*(元|[0-9]{{1,2}})年', 1)"
    num = f"regexp_extract({n}, '^(明治|大正|昭和|平成|令和)\\s*(元|[0-9]{{1,2}})年', 2)"
    base = "CASE " + " ".join(f"WHEN {era} = {_lit(k)} THEN {y}" for k, y in _ERAS.items()) + " END"
    year = f"({base} + CASE WHEN {num} = '元' THEN 1 ELSE TRY_CAST({num} AS INTEGER) END)"
    rest = f"regexp_replace({n}, '^(明治|大正|昭和|平成|令和)\\s*(元|[0-9]{{1,2}})年', '')"
    return f"CASE WHEN {era} <> '' THEN CAST({year} AS VARCHAR) || '年' || {rest} ELSE {n} END"


def convert(v: str, typ: str, zone: str) -> str:
    """SQL turning the text `v` into `typ`, NULL where it does not fit (or is empty)."""
    if typ == "text":
        return v
    if typ == "integer":
        m = _money(v)
        return f"CASE WHEN regexp_full_match({m}, '{_INT_RE}') THEN TRY_CAST(replace({m}, ',', '') AS BIGINT) END"
    if typ == "number":
        m = _money(v)
        return f"CASE WHEN regexp_full_match({m}, '{_NUM_RE}') THEN TRY_CAST(replace({m}, ',', '') AS DOUBLE) END"
    if typ == "boolean":
        n = f"lower({_norm(v)})"
        return f"CASE WHEN {n} IN ({', '.join(map(_lit, (*_TRUE, '1')))}) THEN true WHEN {n} IN ({', '.join(map(_lit, (*_FALSE, '0')))}) THEN false END"  # noqa: E501
    g = _gregorian(v)
    if typ == "date":
        return f"CAST(try_strptime({g}, {_list([*_DATES, '%Y%m%d'])}) AS DATE)"
    if typ == "timestamp":
        formats = [d + t for d in _DATES for t in ("", *_TIMES)]
        offset = f"regexp_matches({g}, '[0-9](Z|[+-][0-9]{{2}}:?[0-9]{{2}})$')"
        return (
            f"CASE WHEN {offset} THEN timezone({_lit(zone)}, TRY_CAST({g} AS TIMESTAMPTZ)) "
            f"ELSE try_strptime({g}, {_list(formats)}) END"
        )
    raise ValueError(typ)


def _column_type(duck: str) -> ColumnType:
    d = duck.upper()
    if d in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "HUGEINT"):
        return "integer"
    if d in ("FLOAT", "DOUBLE", "REAL") or d.startswith("DECIMAL"):
        return "number"
    if d == "BOOLEAN":
        return "boolean"
    if d == "DATE":
        return "date"
    if d.startswith("TIMESTAMP"):
        return "timestamp"
    return "text"


Progress = Callable[[str, int, int], None]  # (stage, done, total)
_F = TypeVar("_F", bound=Callable[..., Any])


def _held(method: _F) -> _F:
    @functools.wraps(method)
    def held(self: DuckDBDatahub, *args: Any, **kwargs: Any) -> Any:
        with self._hold():
            return method(self, *args, **kwargs)

    return held  # type: ignore[return-value]


class DuckDBDatahub:
    """The Datahub tables of one workspace, in its analytics file (`cursor()` gives a
    cursor of that database; one import at a time, reads meanwhile)."""

    def __init__(
        self,
        cursor: Callable[[], duckdb.DuckDBPyConnection],
        *,
        hold: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext,
        timezone: str = "UTC",
    ) -> None:
        self._cursor = cursor
        self._hold = hold  # the store's "a read is running" (closing waits for it)
        self.timezone = timezone
        self._lock = threading.Lock()  # one import or rollback at a time
        self._hints: list[dict[str, Any]] = []  # the import's: columns left text by a few values
        cur = cursor()
        try:
            cur.execute(_SCHEMA)
            # an import cut short (a crash) leaves its staging table; its version was never committed
            for (stale,) in cur.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'datahub'"
                " AND regexp_matches(table_name, '^_(stage|jsonl|arrow)_')"
            ).fetchall():
                cur.execute(f"DROP TABLE IF EXISTS datahub.{_q(stale)}")
        finally:
            cur.close()

    # -- reading -------------------------------------------------------------------------

    @_held
    def tables(self) -> list[dict[str, Any]]:
        cur = self._cursor()
        try:
            rows = cur.execute(
                "SELECT t.name, t.current, t.created_at, t.updated_at, v.columns, v.rows_total,"
                " (SELECT count(*) FROM datahub_versions w WHERE w.name = t.name)"
                " FROM datahub_tables t JOIN datahub_versions v ON v.name = t.name AND v.version = t.current"
                " ORDER BY t.name"
            ).fetchall()
        finally:
            cur.close()
        return [
            {"name": n, "version": cur_v, "created_at": c, "updated_at": u, "columns": json.loads(cols),
             "rows": total, "versions": nv}
            for n, cur_v, c, u, cols, total, nv in rows
        ]  # fmt: skip

    def table(self, name: str) -> dict[str, Any]:
        for t in self.tables():
            if t["name"] == name:
                return t
        raise NotFound.for_field("table", f"no Datahub table {name!r}")

    @_held
    def versions(self, name: str) -> list[dict[str, Any]]:
        self.table(name)
        cur = self._cursor()
        try:
            cur.execute(
                "SELECT v.*, v.version = t.current AS current FROM datahub_versions v"
                " JOIN datahub_tables t USING (name) WHERE name = ? ORDER BY version DESC",
                [name],
            )
            names = [d[0] for d in cur.description or ()]
            out = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        finally:
            cur.close()
        for v in out:
            v["columns"] = json.loads(v["columns"])
            v["key"] = json.loads(v["key"]) if v["key"] else []
        return out

    @_held
    def rows(self, name: str, *, version: int | None = None, limit: int = 20, offset: int = 0) -> dict[str, Any]:
        t = self.table(name)
        v = version or t["version"]
        rel = self._data(name, v)
        cur = self._cursor()
        try:
            cur.execute(f"SELECT * FROM {rel} LIMIT ? OFFSET ?", [limit, offset])
            cols = [d[0] for d in cur.description or ()]
            rows = cur.fetchall()
        finally:
            cur.close()
        return {"table": name, "version": v, "columns": cols, "rows": [list(r) for r in rows]}

    @_held
    def rejects(self, name: str, version: int | None = None, *, limit: int = 100, offset: int = 0) -> list[Reject]:
        t = self.table(name)
        v = version or t["version"]
        self._data(name, v)
        cur = self._cursor()
        try:
            rows = cur.execute(
                f"SELECT line, col, reason, text FROM datahub.{_q(f'{name}@{v}!rejects')}"
                " ORDER BY line LIMIT ? OFFSET ?",
                [limit, offset],
            ).fetchall()
        except duckdb.CatalogException:
            return []
        finally:
            cur.close()
        return [Reject(*r) for r in rows]

    def _data(self, name: str, version: int) -> str:
        cur = self._cursor()
        try:
            row = cur.execute(
                "SELECT pruned FROM datahub_versions WHERE name = ? AND version = ?", [name, version]
            ).fetchone()
        finally:
            cur.close()
        if row is None:
            raise NotFound.for_field("version", f"{name} has no version {version}")
        if row[0]:
            raise NotFound.for_field(
                "version", f"{name} version {version} was pruned (the last {KEEP_VERSIONS} are kept)"
            )
        return f"datahub.{_q(f'{name}@{version}')}"

    # -- changing ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor in a transaction: committed on leaving, rolled back on an error."""
        cur = self._cursor()
        try:
            cur.execute("BEGIN")
            try:
                yield cur
                cur.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(duckdb.Error):
                    cur.execute("ROLLBACK")
                raise
        finally:
            cur.close()

    @staticmethod
    def _drop_version(cur: duckdb.DuckDBPyConnection, name: str, version: int) -> None:
        cur.execute(f"DROP TABLE IF EXISTS datahub.{_q(f'{name}@{version}')}")
        cur.execute(f"DROP TABLE IF EXISTS datahub.{_q(f'{name}@{version}!rejects')}")

    @_held
    def rollback(self, name: str, version: int, now: int) -> dict[str, Any]:
        """Make `version` current again, exactly as it was (a new version records the move)."""
        table_name(name)
        with self._lock:
            t = self.table(name)
            src = self._data(name, version)
            if version == t["version"]:
                raise Conflict.for_field("version", f"version {version} is already the current one")
            new = self._next_version(name)
            old = next(v for v in self.versions(name) if v["version"] == version)
            with self._transaction() as cur:
                cur.execute(f"CREATE TABLE datahub.{_q(f'{name}@{new}')} AS SELECT * FROM {src}")
                self._record(cur, name, new, now, "rollback", old["format"], old["source"], old["encoding"],
                             old["key"], [(c["name"], c["type"]) for c in old["columns"]], None, None, None,
                             old["rows_total"], restored_from=version)  # fmt: skip
            self._prune(name)
        return self.table(name)

    @_held
    def drop(self, name: str) -> None:
        with self._lock:
            self.table(name)
            with self._transaction() as cur:
                kept = cur.execute(
                    "SELECT version FROM datahub_versions WHERE name = ? AND NOT pruned", [name]
                ).fetchall()
                cur.execute(f"DROP VIEW IF EXISTS datahub.{_q(name)}")
                for (v,) in kept:
                    self._drop_version(cur, name, v)
                cur.execute("DELETE FROM datahub_versions WHERE name = ?", [name])
                cur.execute("DELETE FROM datahub_tables WHERE name = ?", [name])

    @_held
    def import_delimited(
        self, name: str, staged: Any, options: ImportOptions, now: int, *, source: str = "",
        progress: Progress | None = None,
    ) -> ImportResult:  # fmt: skip
        """A CSV/TSV file staged by `sources.delimited.stage` (a `Staged`)."""
        cols = staged.columns
        columns = "{" + ", ".join(f"{_lit(c)}: 'VARCHAR'" for c in cols) + "}"
        rj = f"rj_{uuid.uuid4().hex[:12]}"
        read = (
            f"read_csv({_lit(str(staged.path))}, auto_detect=false, header={str(staged.header).lower()},"
            f" delim={_lit(staged.delimiter)}, quote='\"', escape='\"', columns={columns},"
            f" strict_mode=true, store_rejects=true, rejects_table={_lit(rj)}, rejects_scan={_lit(rj + '_scan')},"
            f" max_line_size=8388608)"
        )

        def bad_shape(cur: duckdb.DuckDBPyConnection) -> list[tuple[int, str | None, str, str]]:
            rows = cur.execute(
                f"SELECT line, min(column_idx), any_value(error_type), any_value(error_message), any_value(csv_line)"
                f" FROM {rj} GROUP BY line ORDER BY line"
            ).fetchall()
            out = []
            for line, _col, kind, message, text in rows:
                reason = message if kind not in ("MISSING COLUMNS", "TOO MANY COLUMNS") else (
                    f"{len(cols)} fields expected, " + message.split("Found:")[-1].strip() + " found"
                    if "Found:" in message else message)  # fmt: skip
                out.append((int(line), None, reason, (text or "").strip("\r\n")))
            for t in (rj, rj + "_scan"):
                cur.execute(f"DROP TABLE IF EXISTS {t}")
            return out

        # DuckDB skips blank lines, except in a file of one column, where one is an empty value
        blank = staged.blank_lines if len(cols) > 1 else []
        skipped_base = sorted({*([1] if staged.header else []), *self._dlines(staged, blank)})

        def line_of(rowids: list[int], shape: list[int]) -> list[int]:
            skipped = sorted({*skipped_base, *shape})
            return [staged.lines.line(nth_kept(r, skipped)) for r in rowids]

        return self._import(
            name, read, cols, options, now, fmt="csv", source=source, encoding=staged.encoding,
            rows_in_source=staged.rows + len(staged.blank_lines) - len(blank), shape_rejects=bad_shape, line_of=line_of,
            shape_lines=staged.lines, replaced=staged.replaced > 0, progress=progress,
        )  # fmt: skip

    @staticmethod
    def _dlines(staged: Any, physical: list[int]) -> list[int]:
        """Physical line numbers as DuckDB numbers records (a record spanning lines is one)."""
        emb = staged.lines.embedded
        return [p - bisect.bisect_left(emb, p) for p in physical]

    @_held
    def import_parquet(
        self, name: str, path: Path, options: ImportOptions, now: int, *, source: str = ""
    ) -> ImportResult:
        cur = self._cursor()
        try:
            desc = cur.execute(f"DESCRIBE SELECT * FROM read_parquet({_lit(str(path))})").fetchall()
        except duckdb.Error as e:
            raise InvalidInput.for_field("file", f"not a Parquet file DuckDB can read: {_short(e)}") from None
        finally:
            cur.close()
        cols = [d[0] for d in desc]
        typed = {d[0]: _column_type(d[1]) for d in desc}
        return self._import(
            name, f"read_parquet({_lit(str(path))})", cols, options, now, fmt="parquet", source=source,
            typed=typed, raw_types={d[0]: d[1] for d in desc},
        )  # fmt: skip

    @_held
    def import_jsonl(
        self, name: str, path: Path, options: ImportOptions, now: int, *, source: str = ""
    ) -> ImportResult:
        """JSON Lines: an object a line; nested values stay JSON text; a line that is not an
        object is a reject with its line number."""
        stage = f"datahub.{_q('_jsonl_' + uuid.uuid4().hex[:12])}"
        cur = self._cursor()
        try:
            # each line as one text value: a delimiter and quote no JSON text holds unescaped
            cur.execute(
                f"CREATE TABLE {stage} AS SELECT * FROM read_csv({_lit(str(path))}, auto_detect=false, header=false,"
                " delim='\x01', quote='', escape='', columns={'j': 'VARCHAR'}, strict_mode=false,"
                " null_padding=true, max_line_size=8388608)"
            )
            keys = [r[0] for r in cur.execute(
                f"SELECT k FROM (SELECT unnest(ks) AS k, unnest(generate_series(1, len(ks))) AS i, r FROM"
                f" (SELECT json_keys(CASE WHEN {_OBJECT} THEN j END) AS ks, rowid AS r FROM {stage}))"
                " GROUP BY k ORDER BY min(r * 100000 + i)"  # the order they first appear in
            ).fetchall()]  # fmt: skip
        except duckdb.Error as e:
            cur.execute(f"DROP TABLE IF EXISTS {stage}")
            raise InvalidInput.for_field("file", f"cannot read it as JSON Lines: {_short(e)}") from None
        finally:
            cur.close()
        if not keys:
            self._drop_quiet(stage)
            raise InvalidInput.for_field("file", "no line is a JSON object")
        sel = ", ".join(f"json_extract_string(j, {_lit('$.' + json.dumps(k))}) AS {_q(k)}" for k in keys)
        read = f"(SELECT {sel}, rowid + 1 AS __line FROM {stage} WHERE {_OBJECT})"

        def bad_shape(cur: duckdb.DuckDBPyConnection) -> list[tuple[int, str | None, str, str]]:
            rows = cur.execute(
                f"SELECT rowid + 1, j FROM {stage} WHERE j IS NOT NULL AND trim(j) <> ''"
                f" AND NOT {_OBJECT} ORDER BY rowid"
            ).fetchall()
            return [(int(n), None, "not a JSON object", (t or "")[:500]) for n, t in rows]

        blank = self._scalar(f"SELECT count(*) FROM {stage} WHERE j IS NULL OR trim(j) = ''")
        total = self._scalar(f"SELECT count(*) FROM {stage}") - blank
        try:
            return self._import(
                name, read, keys, options, now, fmt="jsonl", source=source, rows_in_source=total,
                shape_rejects=bad_shape, line_column="__line",
            )  # fmt: skip
        finally:
            self._drop_quiet(stage)

    @_held
    def import_arrow(
        self, name: str, reader: Any, options: ImportOptions, now: int, *, fmt: str, source: str = ""
    ) -> ImportResult:
        """Arrow record batches (sources/excel.py, sources/database.py): a `__line` column
        says where each row is in the source; string columns are typed like CSV text."""
        stage = f"datahub.{_q('_arrow_' + uuid.uuid4().hex[:12])}"
        cur = self._cursor()
        view = "arrow_" + uuid.uuid4().hex[:12]
        try:
            cur.register(view, reader)
            cur.execute(f"CREATE TABLE {stage} AS SELECT * FROM {view}")
            cur.unregister(view)
            desc = cur.execute(f"DESCRIBE {stage}").fetchall()
        finally:
            cur.close()
        cols = [d[0] for d in desc if d[0] != "__line"]
        raw = {d[0]: d[1] for d in desc}
        typed = {c: _column_type(raw[c]) for c in cols if raw[c] != "VARCHAR"}
        try:
            return self._import(
                name, stage, cols, options, now, fmt=fmt, source=source, typed=typed, raw_types=raw,
                line_column="__line" if "__line" in raw else None,
            )  # fmt: skip
        finally:
            self._drop_quiet(stage)

    # -- the import itself ----------------------------------------------------------------

    def _import(
        self,
        name: str,
        read: str,
        cols: list[str],
        options: ImportOptions,
        now: int,
        *,
        fmt: str,
        source: str,
        encoding: str | None = None,
        rows_in_source: int | None = None,
        shape_rejects: Callable[[duckdb.DuckDBPyConnection], list[tuple[int, str | None, str, str]]] | None = None,
        line_of: Callable[[list[int], list[int]], list[int]] | None = None,
        shape_lines: LineMap | None = None,
        line_column: str | None = None,
        typed: dict[str, ColumnType] | None = None,
        raw_types: dict[str, str] | None = None,
        replaced: bool = False,
        progress: Progress | None = None,
    ) -> ImportResult:
        table_name(name)
        options = options.checked()
        typed = typed or {}
        unknown = [c for c in options.types if c not in cols]
        missing_key = [k for k in options.key if k not in cols]
        errors = [FieldError(f"types.{c}", f"the source has no column {c!r}") for c in unknown]
        errors += [FieldError("key", f"the source has no column {k!r} (it has {', '.join(cols)})") for k in missing_key]
        if errors:
            raise InvalidInput.for_fields(errors)
        with self._lock:
            try:
                current = self.table(name)
            except NotFound:
                current = None
            existing = (
                {c["name"]: c["type"] for c in current["columns"]} if current and options.mode != "replace" else {}
            )
            stage = f"datahub.{_q('_stage_' + uuid.uuid4().hex[:12])}"
            cur = self._cursor()
            try:
                if progress:
                    progress("reading", 0, 1)
                try:
                    cur.execute(f"CREATE TABLE {stage} AS SELECT * FROM {read}")
                except duckdb.Error as e:
                    raise InvalidInput.for_field("file", f"cannot be read: {_short(e)}") from None
                shape = shape_rejects(cur) if shape_rejects else []
                staged_rows = self._scalar_on(cur, f"SELECT count(*) FROM {stage}")
                # a text column's type: given, else the table's, else inferred from every value
                text_cols = [
                    c
                    for c in cols
                    if c not in typed or c in options.types or (c in existing and existing[c] != typed[c])
                ]
                types: dict[str, str] = {}
                infer = [c for c in text_cols if c not in options.types and c not in existing]
                self._hints = []
                inferred = self._infer(cur, stage, infer) if infer else {}
                for c in cols:
                    types[c] = options.types.get(c) or existing.get(c) or inferred.get(c) or typed.get(c, "text")
                if progress:
                    progress("typing", 0, 1)
                # the converted value of every column, and the first that did not fit
                conv = {}
                for c in cols:
                    src = f"s.{_q(c)}"
                    if c in typed and types[c] == typed[c] and c not in options.types:
                        conv[c] = (
                            src
                            if raw_types is None or types[c] != "text" or raw_types.get(c) == "VARCHAR"
                            else f"CAST({src} AS VARCHAR)"
                        )
                    else:
                        as_text = src if (raw_types or {}).get(c, "VARCHAR") == "VARCHAR" else f"CAST({src} AS VARCHAR)"
                        conv[c] = convert(as_text, types[c], self.timezone)
                checks = []
                for c in cols:
                    src = f"s.{_q(c)}"
                    text = src if (raw_types or {}).get(c, "VARCHAR") == "VARCHAR" else f"CAST({src} AS VARCHAR)"
                    bad = (
                        []
                        if types[c] == "text"
                        else [f"({text} IS NOT NULL AND trim({text}) <> '' AND ({conv[c]}) IS NULL)"]
                    )
                    if replaced:  # bytes that were not in the encoding: never stored as if they were
                        bad.append(f"contains({text}, '\ufffd')")
                    if bad:
                        checks.append((c, " OR ".join(bad)))
                for k in options.key:
                    checks.append((k, f"(({conv[k]}) IS NULL)"))
                first_bad = (
                    "CASE " + " ".join(f"WHEN {b} THEN {_lit(c)}" for c, b in checks) + " END" if checks else "NULL"
                )
                cur.execute(f"ALTER TABLE {stage} ADD COLUMN __bad VARCHAR")
                if checks:
                    cur.execute(f"UPDATE {stage} AS s SET __bad = {first_bad}")
                bad_rows = cur.execute(
                    f"SELECT rowid, __bad, {', '.join(f'CAST({_q(c)} AS VARCHAR)' for c in cols)}"
                    f"{', ' + _q(line_column) if line_column else ''}"
                    f" FROM {stage} WHERE __bad IS NOT NULL ORDER BY rowid"
                ).fetchall()
                shape_records = [r[0] for r in shape]
                if line_column:
                    lines = [int(r[-1]) for r in bad_rows]
                elif line_of is not None:
                    lines = line_of([int(r[0]) for r in bad_rows], shape_records)
                else:
                    lines = [int(r[0]) + 1 for r in bad_rows]
                rejects: list[Reject] = []
                for (_rowid, col, *values), line in zip(bad_rows, lines, strict=True):
                    i = cols.index(col)
                    text = values[i] or ""
                    if "\ufffd" in text:
                        reason = f"holds bytes that are not {encoding} text"
                    elif col in options.key and not text.strip():
                        reason = "the key is empty"
                    else:
                        reason = f"{text!r} is not {_NOUN.get(types[col], types[col])}"
                    rejects.append(Reject(line, col, reason, text[:500]))
                shape_lines = shape_lines or LineMap()
                rejects += [Reject(shape_lines.line(rec), col, why, text[:500]) for rec, col, why, text in shape]
                rejects.sort(key=lambda r: r.line)
                if rows_in_source is None:
                    rows_in_source = staged_rows + len(shape)
                imported = staged_rows - len(bad_rows)
                if imported + len(rejects) != rows_in_source:
                    raise RuntimeError(
                        f"{name}: {rows_in_source} rows in the source, {imported} imported and {len(rejects)} rejected"
                    )
                version = self._next_version(name)
                target = f"datahub.{_q(f'{name}@{version}')}"
                select = ", ".join(f"CAST({conv[c]} AS {SQL_TYPES[types[c]]}) AS {_q(c)}" for c in cols)
                # rows keep their order: the previous version's, then the source's
                new_rows = f"(SELECT {select}, 1 AS __s, s.rowid AS __r FROM {stage} AS s WHERE s.__bad IS NULL)"
                all_cols = list(existing) + [c for c in cols if c not in existing]
                if progress:
                    progress("writing", 0, 1)
                cur.execute("BEGIN")
                if current is None or options.mode == "replace":
                    body = new_rows
                else:
                    prev = f"(SELECT *, 0 AS __s, rowid AS __r FROM datahub.{_q(name + '@' + str(current['version']))})"
                    if options.mode == "append":
                        body = f"(SELECT * FROM {prev} UNION ALL BY NAME SELECT * FROM {new_rows})"
                    else:
                        keys = ", ".join(_q(k) for k in options.key)
                        last = f"(SELECT * FROM {new_rows} QUALIFY __r = max(__r) OVER (PARTITION BY {keys}))"
                        body = (
                            f"(SELECT * FROM {prev} p WHERE NOT EXISTS (SELECT 1 FROM {last} n WHERE "
                            + " AND ".join(f"n.{_q(k)} IS NOT DISTINCT FROM p.{_q(k)}" for k in options.key)
                            + f") UNION ALL BY NAME SELECT * FROM {last})"
                        )
                order = ", ".join(_q(c) for c in all_cols)
                cur.execute(f"CREATE TABLE {target} AS SELECT {order} FROM {body} ORDER BY __s, __r")
                if rejects:
                    rt = f"datahub.{_q(f'{name}@{version}!rejects')}"
                    cur.execute(f"CREATE TABLE {rt} (line BIGINT, col VARCHAR, reason VARCHAR, text VARCHAR)")
                    cur.executemany(
                        f"INSERT INTO {rt} VALUES (?, ?, ?, ?)", [(r.line, r.column, r.reason, r.text) for r in rejects]
                    )
                total = self._scalar_on(cur, f"SELECT count(*) FROM {target}")
                final_types = [(c, types.get(c) or existing[c]) for c in all_cols]
                self._record(cur, name, version, now, options.mode, fmt, source, encoding, list(options.key),
                             final_types, rows_in_source, imported, len(rejects), total)  # fmt: skip
                cur.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(duckdb.Error):
                    cur.execute("ROLLBACK")
                raise
            finally:
                try:
                    cur.execute(f"DROP TABLE IF EXISTS {stage}")
                finally:
                    cur.close()
            self._prune(name)
        return ImportResult(
            name, version, options.mode, rows_in_source, imported, len(rejects), rejects[:REJECTS_SHOWN],
            final_types, total, encoding, fmt, source, hints=list(self._hints),
        )  # fmt: skip

    def _infer(self, cur: duckdb.DuckDBPyConnection, stage: str, cols: list[str]) -> dict[str, str]:
        """Each column's type: the first of `_INFER_ORDER` every non-empty value fits.

        Two passes: numbers, booleans and a cheap "could be a date" test for every column,
        then the date parsers (dozens of formats a value) only for the columns where most
        values could be dates, never for names and notes."""
        fits: dict[str, dict[str, int]] = {c: {} for c in cols}
        # each value normalised once (a subquery's columns are computed once a row), then tested
        norm = ", ".join(f"{_norm(f'CAST({_q(c)} AS VARCHAR)')} AS n{i}" for i, c in enumerate(cols))
        money = ", ".join(f"n{i}, {_money(f'n{i}', normalized=True)} AS m{i}" for i in range(len(cols)))
        truth = ", ".join(map(_lit, (*_TRUE, *_FALSE)))
        first = []
        for i in range(len(cols)):
            n, m = f"n{i}", f"m{i}"
            nonempty = f"{n} IS NOT NULL AND {n} <> ''"
            first.append(f"count(*) FILTER (WHERE {nonempty})")
            first.append(f"count(*) FILTER (WHERE regexp_full_match({n}, '0[0-9]+'))")
            first.append(f"count(*) FILTER (WHERE {nonempty} AND regexp_full_match({m}, '{_INT_RE}'))")
            first.append(f"count(*) FILTER (WHERE {nonempty} AND regexp_full_match({m}, '{_NUM_RE}'))")
            first.append(f"count(*) FILTER (WHERE {nonempty} AND lower({n}) IN ({truth}, '0', '1'))")
            first.append(f"count(*) FILTER (WHERE {nonempty} AND regexp_matches({n}, '{_DATELIKE}'))")
        tested = f"(SELECT {money} FROM (SELECT {norm} FROM {stage}))"
        row = cur.execute(f"SELECT {', '.join(first)} FROM {tested}").fetchone()
        assert row is not None
        counts: dict[str, tuple[int, int]] = {}
        maybe_dates = []
        for i, c in enumerate(cols):
            n, zeros, integer, number, boolean, datelike = row[i * 6 : (i + 1) * 6]
            counts[c] = (int(n), int(zeros))
            fits[c] = {"integer": integer, "number": number, "boolean": boolean, "date": 0, "timestamp": 0}
            if n and datelike >= 0.8 * n and integer < n:
                maybe_dates.append(c)
        if maybe_dates:
            second = []
            for c in maybe_dates:
                v = f"CAST({_q(c)} AS VARCHAR)"
                nonempty = f"{v} IS NOT NULL AND trim({v}) <> ''"
                for t in ("date", "timestamp"):
                    fit = f"({convert(v, t, self.timezone)}) IS NOT NULL"
                    second.append(f"count(*) FILTER (WHERE {nonempty} AND {fit})")
            row2 = cur.execute(f"SELECT {', '.join(second)} FROM {stage}").fetchone()
            assert row2 is not None
            for k, c in enumerate(maybe_dates):
                fits[c]["date"], fits[c]["timestamp"] = row2[2 * k], row2[2 * k + 1]
        out: dict[str, str] = {}
        for c in cols:
            n, zeros = counts[c]
            out[c] = "text"
            if n == 0:
                continue
            got = [int(fits[c][t]) for t in _INFER_ORDER]
            for t, fit in zip(_INFER_ORDER, got, strict=True):
                if fit == n and not (zeros and t in ("integer", "number", "boolean")):
                    out[c] = t
                    break
            else:
                # text because a few values do not fit: say so, a named type rejects those
                most = max(got)  # the first type of the order among those most values fit
                if most >= 0.8 * n and not zeros:
                    typ = _INFER_ORDER[got.index(most)]
                    self._hints.append({"column": c, "type": typ, "fits": most, "values": n})
        return out

    def _next_version(self, name: str) -> int:
        return int(self._scalar("SELECT coalesce(max(version), 0) + 1 FROM datahub_versions WHERE name = ?", [name]))

    def _record(
        self, cur: duckdb.DuckDBPyConnection, name: str, version: int, now: int, mode: str, fmt: str | None,
        source: str | None, encoding: str | None, key: list[str], columns: list[tuple[str, str]],
        rows_in_source: int | None, imported: int | None, rejected: int | None, total: int, *,
        restored_from: int | None = None,
    ) -> None:  # fmt: skip
        cur.execute(
            "INSERT INTO datahub_versions (name, version, made_at, mode, format, source, encoding, key, columns,"
            " rows_in_source, rows_imported, rows_rejected, rows_total, restored_from) VALUES"
            " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [name, version, now, mode, fmt, source, encoding, json.dumps(key) if key else None,
             json.dumps([{"name": n, "type": t} for n, t in columns], ensure_ascii=False),
             rows_in_source, imported, rejected, total, restored_from],
        )  # fmt: skip
        cur.execute(
            "INSERT INTO datahub_tables VALUES (?, ?, ?, ?) ON CONFLICT (name)"
            " DO UPDATE SET current = excluded.current, updated_at = excluded.updated_at",
            [name, version, now, now],
        )
        cur.execute(f"CREATE OR REPLACE VIEW datahub.{_q(name)} AS SELECT * FROM datahub.{_q(f'{name}@{version}')}")

    def _prune(self, name: str) -> None:
        """Drop the rows of versions past the last KEEP_VERSIONS (their records stay)."""
        with self._transaction() as cur:
            old = cur.execute(
                "SELECT version FROM datahub_versions v WHERE name = ? AND NOT pruned AND version NOT IN"
                " (SELECT current FROM datahub_tables WHERE name = v.name) ORDER BY version DESC OFFSET ?",
                [name, KEEP_VERSIONS - 1],
            ).fetchall()
            for (v,) in old:
                self._drop_version(cur, name, v)
                cur.execute("UPDATE datahub_versions SET pruned = true WHERE name = ? AND version = ?", [name, v])

    def _scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        cur = self._cursor()
        try:
            return self._scalar_on(cur, sql, params)
        finally:
            cur.close()

    @staticmethod
    def _scalar_on(cur: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> Any:
        row = cur.execute(sql, list(params)).fetchone()
        return row[0] if row else None

    def _drop_quiet(self, rel: str) -> None:
        cur = self._cursor()
        try:
            cur.execute(f"DROP TABLE IF EXISTS {rel}")
        finally:
            cur.close()


def _short(e: Exception) -> str:
    return str(e).splitlines()[0][:300]
