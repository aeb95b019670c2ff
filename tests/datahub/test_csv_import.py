"""CSV/TSV imports: encodings Japanese systems write, broken rows kept with their line,
Japanese numbers and dates typed, nothing lost."""

from __future__ import annotations

import datetime as dt

import pytest

from tsunagu.core.errors import InvalidInput

from .conftest import Hub

POS = (
    "会員番号,氏名,購入日時,金額,店舗\r\n"
    '0001,髙橋①,2024/5/1 8:26,"1,234",渋谷\r\n'
    '0002,"山田\r\n太郎",2024/5/2 19:05,１２３４,新宿\r\n'
    "0003,壊れた行\r\n"
    "\r\n"
    "0004,佐藤,2024/05/03 10:00,￥500,池袋\r\n"
    "0005,鈴木,2024/5/4 12:00,12円,渋谷,余分\r\n"
)


def test_a_shift_jis_pos_export_is_read_with_every_reject_on_its_line(hub: Hub) -> None:
    r = hub.load("receipts", "pos.csv", POS.encode("cp932"))
    assert r.encoding == "cp932"
    assert [c for c, _ in r.columns] == ["会員番号", "氏名", "購入日時", "金額", "店舗"]
    assert dict(r.columns) == {
        "会員番号": "text",
        "氏名": "text",
        "購入日時": "timestamp",
        "金額": "integer",
        "店舗": "text",
    }
    # line 1 header, 2, 3-4 (a quoted line break), 5 the short row, 6 blank, 7, 8 the long row
    assert [(j.line, j.column) for j in r.rejects] == [(5, None), (8, None)]
    assert r.rejects[0].reason == "5 fields expected, 2 found" and r.rejects[0].text == "0003,壊れた行"
    assert "6 found" in r.rejects[1].reason
    assert (r.rows_in_source, r.rows_imported, r.rows_rejected) == (5, 3, 2)
    assert hub.rows("receipts") == [
        ("0001", "髙橋①", dt.datetime(2024, 5, 1, 8, 26), 1234, "渋谷"),
        ("0002", "山田\r\n太郎", dt.datetime(2024, 5, 2, 19, 5), 1234, "新宿"),
        ("0004", "佐藤", dt.datetime(2024, 5, 3, 10, 0), 500, "池袋"),
    ]


@pytest.mark.parametrize(
    ("encoding", "data", "read_as"),
    [
        ("auto", "id,名前\n1,東京\n".encode(), "utf-8"),
        ("auto", "\ufeffid,名前\n1,東京\n".encode(), "utf-8-sig"),
        ("auto", "id,名前\n1,東京\n".encode("cp932"), "cp932"),
        ("shift_jis", "id,名前\n1,東京\n".encode("shift_jis"), "cp932"),
        ("Shift-JIS", "id,名前\n1,東京\n".encode("cp932"), "cp932"),
        ("utf-8", "\ufeffid,名前\n1,東京\n".encode(), "utf-8-sig"),
        ("auto", "id,名前\n1,東京\n".encode("utf-16"), "utf-16"),
        ("euc-jp", "id,名前\n1,東京\n".encode("euc-jp"), "euc-jp"),
    ],
)
def test_encodings_are_detected_or_named(hub: Hub, encoding: str, data: bytes, read_as: str) -> None:
    r = hub.load("t", "t.csv", data, encoding=encoding)
    assert r.encoding == read_as
    assert [c for c, _ in r.columns] == ["id", "名前"]
    assert hub.rows("t") == [(1, "東京")]


def test_bytes_not_in_the_encoding_reject_their_row_instead_of_changing_it(hub: Hub) -> None:
    data = "id,名前\n1,東京\n".encode("cp932") + b"2,\x82\n" + "3,大阪\n".encode("cp932")
    r = hub.load("t", "t.csv", data, encoding="cp932")
    assert r.rows_imported == 2 and [(j.line, j.column) for j in r.rejects] == [(3, "名前")]
    assert "not cp932" in r.rejects[0].reason
    assert hub.rows("t") == [(1, "東京"), (3, "大阪")]


def test_japanese_numbers_and_dates_are_typed_and_ids_with_leading_zeros_stay_text(hub: Hub) -> None:
    csv = (
        "会員ID,ポイント,単価,誕生日,登録日時,会員,電話\n"
        '000123,１，２３４,"¥1,234.5",令和元年5月1日,2024-05-01T08:26:00+09:00,はい,090-1234-5678\n'
        "000124,-12,３．５,平成6年12月31日,2024/5/1 23:59:59,いいえ,03-1234-5678\n"
        "000125,,,1990/1/2,2024年5月1日 8時26分,true,\n"
    )
    r = hub.load("m", "m.csv", csv.encode())
    assert dict(r.columns) == {
        "会員ID": "text", "ポイント": "integer", "単価": "number", "誕生日": "date", "登録日時": "timestamp",
        "会員": "boolean", "電話": "text",
    }  # fmt: skip
    assert hub.rows("m") == [
        ("000123", 1234, 1234.5, dt.date(2019, 5, 1), dt.datetime(2024, 5, 1, 8, 26), True, "090-1234-5678"),
        ("000124", -12, 3.5, dt.date(1994, 12, 31), dt.datetime(2024, 5, 1, 23, 59, 59), False, "03-1234-5678"),
        ("000125", None, None, dt.date(1990, 1, 2), dt.datetime(2024, 5, 1, 8, 26), True, None),
    ]


def test_a_named_type_rejects_the_values_that_do_not_fit_with_line_and_column(hub: Hub) -> None:
    csv = 'id,price,note\n1,100,"two\nlines"\n2,abc,x\n3,300,y\n4,1.5,z\n'
    r = hub.load("p", "p.csv", csv.encode(), types={"price": "integer"})
    assert [(j.line, j.column, j.reason) for j in r.rejects] == [
        (4, "price", "'abc' is not an integer"),
        (6, "price", "'1.5' is not an integer"),
    ]
    assert r.rows_imported == 2 and hub.rows("p") == [(1, 100, "two\nlines"), (3, 300, "y")]
    # inferred, the column would have been text: every value has to fit a type
    assert dict(hub.load("q", "q.csv", csv.encode()).columns)["price"] == "text"


@pytest.mark.parametrize(
    ("name", "text", "options", "delimiter"),
    [
        ("a.tsv", "id\t名前\n1\t東京\n", {}, "\t"),
        ("a.csv", "id;名前\n1;東京\n", {}, ";"),
        ("a.csv", "id|名前\n1|東京\n", {}, "|"),
        ("a.txt", "id\t名前\n1\t東京\n", {"format": "tsv"}, "\t"),
        ("a.csv", "id\t名前\n1\t東京\n", {"delimiter": "\t"}, "\t"),
    ],
)
def test_the_delimiter_is_what_the_file_uses(hub: Hub, name: str, text: str, options: dict, delimiter: str) -> None:
    r = hub.load("t", name, text.encode(), **options)
    assert hub.rows("t") == [(1, "東京")], delimiter
    assert r.rows_imported == 1


def test_a_file_without_a_header_gets_numbered_columns(hub: Hub) -> None:
    r = hub.load("t", "t.csv", b"1,2024/5/1,100\n2,2024/5/2,200\n")
    assert [c for c, _ in r.columns] == ["column1", "column2", "column3"] and r.rows_imported == 2
    r = hub.load("u", "u.csv", "名前,都市\n山田,東京\n".encode(), header=False)
    assert r.rows_imported == 2 and hub.rows("u")[0] == ("名前", "都市")


def test_empty_and_duplicate_header_names_are_made_usable(hub: Hub) -> None:
    r = hub.load("t", "t.csv", "名前,,名前,Name,name\na,b,c,d,e\n".encode(), header=True)
    assert [c for c, _ in r.columns] == ["名前", "column2", "名前_2", "Name", "name_2"]


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"mode": "merge"}, "mode"),
        ({"mode": "upsert"}, "key"),
        ({"encoding": "klingon"}, "encoding"),
        ({"types": {"id": "money"}}, "types.id"),
        ({"types": {"nope": "text"}}, "types.nope"),
        ({"mode": "upsert", "key": ("nope",)}, "key"),
        ({"delimiter": "::"}, "delimiter"),
    ],
)
def test_bad_options_are_refused_naming_the_field(hub: Hub, options: dict, field: str) -> None:
    with pytest.raises(InvalidInput) as e:
        hub.load("t", "t.csv", b"id,name\n1,a\n", **options)
    assert field in [f.field for f in e.value.errors]


@pytest.mark.parametrize(
    ("table", "data"), [("Bad-Name", b"a\n1\n"), ("events", b"a\n1\n"), ("t", b""), ("t", b"\n\n")]
)
def test_bad_tables_and_empty_files_are_refused(hub: Hub, table: str, data: bytes) -> None:
    with pytest.raises(InvalidInput):
        hub.load(table, "t.csv", data)


def test_a_column_left_text_by_a_few_values_comes_with_a_hint(hub: Hub) -> None:
    csv = "id,points\n" + "".join(f"{i},{i * 10}\n" for i in range(9)) + "9,たくさん\n"
    r = hub.load("t", "t.csv", csv.encode())
    assert dict(r.columns)["points"] == "text"
    assert r.hints == [{"column": "points", "type": "integer", "fits": 9, "values": 10}]
    assert hub.load("u", "u.csv", b"id,name\n1,a\n2,b\n").hints == []
