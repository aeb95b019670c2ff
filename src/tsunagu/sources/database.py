"""A table or a query from PostgreSQL or MySQL/MariaDB, by connection URL.

PostgreSQL through psycopg 3, MySQL and MariaDB through PyMySQL (DuckDB's extensions
cannot be downloaded on these machines). Rows stream: a PostgreSQL server-side cursor,
a MySQL unbuffered cursor (`SSCursor`), `batch_rows` at a time, so a table of ten million
rows never sits in memory whole. `__line` is the row's ordinal in the result, from 1.

Read-only, twice over. A query must be a SELECT (or WITH, VALUES, TABLE), checked here
so a person hears why at once; and it runs in a read-only transaction, so what slips
past that check (a data-modifying WITH, a function that writes) fails on the server.
Neither is a sandbox: functions such as `pg_terminate_backend` need no write, so the URL's
user should be one that may only read.

Columns keep their database types (the importer need not guess what the server knows):

    integers              int64 (MySQL BIGINT UNSIGNED: uint64, it does not fit int64)
    real, double          float64
    numeric(p, s), p ≤ 38 decimal128(p, s): amounts stay exact
    numeric otherwise     float64: `sum()` and `avg()` answer an unconstrained numeric,
                          which no Arrow decimal holds without a declared scale
    text, varchar, char   string
    boolean               bool (MySQL's BOOLEAN is TINYINT(1): int64, it can hold 2)
    date                  date32
    time                  time64('us') (PostgreSQL); MySQL TIME is a duration that can pass
                          24 hours: text as MySQL prints it (`-838:59:59`)
    timestamp, datetime   timestamp('us')
    timestamptz, MySQL TIMESTAMP   timestamp('us', tz='UTC')
    json, jsonb           string: the JSON text
    arrays                string: JSON (`["東京", "大阪"]`), which DuckDB reads back
    bytea, blob, binary   binary
    anything else         string, `str()` of what the driver gives
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import difflib
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import psycopg
import pyarrow as pa
import pymysql
import pymysql.cursors
from psycopg import sql
from psycopg.types.string import TextLoader
from pymysql.constants import FIELD_TYPE, FLAG

from tsunagu.core.errors import InvalidInput, TsunaguError

from ._names import LINE, unique_names

__all__ = ["masked_url", "read_database"]

CONNECT_TIMEOUT = 5  # seconds: a wrong host answers with an error, not a hang
_MAX_DECIMAL = 38  # decimal128's precision
_READS = {"select", "with", "values", "table"}


def read_database(
    url: str, *, table: str | None = None, query: str | None = None, batch_rows: int = 50_000
) -> pa.RecordBatchReader:
    """The rows of `table` (a name, schema-qualified if need be) or of `query` (a SELECT).

    `url` is `postgresql://` (or `postgres://`), `mysql://` or `mariadb://`
    `user:password@host:port/database`. The connection, the statement and the first batch
    are made before this returns, so a wrong URL, table or query raises here.
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be at least 1, not {batch_rows}")
    target = _target(table, query)
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme in ("postgresql", "postgres"):
        return _stream(_open_postgres(url, target, batch_rows))
    if scheme in ("mysql", "mariadb"):
        return _stream(_open_mysql(url, target, batch_rows))
    raise InvalidInput.for_field(
        "url", f"{masked_url(url)!r} is no database URL this reads: it starts postgresql://, mysql:// or mariadb://"
    )


@dataclass(frozen=True, slots=True)
class _Target:
    """What to read: `field` is `table` or `query`, `text` as the person gave it."""

    field: str
    text: str
    table: list[str] | None = None  # the table's name, split into its quoted parts


@dataclass(frozen=True, slots=True)
class _Column:
    name: str
    type: pa.DataType
    convert: Callable[[Any], Any] | None = None  # applied to each non-null value


@dataclass(slots=True)
class _Opened:
    """A statement under way: its columns, its first rows, how to fetch more and to stop."""

    columns: list[_Column]
    first: Sequence[Sequence[Any]]
    fetch: Callable[[], Sequence[Sequence[Any]]]
    close: Callable[[], None]


def _stream(opened: _Opened) -> pa.RecordBatchReader:
    names = unique_names(c.name for c in opened.columns)
    schema = pa.schema([(LINE, pa.int64()), *((n, c.type) for n, c in zip(names, opened.columns, strict=True))])

    def batches() -> Iterator[pa.RecordBatch | None]:
        try:
            yield None  # primed below: from here on, dropping the reader closes the connection
            rows, line = opened.first, 1
            while rows:
                yield _batch(schema, opened.columns, rows, line)
                line += len(rows)
                rows = opened.fetch()
        finally:
            opened.close()

    stream = batches()
    next(stream)
    return pa.RecordBatchReader.from_batches(schema, stream)


def _batch(schema: pa.Schema, columns: list[_Column], rows: Sequence[Sequence[Any]], line: int) -> pa.RecordBatch:
    arrays = [pa.array(range(line, line + len(rows)), pa.int64())]
    for i, column in enumerate(columns):
        values = [row[i] for row in rows]
        if column.convert is not None:
            convert = column.convert
            values = [None if v is None else convert(v) for v in values]
        arrays.append(pa.array(values, column.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


# -- what to read -----------------------------------------------------------------------


def _target(table: str | None, query: str | None) -> _Target:
    if table is not None and query is not None:
        raise InvalidInput.for_field("query", "give a table or a query, not both")
    if query is not None:
        text = re.sub(r"[\s;]+$", "", query)  # a pasted query often ends with `;`
        word = _first_word(text)
        if not word:
            raise InvalidInput.for_field("query", "is empty; give a SELECT")
        if word.lower() not in _READS:
            raise InvalidInput.for_field("query", f"must be a SELECT: an import only reads, and this starts {word!r}")
        return _Target("query", text)
    if table is None or not table.strip():
        raise InvalidInput.for_field("table", "give a table to read or a query to run")
    return _Target("table", table, _table_parts(table))


_COMMENT = re.compile(r"\s+|--[^\n]*|#[^\n]*|/\*(?!!|M!).*?\*/", re.DOTALL)  # MySQL runs /*! … */


def _first_word(query: str) -> str:
    at = 0
    while m := _COMMENT.match(query, at):
        at = m.end()
    rest = query[at:].lstrip("( \t\r\n")
    word = re.match(r"\w+", rest)
    return word.group() if word else rest[:10]


def _table_parts(table: str) -> list[str]:
    """`schema.table`, `"My Table"`, `` `db`.`顧客` `` → the name's parts, unquoted.

    The parts are quoted again as identifiers by each database's own rule, never pasted.
    """
    parts: list[str] = []
    part, at, quoted = "", 0, False
    while at < len(table):
        ch = table[at]
        if ch in '"`' and not part:
            end = at + 1
            while True:
                end = table.find(ch, end)
                if end < 0:
                    raise InvalidInput.for_field("table", f"{table!r} has an unclosed {ch}")
                if table[end + 1 : end + 2] != ch:
                    break
                end += 2
            part, at, quoted = table[at + 1 : end].replace(ch * 2, ch), end + 1, True
            if at < len(table) and table[at] != ".":
                raise InvalidInput.for_field("table", f"{table!r} is no table name: a '.' must follow {ch}{part}{ch}")
        elif ch == ".":
            parts.append(part if quoted else part.strip())
            part, at, quoted = "", at + 1, False
        else:
            part, at = part + ch, at + 1
    parts.append(part if quoted else part.strip())
    if any(not p or "\0" in p for p in parts):
        raise InvalidInput.for_field("table", f"{table!r} is no table name")
    return parts


# -- errors -----------------------------------------------------------------------------


def masked_url(url: str) -> str:
    """The URL with its password as `***`."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)
    if not password:
        return url
    user, _, host = parts.netloc.rpartition("@")
    name = user.split(":", 1)[0]
    return parts._replace(netloc=f"{name}:***@{host}").geturl()


def _scrub(message: str, url: str) -> str:
    """A driver's message on one line, without the URL's password in any spelling."""
    try:
        password = urlsplit(url).password or ""
    except ValueError:
        password = ""
    for secret in {password, unquote(password)} - {""}:
        message = message.replace(secret, "***")
    return " ".join(message.replace(url, masked_url(url)).split())


def _not_read_only(reason: str) -> str:
    return f"writes to the database ({reason}); an import only reads"


def _no_table(target: _Target, names: Sequence[str]) -> TsunaguError:
    near = [n for n in names if n.lower() == target.text.lower()]
    near += [n for n in difflib.get_close_matches(target.text, names, n=3, cutoff=0.6) if n not in near]
    hint = f"; did you mean {', '.join(repr(n) for n in near[:3])}?" if near else ""
    return InvalidInput.for_field("table", f"no table named {target.text!r}{hint}")


# -- PostgreSQL -------------------------------------------------------------------------

_PG_TYPES: dict[str, pa.DataType] = {
    **dict.fromkeys(["int2", "int4", "int8", "oid"], pa.int64()),
    **dict.fromkeys(["float4", "float8"], pa.float64()),
    **dict.fromkeys(["text", "varchar", "bpchar", "name", "json", "jsonb"], pa.string()),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "time": pa.time64("us"),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),  # psycopg gives aware datetimes; Arrow stores UTC
    "bytea": pa.binary(),
}
_PG_AS_TEXT = ("json", "jsonb", "interval")  # the server's own text, not Python objects or repr()


def _open_postgres(url: str, target: _Target, batch_rows: int) -> _Opened:
    try:
        conn = psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT)
    except psycopg.Error as e:
        raise InvalidInput.for_field("url", f"cannot connect to {masked_url(url)}: {_scrub(str(e), url)}") from None
    for name in _PG_AS_TEXT:
        conn.adapters.register_loader(name, TextLoader)
    try:
        conn.execute("SET TRANSACTION READ ONLY")
        cursor = conn.cursor(name="tsunagu_import")  # server-side: rows come batch_rows at a time
        if target.table is not None:
            cursor.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(*target.table)))
        else:
            cursor.execute(target.text)  # no parameters: `%` is not a placeholder
        columns = [_pg_column(conn, c) for c in cursor.description or []]
        first = cursor.fetchmany(batch_rows)
    except psycopg.Error as e:
        error = _pg_error(conn, target, e, url)
        conn.close()
        raise error from None
    except BaseException:
        conn.close()
        raise

    def fetch() -> Sequence[Sequence[Any]]:
        try:
            return cursor.fetchmany(batch_rows)
        except psycopg.Error as e:
            raise _pg_error(conn, target, e, url) from None

    return _Opened(columns, first, fetch, conn.close)


def _pg_column(conn: psycopg.Connection[Any], column: psycopg.Column) -> _Column:
    info = conn.adapters.types.get(column.type_code)  # an array's oid finds its element's type
    if info is not None and column.type_code == info.array_oid:
        return _Column(column.name, pa.string(), _json)
    name = info.name if info is not None else ""
    if name == "numeric":
        if column.precision is not None and column.precision <= _MAX_DECIMAL:
            return _Column(column.name, pa.decimal128(column.precision, column.scale or 0), _finite)
        return _Column(column.name, pa.float64(), float)
    if name in _PG_TYPES:
        return _Column(column.name, _PG_TYPES[name])
    return _Column(column.name, pa.string(), str)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _finite(value: decimal.Decimal) -> decimal.Decimal | None:
    # numeric takes 'NaN' (PostgreSQL only); no decimal128 holds it, so it is null
    return value if value.is_finite() else None


_PG_READ_ONLY = "25006"  # read_only_sql_transaction
_PG_UNSUPPORTED = "0A000"  # also "DECLARE CURSOR must not contain data-modifying statements in WITH"
_PG_NO_TABLE = {"42P01", "3F000"}  # undefined_table, invalid_schema_name


def _pg_error(conn: psycopg.Connection[Any], target: _Target, e: psycopg.Error, url: str) -> TsunaguError:
    reason = _scrub(e.diag.message_primary or str(e), url)
    if e.sqlstate == _PG_READ_ONLY or (e.sqlstate == _PG_UNSUPPORTED and "data-modifying" in reason):
        return InvalidInput.for_field(target.field, _not_read_only(reason))
    if e.sqlstate in _PG_NO_TABLE and target.field == "table":
        return _no_table(target, _pg_tables(conn))
    return InvalidInput.for_field(target.field, reason)


def _pg_tables(conn: psycopg.Connection[Any]) -> list[str]:
    try:
        conn.rollback()
        rows = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_schema NOT IN ('pg_catalog', 'information_schema') LIMIT 10000"
        ).fetchall()
    except psycopg.Error:
        return []
    return [name if schema == "public" else f"{schema}.{name}" for schema, name in rows]


# -- MySQL / MariaDB --------------------------------------------------------------------

_MY_INTEGERS = {FIELD_TYPE.TINY, FIELD_TYPE.SHORT, FIELD_TYPE.INT24, FIELD_TYPE.LONG, FIELD_TYPE.YEAR}
_MY_TEXT = {
    FIELD_TYPE.VARCHAR, FIELD_TYPE.VAR_STRING, FIELD_TYPE.STRING, FIELD_TYPE.TINY_BLOB, FIELD_TYPE.MEDIUM_BLOB,
    FIELD_TYPE.LONG_BLOB, FIELD_TYPE.BLOB,
}  # fmt: skip
_MY_BINARY_CHARSET = 63  # a TEXT type in the binary character set is a BLOB / BINARY
_MY_URL_OPTIONS = {"ssl_ca", "ssl_cert", "ssl_key", "ssl_verify_cert", "ssl_verify_identity", "ssl_disabled"}
_MY_FLAG_OPTIONS = {"ssl_verify_cert", "ssl_verify_identity", "ssl_disabled"}
_MY_ACCESS_DENIED = {1142, 1143, 1044}  # table, column, database
_MY_NO_TABLE = {1146, 1049}  # no such table; unknown database (in `db.table`)
_MY_READ_ONLY = 1792  # "Cannot execute statement in a READ ONLY transaction"
_MY_WRITES_FILE = re.compile(r"\binto\s+(out|dump)file\b", re.IGNORECASE)


def _open_mysql(url: str, target: _Target, batch_rows: int) -> _Opened:
    if target.field == "query" and _MY_WRITES_FILE.search(target.text):
        raise InvalidInput.for_field(
            "query", "writes a file on the database server (INTO OUTFILE); an import only reads"
        )
    options = _mysql_options(url)
    try:
        conn = pymysql.connect(**options, charset="utf8mb4", connect_timeout=CONNECT_TIMEOUT, autocommit=False)
    except pymysql.Error as e:
        raise InvalidInput.for_field(
            "url", f"cannot connect to {masked_url(url)}: {_scrub(_my_message(e), url)}"
        ) from None
    try:
        with conn.cursor() as setup:
            setup.execute("SET time_zone = '+00:00'")  # TIMESTAMP values arrive in UTC
            # the session's too: a statement that commits implicitly (DDL) starts a new transaction
            setup.execute("SET SESSION TRANSACTION READ ONLY")
            setup.execute("START TRANSACTION READ ONLY")
        cursor = conn.cursor(pymysql.cursors.SSCursor)  # unbuffered: rows come as they are fetched
        if target.table is not None:
            cursor.execute("SELECT * FROM " + ".".join("`" + p.replace("`", "``") + "`" for p in target.table))
        else:
            cursor.execute(target.text)  # no arguments: `%` is not a placeholder
        columns = _mysql_columns(cursor)
        first = cursor.fetchmany(batch_rows)
    except pymysql.Error as e:
        error = _mysql_error(conn, target, e, url)
        conn.close()
        raise error from None
    except BaseException:
        conn.close()
        raise

    def fetch() -> Sequence[Sequence[Any]]:
        try:
            rows: Sequence[Sequence[Any]] = cursor.fetchmany(batch_rows)
        except pymysql.Error as e:
            raise _mysql_error(conn, target, e, url) from None
        return rows

    def close() -> None:
        # Stopped half-way, PyMySQL would read the rest of the result (ten million rows,
        # perhaps) to finish it, and from a closed socket when the cursor is collected.
        if cursor._result is not None:
            cursor._result.unbuffered_active = False
        with contextlib.suppress(pymysql.Error):  # already closed by the server
            conn.close()

    return _Opened(columns, first, fetch, close)


def _mysql_options(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    try:
        port = parts.port or 3306
    except ValueError:
        raise InvalidInput.for_field("url", f"{masked_url(url)!r} has a port that is no number") from None
    options: dict[str, Any] = {
        "host": parts.hostname or "localhost",
        "port": port,
        "user": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password or "").encode(),  # PyMySQL would encode a str as Latin-1
        "database": unquote(parts.path.lstrip("/")) or None,
    }
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in _MY_URL_OPTIONS:
            known = ", ".join(sorted(_MY_URL_OPTIONS))
            raise InvalidInput.for_field("url", f"unknown parameter {key!r}; the URL takes {known}")
        options[key] = value.lower() in ("1", "true", "yes") if key in _MY_FLAG_OPTIONS else value
    return options


def _mysql_columns(cursor: pymysql.cursors.SSCursor) -> list[_Column]:
    # The description holds no character set or UNSIGNED flag; the result's fields do.
    fields = cursor._result.fields if cursor._result is not None else []
    return [_mysql_column(f.name, f.type_code, f.charsetnr, f.flags, f.length, f.scale) for f in fields]


def _mysql_column(name: str, code: int, charset: int, flags: int, length: int, scale: int) -> _Column:
    unsigned = bool(flags & FLAG.UNSIGNED)
    if code in _MY_INTEGERS:
        return _Column(name, pa.int64())
    if code == FIELD_TYPE.LONGLONG:
        return _Column(name, pa.uint64() if unsigned else pa.int64())
    if code in (FIELD_TYPE.FLOAT, FIELD_TYPE.DOUBLE):
        return _Column(name, pa.float64())
    if code in (FIELD_TYPE.DECIMAL, FIELD_TYPE.NEWDECIMAL):
        # the length counts the sign and the decimal point besides the digits
        precision = length - (0 if unsigned else 1) - (1 if scale else 0)
        if 0 < precision <= _MAX_DECIMAL:
            return _Column(name, pa.decimal128(precision, scale))
        return _Column(name, pa.float64(), float)
    if code in (FIELD_TYPE.DATE, FIELD_TYPE.NEWDATE):
        return _Column(name, pa.date32(), _mysql_date)
    if code == FIELD_TYPE.DATETIME:
        return _Column(name, pa.timestamp("us"), _mysql_date)
    if code == FIELD_TYPE.TIMESTAMP:
        return _Column(name, pa.timestamp("us", tz="UTC"), _mysql_date)
    if code == FIELD_TYPE.TIME:
        return _Column(name, pa.string(), _mysql_time)
    if code == FIELD_TYPE.BIT:
        return _Column(name, pa.int64(), lambda b: int.from_bytes(b, "big"))
    if code == FIELD_TYPE.GEOMETRY or (code in _MY_TEXT and charset == _MY_BINARY_CHARSET):
        return _Column(name, pa.binary())
    if code in _MY_TEXT or code == FIELD_TYPE.JSON:
        return _Column(name, pa.string())
    return _Column(name, pa.string(), str)


def _mysql_date(value: Any) -> datetime.date | None:
    # MySQL's zero date '0000-00-00' is no date; PyMySQL hands it back as text
    return value if isinstance(value, datetime.date) else None


def _mysql_time(value: datetime.timedelta | str) -> str:
    if not isinstance(value, datetime.timedelta):
        return value
    micros = abs(value) // datetime.timedelta(microseconds=1)
    seconds, micro = divmod(micros, 1_000_000)
    sign = "-" if value < datetime.timedelta(0) else ""
    text = f"{sign}{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    return f"{text}.{micro:06d}" if micro else text


def _my_message(e: pymysql.Error) -> str:
    return str(e.args[1]) if len(e.args) > 1 else str(e)


def _mysql_error(conn: pymysql.Connection[Any], target: _Target, e: pymysql.Error, url: str) -> TsunaguError:
    code = e.args[0] if e.args and isinstance(e.args[0], int) else None
    reason = _scrub(_my_message(e), url)
    if code == _MY_READ_ONLY:
        return InvalidInput.for_field(target.field, _not_read_only(reason))
    if code in _MY_NO_TABLE and target.field == "table":
        return _no_table(target, _mysql_tables(conn))
    if code in _MY_ACCESS_DENIED:
        return InvalidInput.for_field(target.field, f"the URL's user may not read this: {reason}")
    return InvalidInput.for_field(target.field, reason)


def _mysql_tables(conn: pymysql.Connection[Any]) -> list[str]:
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() LIMIT 10000"
            )
            return [row[0] for row in cursor.fetchall()]
    except pymysql.Error:
        return []
