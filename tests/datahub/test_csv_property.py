"""Any CSV a spreadsheet or POS can write: every row is imported or rejected on the line
where it starts, and what is imported is what was written (hypothesis)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import Hub

_chars = st.sampled_from(list('ab 東京髙①,"\n\r\t;x0１-'))
_value = st.text(_chars, max_size=8)


@st.composite
def _files(draw: st.DrawFn) -> tuple[list[str], list[tuple[str, list[str] | None]], str, str]:
    width = draw(st.integers(1, 4))
    header = [f"c{i}" for i in range(width)]
    rows: list[tuple[str, list[str] | None]] = []
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["good", "good", "good", "short", "long", "blank"]))
        if kind == "blank":
            rows.append(("blank", None))
        else:
            n = width + (-1 if kind == "short" else 1 if kind == "long" else 0)
            if kind == "short" and n == 0:
                continue  # a one-column row with no field is a blank line
            values = draw(st.lists(_value, min_size=n, max_size=n))
            if kind == "long" and not values[-1]:
                values[-1] = "x"  # one empty field too many is a trailing delimiter, read as none
            rows.append((kind, values))
    return header, rows, draw(st.sampled_from(["\n", "\r\n"])), draw(st.sampled_from(["utf-8", "cp932", "utf-8-sig"]))


def _field(v: str) -> str:
    # quoted when it holds a delimiter, a quote or a line break (a bare CR too, as Excel and
    # every CRLF writer do; Python's csv module quotes only its own line terminator)
    return '"' + v.replace('"', '""') + '"' if any(c in v for c in ',"\r\n') else v


def _written(header: list[str], rows: list[tuple[str, list[str] | None]], eol: str) -> tuple[str, list[int]]:
    """The file's text and the line each row starts on."""
    out = [",".join(header) + eol]
    starts = []
    for kind, values in rows:
        starts.append("".join(out).count("\n") + 1)
        if kind == "blank":
            out.append(eol)
        elif len(values) == 1 and not values[0].strip(" "):  # type: ignore[arg-type,index]
            out.append(f'"{values[0]}"{eol}')  # type: ignore[index]  # else it reads as a blank line
        else:
            out.append(",".join(_field(v) for v in values) + eol)  # type: ignore[union-attr]
    return "".join(out), starts


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(f=_files())
def test_every_row_is_imported_or_rejected_on_its_line(tmp_path_factory: object, f: tuple) -> None:
    header, rows, eol, encoding = f
    text, starts = _written(header, rows, eol)
    directory = Path(tmp_path_factory.mktemp("csv"))  # type: ignore[attr-defined]
    hub = Hub(directory / "a.duckdb")
    try:
        r = hub.load("t", "t.csv", text.encode(encoding), types=dict.fromkeys(header, "text"), header=True,
                     delimiter=",")  # fmt: skip
        # a blank line is skipped, but in a file of one column it is an empty value (DuckDB's reading)
        good = [v if k == "good" else [""] for k, v in rows if k == "good" or (k == "blank" and len(header) == 1)]
        bad = [line for (k, _), line in zip(rows, starts, strict=True) if k in ("short", "long")]
        assert r.rows_in_source == len(good) + len(bad)
        assert (r.rows_imported, r.rows_rejected) == (len(good), len(bad))
        assert [j.line for j in r.rejects] == bad
        assert [list(row) for row in hub.rows("t")] == [[v if v != "" else None for v in g] for g in good]  # type: ignore[union-attr]
    finally:
        hub.con.close()
