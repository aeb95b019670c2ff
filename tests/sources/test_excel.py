"""Excel sheets read as text rows, numbered as Excel numbers them.

Real workbooks written with openpyxl (and a hand-made OpenDocument file), read back
through python-calamine.
"""

from __future__ import annotations

import datetime
import zipfile
from pathlib import Path
from typing import Any

import openpyxl
import pyarrow as pa
import pytest

from tsunagu.core.errors import InvalidInput
from tsunagu.sources.excel import read_excel


def _workbook(path: Path, sheets: dict[str, dict[str, Any]]) -> Path:
    """A workbook whose sheets hold the given cells ({"B3": value})."""
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for title, cells in sheets.items():
        ws = wb.create_sheet(title)
        for ref, value in cells.items():
            ws[ref] = value
    wb.save(path)
    return path


def _rows(reader: pa.RecordBatchReader) -> list[dict[str, Any]]:
    return list(reader.read_all().to_pylist())


@pytest.fixture
def members(tmp_path: Path) -> Path:
    """Two empty rows, then a header with Japanese names at row 3; a second, header-less sheet."""
    return _workbook(
        tmp_path / "会員.xlsx",
        {
            "会員": {
                "A3": "会員番号", "B3": "氏名", "C3": "入会日", "D3": "購入額", "E3": "最終来店", "F3": "有効",
                "A4": 1001, "B4": "山田 太郎", "C4": datetime.date(2024, 5, 1), "D4": 3.0,
                "E4": datetime.datetime(2024, 5, 1, 8, 26, 3), "F4": True,
                "A5": 1002, "B5": "佐藤 花子", "C5": "令和6年5月1日", "D5": 2.5, "F5": False,
                "A6": 1003, "D6": 100 * 1.1,  # a formula's result: 110.00000000000001
                "A7": 12345678901234, "B7": "ｶﾀｶﾅ１２３", "D7": 1e20, "E7": datetime.time(8, 1, 2),
            },
            "来店": {"A1": 1, "B1": "渋谷店", "A2": 2, "B2": "新宿店", "C2": datetime.timedelta(minutes=90)},
        },
    )  # fmt: skip


def test_a_sheet_reads_as_text_named_as_in_the_file_with_excels_row_numbers(members: Path) -> None:
    reader = read_excel(members)
    names = ["会員番号", "氏名", "入会日", "購入額", "最終来店", "有効"]
    assert reader.schema == pa.schema([("__line", pa.int64()), *((n, pa.string()) for n in names)])
    assert _rows(reader) == [
        {"__line": 4, "会員番号": "1001", "氏名": "山田 太郎", "入会日": "2024-05-01", "購入額": "3",
         "最終来店": "2024-05-01 08:26:03", "有効": "true"},
        {"__line": 5, "会員番号": "1002", "氏名": "佐藤 花子", "入会日": "令和6年5月1日", "購入額": "2.5",
         "最終来店": None, "有効": "false"},
        {"__line": 6, "会員番号": "1003", "氏名": None, "入会日": None, "購入額": "110", "最終来店": None,
         "有効": None},
        {"__line": 7, "会員番号": "12345678901234", "氏名": "ｶﾀｶﾅ１２３", "入会日": None, "購入額": "1e+20",
         "最終来店": "08:01:02", "有効": None},
    ]  # fmt: skip


def test_a_sheet_is_chosen_by_name_or_by_position_from_zero(members: Path) -> None:
    by_name = _rows(read_excel(members, sheet="来店"))
    assert by_name == _rows(read_excel(members, sheet=1))
    # numbers in the first row: no header, and that row is data
    assert by_name == [
        {"__line": 1, "column1": "1", "column2": "渋谷店", "column3": None},
        {"__line": 2, "column1": "2", "column2": "新宿店", "column3": "5400"},  # 90 minutes, in seconds
    ]


def test_header_false_keeps_the_first_row_as_data_and_header_true_takes_it_as_names(tmp_path: Path) -> None:
    path = _workbook(tmp_path / "h.xlsx", {"s": {"A1": "店舗", "B1": "店舗", "D1": "地域", "A2": "渋谷", "E2": "x"}})
    assert _rows(read_excel(path, header=False))[0] == {
        "__line": 1, "column1": "店舗", "column2": "店舗", "column3": None, "column4": "地域", "column5": None
    }  # fmt: skip
    # a repeated name gets `_2`, an empty one its position
    assert read_excel(path, header=True).schema.names == ["__line", "店舗", "店舗_2", "column3", "地域", "column5"]
    # detected: repeated names are no header
    assert read_excel(path).schema.names[1] == "column1"


def test_a_header_with_empty_cells_after_its_last_name_is_still_a_header(tmp_path: Path) -> None:
    path = _workbook(tmp_path / "h.xlsx", {"s": {"A1": "商品", "B1": "価格", "A2": "りんご", "B2": 120, "C2": "備考"}})
    assert _rows(read_excel(path)) == [{"__line": 2, "商品": "りんご", "価格": "120", "column3": "備考"}]


def test_an_empty_row_between_rows_stays_and_trailing_empty_rows_are_dropped(tmp_path: Path) -> None:
    path = _ods(tmp_path / "s.ods", [["", ""], ["店舗", "売上"], ["渋谷", "1200"], ["", ""], ["新宿", ""], [""], [""]])
    assert _rows(read_excel(path)) == [
        {"__line": 3, "店舗": "渋谷", "売上": "1200"},
        {"__line": 4, "店舗": None, "売上": None},
        {"__line": 5, "店舗": "新宿", "売上": None},
    ]


def test_small_batches_stream_the_same_rows_with_one_schema(members: Path) -> None:
    batches = list(read_excel(members, batch_rows=2))
    assert [b.num_rows for b in batches] == [2, 2]
    assert len({b.schema for b in batches}) == 1
    assert pa.Table.from_batches(batches).to_pylist() == _rows(read_excel(members))
    three = list(read_excel(members, batch_rows=3))
    assert [b.num_rows for b in three] == [3, 1]
    assert [n for b in three for n in b.column("__line").to_pylist()] == [4, 5, 6, 7]


def test_an_empty_sheet_has_no_rows(tmp_path: Path) -> None:
    path = _workbook(tmp_path / "e.xlsx", {"空": {}})
    reader = read_excel(path)
    assert reader.schema.names == ["__line"]
    assert reader.read_all().num_rows == 0


def test_xlsm_and_ods_read_like_xlsx(tmp_path: Path) -> None:
    cells = {"A1": "店舗", "A2": "渋谷"}
    xlsm = _workbook(tmp_path / "macro.xlsm", {"s": cells})
    ods = _ods(tmp_path / "s.ods", [["店舗"], ["渋谷"]])
    assert _rows(read_excel(xlsm)) == _rows(read_excel(ods)) == [{"__line": 2, "店舗": "渋谷"}]


def test_a_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as e:
        read_excel(tmp_path / "ない.xlsx")
    assert e.value.errors[0].field == "file"
    assert e.value.errors[0].reason == f"no such file: {tmp_path / 'ない.xlsx'}"


def test_an_unknown_sheet_names_the_sheets_there_are(members: Path) -> None:
    with pytest.raises(InvalidInput) as e:
        read_excel(members, sheet="売上")
    assert e.value.to_dict()["error"]["errors"] == [
        {"field": "sheet", "reason": "no sheet named '売上'; the sheets are '会員', '来店'"}
    ]
    with pytest.raises(InvalidInput) as e:
        read_excel(members, sheet=2)
    assert e.value.errors[0].field == "sheet"
    assert e.value.errors[0].reason == "no sheet at position 2 (counted from 0); the 2 sheets are '会員', '来店'"


@pytest.mark.parametrize(
    ("name", "content"),
    [("export.xlsx", b"id,name\n1,a\n"), ("export.csv", b"id,name\n1,a\n"), ("broken.xlsx", b"PK\x03\x04junk")],
)
def test_a_file_that_is_no_spreadsheet_says_so(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InvalidInput) as e:
        read_excel(path)
    assert e.value.errors[0].field == "file"
    assert e.value.errors[0].reason.startswith(f"{path} is not a spreadsheet this reads (.xlsx, .xlsm, .xls, .ods): ")


def test_a_folder_is_no_spreadsheet(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as e:
        read_excel(tmp_path)
    assert e.value.message == f"file: {tmp_path} is a folder, not a spreadsheet"


def _ods(path: Path, rows: list[list[str]]) -> Path:
    """A minimal OpenDocument spreadsheet of text cells ("" is an empty text cell)."""
    cell = '<table:table-cell office:value-type="string"><text:p>{}</text:p></table:table-cell>'
    body = "".join("<table:table-row>" + "".join(cell.format(v) for v in row) + "</table:table-row>" for row in rows)
    ns = (
        'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"'
    )
    content = (
        f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {ns} office:version="1.2">'
        f'<office:body><office:spreadsheet><table:table table:name="s">{body}</table:table>'
        "</office:spreadsheet></office:body></office:document-content>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?><manifest:manifest '
        'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2">'
        '<manifest:file-entry manifest:full-path="/" '
        'manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/></manifest:manifest>'
    )
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet", compress_type=zipfile.ZIP_STORED)
        z.writestr("content.xml", content)
        z.writestr("META-INF/manifest.xml", manifest)
    return path
