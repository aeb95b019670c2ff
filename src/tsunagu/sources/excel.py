"""Excel and OpenDocument spreadsheets (.xlsx, .xlsm, .xls, .ods) through python-calamine.

Values come out as text, the way a person sees them in the sheet, so the importer types
a spreadsheet exactly as it types a CSV file (Japanese dates and full-width digits in
text cells included): `3.0` → `"3"`, `true`/`false`, dates `2024-05-01`, date-times
`2024-05-01 08:26:00`, times `08:26:00`, durations in seconds; an empty cell is null.

`__line` is the row number Excel shows (1-based), counting the empty rows above the data.
Leading empty rows are skipped and trailing ones dropped; an empty row between data rows
stays (all nulls), so every row a person can point at is accounted for.

Memory: calamine reads a whole sheet's cells into its own (Rust) structures, and Python
values are made one row at a time from there; a sheet holds at most 1,048,576 rows, so
the batches (`batch_rows`) bound what Python holds.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import python_calamine as calamine

from tsunagu.core.errors import InvalidInput

from ._names import LINE, unique_names

__all__ = ["read_excel"]

SUFFIXES = (".xlsx", ".xlsm", ".xls", ".ods")
# Excel shows at most 15 significant digits, and a formula's result often carries binary
# noise past them: `=A2*1.1` on 100 yen is stored as 110.00000000000001. Printing what
# Excel shows keeps that an integer for the importer's typing instead of a reject.
_DIGITS = 15
_EXACT_INTEGER = 2**53  # past it a float no longer holds every integer

Cell = int | float | str | bool | datetime.date | datetime.datetime | datetime.time | datetime.timedelta


def read_excel(
    path: Path, *, sheet: str | int | None = None, header: bool | None = None, batch_rows: int = 50_000
) -> pa.RecordBatchReader:
    """The rows of one sheet as string columns after `__line`.

    `sheet` is a sheet's name or its position counted from 0 (default: the first sheet).
    `header=None` takes the first non-empty row as the header when its cells are all
    distinct text; otherwise columns are `column1`, `column2`, … An empty header cell
    becomes `columnN` (N its position), a repeated name `name_2`.
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be at least 1, not {batch_rows}")
    rows = _open_sheet(Path(path), sheet)
    numbered = enumerate(rows, start=1)
    first = next(((line, cells) for line, cells in numbered if not _is_empty(cells)), None)
    if first is None:  # an empty sheet: no columns, no rows
        return pa.RecordBatchReader.from_batches(pa.schema([(LINE, pa.int64())]), iter(()))
    cells = first[1]
    width = len(cells)
    if header is None:
        header = _looks_like_header(cells)
    if header:
        names = unique_names(_header_name(cells, i) for i in range(width))
        data: Iterator[tuple[int, list[Cell]]] = numbered
    else:
        names = unique_names(f"column{i + 1}" for i in range(width))
        data = _chain(first, numbered)
    schema = pa.schema([(LINE, pa.int64()), *((name, pa.string()) for name in names)])
    return pa.RecordBatchReader.from_batches(schema, _batches(schema, data, width, batch_rows))


def _open_sheet(path: Path, sheet: str | int | None) -> Iterator[list[Cell]]:
    if not path.exists():
        raise InvalidInput.for_field("file", f"no such file: {path}")
    if path.is_dir():
        raise InvalidInput.for_field("file", f"{path} is a folder, not a spreadsheet")
    try:
        workbook = calamine.CalamineWorkbook.from_path(path)
    except calamine.PasswordError:
        raise InvalidInput.for_field(
            "file", f"{path} is protected by a password; save it without one and import it again"
        ) from None
    except (calamine.CalamineError, OSError) as e:
        raise InvalidInput.for_field(
            "file", f"{path} is not a spreadsheet this reads ({', '.join(SUFFIXES)}): {e}"
        ) from None
    with workbook:  # the sheet keeps its cells; the file can close now
        name = _sheet_name(workbook.sheet_names, sheet, path)
        try:
            found = workbook.get_sheet_by_name(name)
        except calamine.CalamineError as e:  # a damaged sheet inside a readable file
            raise InvalidInput.for_field("file", f"sheet {name!r} of {path} cannot be read: {e}") from None
    return found.iter_rows()  # pads the empty rows above the data: the n-th row is Excel's row n


def _sheet_name(names: Sequence[str], sheet: str | int | None, path: Path) -> str:
    if not names:
        raise InvalidInput.for_field("file", f"{path} has no sheets")
    listed = ", ".join(repr(n) for n in names)
    if sheet is None:
        return names[0]
    if isinstance(sheet, int):
        if 0 <= sheet < len(names):
            return names[sheet]
        raise InvalidInput.for_field(
            "sheet", f"no sheet at position {sheet} (counted from 0); the {len(names)} sheets are {listed}"
        )
    if sheet not in names:
        raise InvalidInput.for_field("sheet", f"no sheet named {sheet!r}; the sheets are {listed}")
    return sheet


def _text(value: Cell) -> str | None:
    """A cell as the text a person reads in it; None for an empty cell."""
    if isinstance(value, str):
        return value or None  # calamine gives "" for an empty cell
    if isinstance(value, bool):  # before int: a bool is an int
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, datetime.datetime):  # before date: a datetime is a date
        return value.isoformat(sep=" ")
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return _number(value.total_seconds())
    return str(value)


def _number(value: float) -> str:
    if value.is_integer() and abs(value) < _EXACT_INTEGER:
        return str(int(value))
    text = format(value, f".{_DIGITS}g")
    shown = float(text)
    return str(int(shown)) if shown.is_integer() and abs(shown) < _EXACT_INTEGER else text


def _is_empty(cells: Sequence[Cell]) -> bool:
    return all(c == "" for c in cells)


def _looks_like_header(cells: Sequence[Cell]) -> bool:
    """Distinct non-empty text in every cell up to the row's last non-empty one."""
    used = list(cells)
    while used and used[-1] == "":
        used.pop()
    texts = [c.strip() if isinstance(c, str) else "" for c in used]
    return all(texts) and len(set(texts)) == len(texts)


def _header_name(cells: Sequence[Cell], i: int) -> str:
    text = _text(cells[i]) if i < len(cells) else None
    return text if text is not None and text.strip() else f"column{i + 1}"


def _chain(first: tuple[int, list[Cell]], rest: Iterator[tuple[int, list[Cell]]]) -> Iterator[tuple[int, list[Cell]]]:
    yield first
    yield from rest


def _batches(
    schema: pa.Schema, rows: Iterator[tuple[int, list[Cell]]], width: int, batch_rows: int
) -> Iterator[pa.RecordBatch]:
    lines: list[int] = []
    columns: list[list[str | None]] = [[] for _ in range(width)]

    def batch() -> pa.RecordBatch:
        arrays = [pa.array(lines, pa.int64()), *(pa.array(c, pa.string()) for c in columns)]
        out = pa.RecordBatch.from_arrays(arrays, schema=schema)
        lines.clear()
        for c in columns:
            c.clear()
        return out

    # Empty rows wait (as a count) until a data row follows them: trailing ones are dropped.
    blank_from, blanks = 0, 0
    for line, cells in rows:
        if _is_empty(cells):
            blank_from, blanks = (blank_from, blanks + 1) if blanks else (line, 1)
            continue
        for blank in range(blank_from, blank_from + blanks):
            lines.append(blank)
            for c in columns:
                c.append(None)
            if len(lines) == batch_rows:
                yield batch()
        blanks = 0
        texts = [_text(v) for v in cells]
        texts += [None] * (width - len(texts))  # a short row: the cells it lacks are empty
        lines.append(line)
        for c, text in zip(columns, texts, strict=False):
            c.append(text)
        if len(lines) == batch_rows:
            yield batch()
    if lines:
        yield batch()
