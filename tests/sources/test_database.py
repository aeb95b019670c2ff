"""Tables and queries read from the real local PostgreSQL (127.0.0.1:5432) and MariaDB
(127.0.0.1:3306) servers.

One suite runs on both servers (`server` is parametrized); what only one of them has
(PostgreSQL's interval and jsonb, MySQL's unsigned and TIME) has its own tests. Each
test makes its own uniquely named tables and drops them afterwards.
"""

from __future__ import annotations

import datetime
import gc
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg
import pyarrow as pa
import pymysql
import pytest

from tsunagu.core.errors import InvalidInput
from tsunagu.sources.database import read_database

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
MY_URL = "mysql://root@127.0.0.1:3306/test"
UTC = datetime.UTC


@dataclass
class Server:
    name: str
    url: str
    run: Callable[[str], list[tuple[Any, ...]]]  # one statement, committed; its rows if any
    quote: Callable[[str], str]
    types: dict[str, str]  # the DDL type for each of the suite's columns
    arrow: dict[str, pa.DataType]

    def table(self, prefix: str, columns: str) -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        self.run(f"CREATE TABLE {self.quote(name)} ({columns})")
        self.created.append(name)
        return name

    def count(self, table: str) -> int:
        return int(self.run(f"SELECT count(*) FROM {self.quote(table)}")[0][0])

    def __post_init__(self) -> None:
        self.created: list[str] = []
        self.functions: list[str] = []


def _postgres() -> Iterator[Server]:
    try:
        conn = psycopg.connect(PG_URL, autocommit=True, connect_timeout=5)
    except psycopg.Error as e:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is not reachable: {e}")

    def run(statement: str) -> list[tuple[Any, ...]]:
        cursor = conn.execute(statement)
        return cursor.fetchall() if cursor.description else []

    server = Server(
        "postgresql",
        PG_URL,
        run,
        lambda name: '"' + name.replace('"', '""') + '"',
        {"amount": "numeric(10,2)", "score": "double precision", "seen": "timestamp", "seen_tz": "timestamptz",
         "active": "boolean", "data": "jsonb"},
        {"active": pa.bool_()},
    )  # fmt: skip
    yield server
    for name in server.functions:
        run(f"DROP FUNCTION IF EXISTS {name}()")
    for name in server.created:
        run(f"DROP TABLE IF EXISTS {server.quote(name)} CASCADE")
    conn.close()


def _mariadb() -> Iterator[Server]:
    try:
        conn = pymysql.connect(
            host="127.0.0.1", port=3306, user="root", password="", database="test", charset="utf8mb4",
            autocommit=True, connect_timeout=5,
        )  # fmt: skip
    except pymysql.Error as e:
        pytest.skip(f"MariaDB at 127.0.0.1:3306 is not reachable: {e}")

    def run(statement: str) -> list[tuple[Any, ...]]:
        with conn.cursor() as cursor:
            cursor.execute(statement)
            return list(cursor.fetchall())

    run("SET time_zone = '+00:00'")
    server = Server(
        "mariadb",
        MY_URL,
        run,
        lambda name: "`" + name.replace("`", "``") + "`",
        {"amount": "decimal(10,2)", "score": "double", "seen": "datetime", "seen_tz": "timestamp NULL",
         "active": "boolean", "data": "json"},
        {"active": pa.int64()},  # BOOLEAN is TINYINT(1) there
    )  # fmt: skip
    yield server
    for name in server.created:
        run(f"DROP TABLE IF EXISTS {server.quote(name)}")
    for name in server.functions:
        run(f"DROP FUNCTION IF EXISTS {name}")
    conn.close()


@pytest.fixture(params=["postgresql", "mariadb"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    yield from (_postgres() if request.param == "postgresql" else _mariadb())


@pytest.fixture
def postgres() -> Iterator[Server]:
    yield from _postgres()


@pytest.fixture
def mariadb() -> Iterator[Server]:
    yield from _mariadb()


def _members(server: Server) -> str:
    """A table named in Japanese with Japanese text, NULLs and the common types."""
    t = server.types
    name = server.table(
        "顧客",
        f"id int PRIMARY KEY, {server.quote('氏名')} text, amount {t['amount']}, score {t['score']}, joined date,"
        f" seen {t['seen']}, seen_tz {t['seen_tz']}, active {t['active']}, data {t['data']}, note varchar(20)",
    )
    seen_tz = "'2024-05-01 17:26:03+09'" if server.name == "postgresql" else "'2024-05-01 08:26:03'"  # UTC session
    server.run(
        f"INSERT INTO {server.quote(name)} VALUES"
        f" (1, '山田 太郎', 1234.50, 0.5, '2024-05-01', '2024-05-01 08:26:03', {seen_tz}, true,"
        """ '{"rank": "ゴールド"}', '渋谷店'),"""
        " (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),"
        " (3, 'ｶﾀｶﾅ１２３', -0.01, 1e100, '1999-12-31', '2000-01-01 00:00:00', NULL, false, '[1, 2]', '')"
    )
    return name


def _rows(reader: pa.RecordBatchReader) -> list[dict[str, Any]]:
    return list(reader.read_all().to_pylist())


def test_a_table_reads_with_its_types_and_names(server: Server) -> None:
    name = _members(server)
    reader = read_database(server.url, table=name)
    assert reader.schema == pa.schema(
        [
            ("__line", pa.int64()), ("id", pa.int64()), ("氏名", pa.string()), ("amount", pa.decimal128(10, 2)),
            ("score", pa.float64()), ("joined", pa.date32()), ("seen", pa.timestamp("us")),
            ("seen_tz", pa.timestamp("us", tz="UTC")), ("active", server.arrow["active"]), ("data", pa.string()),
            ("note", pa.string()),
        ]
    )  # fmt: skip
    rows = sorted(_rows(reader), key=lambda r: r["id"])
    assert rows[0] | {"__line": 0} == {
        "__line": 0, "id": 1, "氏名": "山田 太郎", "amount": Decimal("1234.50"), "score": 0.5,
        "joined": datetime.date(2024, 5, 1), "seen": datetime.datetime(2024, 5, 1, 8, 26, 3),
        "seen_tz": datetime.datetime(2024, 5, 1, 8, 26, 3, tzinfo=UTC), "active": True, "data": '{"rank": "ゴールド"}',
        "note": "渋谷店",
    }  # fmt: skip
    assert rows[1] == {"__line": rows[1]["__line"], "id": 2} | dict.fromkeys(list(rows[1])[2:])  # NULLs stay null
    third = (rows[2]["氏名"], rows[2]["amount"], rows[2]["score"], rows[2]["note"])
    assert third == ("ｶﾀｶﾅ１２３", Decimal("-0.01"), 1e100, "")
    assert sorted(r["__line"] for r in rows) == [1, 2, 3]


def test_a_query_reads_what_it_selects_numbered_in_its_order(server: Server) -> None:
    name = _members(server)
    rows = _rows(read_database(server.url, query=f"SELECT * FROM {server.quote(name)} ORDER BY id DESC;\n"))
    assert [(r["__line"], r["id"]) for r in rows] == [(1, 3), (2, 2), (3, 1)]
    by_table = sorted(_rows(read_database(server.url, table=name)), key=lambda r: -r["id"])
    assert [r | {"__line": 0} for r in rows] == [r | {"__line": 0} for r in by_table]


def test_a_query_is_sent_as_written(server: Server) -> None:
    # `%` is no placeholder, a comment before the SELECT is fine, repeated names are told apart
    reader = read_database(server.url, query="-- 会員ランク\n/* 割引 */ SELECT '100%' AS 割引, 1 AS a, 2 AS a")
    assert _rows(reader) == [{"__line": 1, "割引": "100%", "a": 1, "a_2": 2}]


def test_rows_stream_in_batches_of_one_schema(server: Server) -> None:
    name = server.table("n", "id int PRIMARY KEY, label varchar(10)")
    server.run(f"INSERT INTO {server.quote(name)} VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd'), (5, NULL)")
    batches = list(read_database(server.url, query=f"SELECT * FROM {server.quote(name)} ORDER BY id", batch_rows=2))
    assert [b.num_rows for b in batches] == [2, 2, 1]
    assert len({b.schema for b in batches}) == 1
    assert [(r["__line"], r["id"]) for r in pa.Table.from_batches(batches).to_pylist()] == [(i, i) for i in range(1, 6)]


def test_a_reader_dropped_half_way_closes_its_connection(server: Server) -> None:
    if server.name == "postgresql":
        query, alive = (
            "SELECT pg_backend_pid() AS pid, i FROM generate_series(1, 100000) AS i",
            "pg_stat_activity WHERE pid",
        )
    else:
        query, alive = (
            "SELECT connection_id() AS pid, seq AS i FROM seq_1_to_100000",
            "information_schema.processlist WHERE id",
        )
    reader = read_database(server.url, query=query, batch_rows=10)
    pid = reader.read_next_batch().column("pid")[0].as_py()
    assert server.run(f"SELECT count(*) FROM {alive} = {pid}")[0][0] == 1
    del reader
    gc.collect()
    for _ in range(50):  # the server notices a closed connection a moment later
        if server.run(f"SELECT count(*) FROM {alive} = {pid}")[0][0] == 0:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"connection {pid} is still open")


def test_an_empty_result_has_its_columns_and_no_rows(server: Server) -> None:
    name = server.table("e", "id int, label varchar(10)")
    table = read_database(server.url, table=name).read_all()
    assert (table.schema.names, table.num_rows) == (["__line", "id", "label"], 0)


@pytest.mark.parametrize(
    "statement",
    ["DELETE FROM {t}", "INSERT INTO {t} (id) VALUES (9)", "UPDATE {t} SET id = 9", "DROP TABLE {t}",
     "/* 掃除 */ TRUNCATE {t}", "/*!DELETE FROM {t}*/"],
)  # fmt: skip
def test_a_statement_that_writes_is_refused_and_changes_nothing(server: Server, statement: str) -> None:
    name = _members(server)
    with pytest.raises(InvalidInput) as e:
        read_database(server.url, query=statement.format(t=server.quote(name)))
    assert e.value.errors[0].field == "query"
    assert e.value.errors[0].reason.startswith("must be a SELECT: an import only reads, and this starts ")
    assert server.count(name) == 3


def test_a_select_that_writes_fails_on_the_server_in_its_read_only_transaction(server: Server) -> None:
    name = server.quote(_members(server))
    writes = f"tsunagu_writes_{uuid.uuid4().hex[:8]}"
    server.functions.append(writes)  # dropped by the fixture
    if server.name == "postgresql":
        body = f"LANGUAGE sql AS 'DELETE FROM {name}; SELECT 1'"
        queries = [f"SELECT {writes}()", f"WITH d AS (DELETE FROM {name} RETURNING id) SELECT * FROM d"]
    else:
        body = f"MODIFIES SQL DATA BEGIN DELETE FROM {name}; RETURN 1; END"
        queries = [f"SELECT {writes}()"]
    server.run(f"CREATE FUNCTION {writes}() RETURNS int {body}")
    for query in queries:
        with pytest.raises(InvalidInput) as e:
            read_database(server.url, query=query)
        assert e.value.errors[0].field == "query"
        assert e.value.errors[0].reason.startswith("writes to the database ("), e.value.errors[0].reason
        assert e.value.errors[0].reason.endswith("); an import only reads")
    assert server.count(name.strip('"`')) == 3


def test_an_unknown_table_is_named_with_the_tables_that_are_near(server: Server) -> None:
    name = server.table("members", "id int")
    with pytest.raises(InvalidInput) as e:
        read_database(server.url, table=name.capitalize())
    assert e.value.errors[0].field == "table"
    assert e.value.errors[0].reason.startswith(f"no table named {name.capitalize()!r}; did you mean {name!r}")
    with pytest.raises(InvalidInput) as e:
        read_database(server.url, table=f"nowhere_{uuid.uuid4().hex}")
    assert e.value.errors[0].reason.startswith("no table named 'nowhere_")


def test_a_table_name_is_quoted_never_pasted(server: Server) -> None:
    name = _members(server)
    hostile = f"{name}; DROP TABLE {name}"
    with pytest.raises(InvalidInput) as e:
        read_database(server.url, table=hostile)
    assert e.value.errors[0].field == "table"
    assert server.count(name) == 3
    schema = "public" if server.name == "postgresql" else "test"
    assert len(_rows(read_database(server.url, table=f"{schema}.{server.quote(name)}"))) == 3


def test_a_query_error_is_the_servers_message_naming_the_query(server: Server) -> None:
    with pytest.raises(InvalidInput) as e:
        read_database(server.url, query="SELECT nosuchcolumn FROM (SELECT 1 AS x) AS t")
    assert e.value.errors[0].field == "query"
    assert "nosuchcolumn" in e.value.errors[0].reason


def test_an_unreachable_server_names_the_url_without_its_password(server: Server) -> None:
    scheme = "postgres" if server.name == "postgresql" else "mariadb"
    with pytest.raises(InvalidInput) as e:
        read_database(f"{scheme}://someone:s%40cret-pw@127.0.0.1:1/test", table="t")
    assert e.value.errors[0].field == "url"
    assert e.value.errors[0].reason.startswith(f"cannot connect to {scheme}://someone:***@127.0.0.1:1/test: ")
    assert "cret-pw" not in str(e.value.to_dict())


def test_a_wrong_password_names_the_url_without_the_password(mariadb: Server) -> None:
    with pytest.raises(InvalidInput) as e:
        read_database("mysql://root:wrong-パスワード@127.0.0.1:3306/test", table="t")
    assert e.value.errors[0].field == "url"
    assert "Access denied for user 'root'" in e.value.errors[0].reason
    assert "wrong" not in e.value.message and "***" in e.value.message


def test_a_url_of_another_database_or_no_url_is_refused() -> None:
    for url in ["sqlite:///tmp/x.db", "127.0.0.1:5432", "oracle://u:secret@db/orcl"]:
        with pytest.raises(InvalidInput) as e:
            read_database(url, table="t")
        assert e.value.errors[0].field == "url"
        assert "secret" not in e.value.message


def test_exactly_one_of_table_and_query() -> None:
    with pytest.raises(InvalidInput) as e:
        read_database(PG_URL)
    assert e.value.errors[0].field == "table"
    with pytest.raises(InvalidInput) as e:
        read_database(PG_URL, table="t", query="SELECT 1")
    assert e.value.errors[0].field == "query"


def test_postgres_types_without_an_arrow_twin_read_as_text(postgres: Server) -> None:
    reader = read_database(
        postgres.url,
        query="SELECT avg(x) AS mean, 'NaN'::numeric(5,1) AS nan, '\\x00ff'::bytea AS raw,"
        " '1 day 2 hours'::interval AS span, '08:30:00'::time AS at, ARRAY['東京', '大阪'] AS cities,"
        " '{\"a\": [1, 2]}'::json AS doc,"
        " 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS id, 12345678901234567890.5::numeric(40,1) AS wide"
        " FROM (VALUES (1), (2)) AS v(x)",
    )
    assert [(f.name, f.type) for f in reader.schema][1:] == [
        ("mean", pa.float64()), ("nan", pa.decimal128(5, 1)), ("raw", pa.binary()), ("span", pa.string()),
        ("at", pa.time64("us")), ("cities", pa.string()), ("doc", pa.string()), ("id", pa.string()),
        ("wide", pa.float64()),
    ]  # fmt: skip
    assert _rows(reader) == [
        {"__line": 1, "mean": 1.5, "nan": None, "raw": b"\x00\xff", "span": "1 day 02:00:00",
         "at": datetime.time(8, 30), "cities": '["東京", "大阪"]', "doc": '{"a": [1, 2]}',
         "id": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "wide": 12345678901234567890.5}
    ]  # fmt: skip


def test_mysql_types_without_an_arrow_twin(mariadb: Server) -> None:
    name = mariadb.table(
        "m",
        "big bigint unsigned, price decimal(38,2) unsigned, huge decimal(50,10), raw blob, span time(6), flags bit(3),"
        " y year, label enum('金', '銀')",
    )
    mariadb.run(
        f"INSERT INTO {mariadb.quote(name)} VALUES (18446744073709551615, 123456789012345678901234567890123456.78,"
        " 1.5, x'00ff', '-838:59:59', b'101', 2024, '金'), (NULL, NULL, NULL, NULL, '01:02:03.5', NULL, NULL, NULL)"
    )
    reader = read_database(mariadb.url, table=name)
    assert [(f.name, f.type) for f in reader.schema][1:] == [
        ("big", pa.uint64()), ("price", pa.decimal128(38, 2)), ("huge", pa.float64()), ("raw", pa.binary()),
        ("span", pa.string()), ("flags", pa.int64()), ("y", pa.int64()), ("label", pa.string()),
    ]  # fmt: skip
    assert _rows(reader) == [
        {"__line": 1, "big": 2**64 - 1, "price": Decimal("123456789012345678901234567890123456.78"), "huge": 1.5,
         "raw": b"\x00\xff", "span": "-838:59:59", "flags": 5, "y": 2024, "label": "金"},
        {"__line": 2, "big": None, "price": None, "huge": None, "raw": None, "span": "01:02:03.500000", "flags": None,
         "y": None, "label": None},
    ]  # fmt: skip


def test_mysql_refuses_a_select_that_writes_a_server_file(mariadb: Server) -> None:
    with pytest.raises(InvalidInput) as e:
        read_database(mariadb.url, query="SELECT 1 INTO OUTFILE '/tmp/x.csv'")
    assert e.value.errors[0].field == "query"
    assert "writes a file on the database server" in e.value.errors[0].reason
