"""CSV and TSV files, in any encoding Japanese systems write, made ready for DuckDB.

`stage` reads the file once, in chunks (memory stays bounded whatever its size):

* **encoding**: a BOM says UTF-8 or UTF-16; else `auto` reads UTF-8 and, at the first
  byte that is not, starts over as CP932 (Shift_JIS as Windows, POS and CRM exports write
  it: NEC and IBM extensions, ①, ㈱, 髙). Text that is not UTF-8 is written out as UTF-8
  beside the import (DuckDB reads UTF-8 only here: its encodings extension cannot be
  downloaded); a UTF-8 file is read where it is. Bytes that are not in the named encoding
  become U+FFFD and their rows are rejected by the importer, never silently changed;
* **line breaks inside quoted fields**: the lines whose break is inside quotes are listed
  (a vectorised quote-parity scan), so a row's record number becomes the line an editor
  shows (`core.datahub.LineMap`);
* **delimiter and header**, when not given, from the first records.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.datahub import LineMap, column_names
from ..core.errors import InvalidInput

__all__ = ["Staged", "stage"]

CHUNK = 4 << 20
_CANDIDATES = (",", "\t", ";", "|")
_LOOKS_LIKE_VALUE = re.compile(r"[\s¥￥$+\-－]*[\d０-９][\d０-９,，.．/／:：\-－\s年月日時分秒]*[円%]?")
Progress = Callable[[int, int], None]  # (bytes read, bytes in all)


@dataclass
class Staged:
    path: Path  # UTF-8 text for DuckDB: the file itself when it was UTF-8 already
    encoding: str  # what the file was read as
    delimiter: str
    header: bool
    columns: list[str]
    lines: LineMap
    records: int  # records in the file, the header included, blank lines not
    blank_lines: list[int]  # lines with nothing on them, outside quotes (DuckDB skips them)
    replaced: int  # characters that were not in `encoding` (U+FFFD now)
    temporary: bool  # `path` is a copy to delete after the import

    @property
    def rows(self) -> int:
        return self.records - (1 if self.header else 0)


def _bom(head: bytes) -> str | None:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return None


def _is_utf8(path: Path) -> bool:
    dec = codecs.getincrementaldecoder("utf-8")("strict")
    with path.open("rb") as f:
        try:
            while chunk := f.read(CHUNK):
                dec.decode(chunk)
            dec.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


class _Scan:
    """Counts lines, blank lines and the line breaks inside quotes over UTF-8 chunks."""

    def __init__(self) -> None:
        self.lines = 0  # line breaks seen
        self.quoted = 0  # quote characters seen (odd: inside a quoted field)
        self.embedded: list[int] = []  # lines whose break is inside quotes
        self.blank: list[int] = []  # empty lines outside quotes (DuckDB skips them)
        self.since = 0  # bytes after the last line break
        self.last_byte = 10

    def feed(self, data: bytes) -> None:
        if not data:
            return
        a = np.frombuffer(data, dtype=np.uint8)
        nl = np.flatnonzero(a == 10)
        q = np.flatnonzero(a == 34)
        if len(nl):
            inside = ((self.quoted + np.searchsorted(q, nl)) & 1).astype(bool)
            if inside.any():
                self.embedded.extend((self.lines + 1 + np.flatnonzero(inside)).tolist())
            # nothing (or a lone \r) since the last break, outside quotes: a blank line
            gap = np.diff(nl, prepend=-1 - self.since)
            before = np.where(nl > 0, a[np.maximum(nl - 1, 0)], self.last_byte)
            blank = (gap == 1) | ((gap == 2) & (before == 13))
            if blank.any():
                self.blank.extend((self.lines + 1 + np.flatnonzero(blank & ~inside)).tolist())
            self.lines += len(nl)
            self.since = len(a) - 1 - int(nl[-1])
        else:
            self.since += len(a)
        self.quoted += len(q)
        self.last_byte = int(a[-1])

    def records(self) -> int:
        lines = self.lines + (1 if self.since else 0)  # a last line without a break
        return lines - len(self.embedded) - len(self.blank)


def _first_records(text: str, delimiter: str, n: int = 20) -> list[list[str]]:
    rows: list[list[str]] = []
    try:
        for row in csv.reader(io.StringIO(text), delimiter=delimiter):
            if row:
                rows.append(row)
            if len(rows) >= n:
                break
    except csv.Error:
        pass
    return rows[:-1] if len(rows) > 1 and not text.endswith("\n") else rows  # the sample's cut last line


def _delimiter(text: str) -> str:
    best, score = ",", (0.0, 0)
    for d in _CANDIDATES:
        rows = _first_records(text, d)
        if not rows or len(rows[0]) < 2:
            continue
        same = sum(len(r) == len(rows[0]) for r in rows) / len(rows)
        if (same, len(rows[0])) > score:
            best, score = d, (same, len(rows[0]))
    return best


def _has_header(first: list[str]) -> bool:
    cells = [c.strip() for c in first]
    return (
        all(cells)
        and len({c.lower() for c in cells}) == len(cells)
        and not any(_LOOKS_LIKE_VALUE.fullmatch(c) for c in cells)
    )


def stage(
    source: Path,
    workdir: Path,
    *,
    encoding: str = "auto",
    delimiter: str | None = None,
    header: bool | None = None,
    progress: Progress | None = None,
) -> Staged:
    """Read `source` once and say how DuckDB is to read it (see the module's docstring)."""
    try:
        size = source.stat().st_size
        with source.open("rb") as f:
            head = f.read(4)
    except OSError as e:
        raise InvalidInput.for_field("file", f"cannot read {source.name}: {e.strerror or e}") from None
    bom = _bom(head)
    if encoding == "auto":
        encoding = bom or ("utf-8" if _is_utf8(source) else "cp932")
    elif encoding == "utf-8" and bom == "utf-8-sig":
        encoding = "utf-8-sig"
    scan = _Scan()
    replaced = 0
    sample = ""
    passthrough = encoding in ("utf-8", "utf-8-sig")  # DuckDB reads UTF-8 as it is, a BOM too
    target = source if passthrough else workdir / (source.name + ".utf8.csv")
    dec = codecs.getincrementaldecoder(encoding)("replace")
    done = 0
    out = None if passthrough else target.open("wb")
    try:
        with source.open("rb") as f:
            while True:
                chunk = f.read(CHUNK)
                final = not chunk
                text = dec.decode(chunk, final=final)
                if text:
                    if len(sample) < 65536:
                        sample += text[: 65536 - len(sample)]
                    if "\ufffd" in text and not passthrough:
                        replaced += text.count("\ufffd")
                    data = chunk if passthrough else text.encode("utf-8")
                    if out is not None:
                        out.write(data)
                    scan.feed(data)
                done += len(chunk)
                if progress is not None:
                    progress(done, size)
                if final:
                    break
    finally:
        if out is not None:
            out.close()
    sample = sample.lstrip("\ufeff")
    if not sample.strip():
        if not passthrough:
            target.unlink(missing_ok=True)
        raise InvalidInput.for_field("file", f"{source.name} is empty")
    if delimiter is None:
        delimiter = "\t" if source.suffix.lower() in (".tsv", ".tab") else _delimiter(sample)
    first = _first_records(sample, delimiter, 1)
    if not first:
        raise InvalidInput.for_field("file", f"{source.name}: no record could be read in its first 64 KB")
    if header is None:
        header = _has_header(first[0])
    columns = column_names(first[0]) if header else [f"column{i}" for i in range(1, len(first[0]) + 1)]
    return Staged(
        target, encoding, delimiter, header, columns, LineMap(scan.embedded), scan.records(), scan.blank,
        replaced, not passthrough,
    )  # fmt: skip
