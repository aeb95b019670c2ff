"""What a definition may hold: JSON that the log keeps and every reader gives back the same.

The admin API reads bodies with Python's `json`, which accepts more than JSON and more
than the stores keep. A definition holding one of these was accepted, then broke later:

* a lone surrogate (`"\\ud800"`): UTF-8 cannot encode it, so the log (msgpack) and DuckDB
  refuse it;
* NaN or Infinity: not JSON; the definition was logged, then every response showing it
  failed to encode;
* an integer outside -2**63 .. 2**64 - 1: msgpack cannot write it;
* nesting deeper than `MAX_DEPTH`: the parsers, the diff and the SQL compiler recurse.

`problems` finds them all (at most `MAX_PROBLEMS`), each with its path, without recursing.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import FieldError

__all__ = ["MAX_DEPTH", "MAX_PROBLEMS", "problems"]

MAX_DEPTH = 100
MAX_PROBLEMS = 20
_MIN_INT, _MAX_INT = -(2**63), 2**64 - 1


def _text_ok(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def problems(value: Any, path: str) -> list[FieldError]:
    """Every part of `value` that the stores cannot keep as it is, in document order."""
    found: list[FieldError] = []
    todo: list[tuple[Any, str, int]] = [(value, path, 0)]
    while todo and len(found) < MAX_PROBLEMS:
        node, where, depth = todo.pop()
        if isinstance(node, str):
            if not _text_ok(node):
                found.append(FieldError(where, "is not valid Unicode text (it holds a lone surrogate)"))
        elif node is None or isinstance(node, bool):
            continue
        elif isinstance(node, int):
            if not _MIN_INT <= node <= _MAX_INT:
                found.append(FieldError(where, "is a number too large to keep (beyond 64 bits)"))
        elif isinstance(node, float):
            if not math.isfinite(node):
                found.append(FieldError(where, "must be a finite number (NaN and Infinity are not JSON)"))
        elif isinstance(node, (dict, list)):
            if depth >= MAX_DEPTH:
                found.append(FieldError(where, f"is nested too deep (more than {MAX_DEPTH} levels)"))
                continue
            children: list[tuple[Any, str, int]] = []
            if isinstance(node, list):
                children = [(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(node)]
            else:
                for key, item in node.items():
                    if not isinstance(key, str):
                        found.append(FieldError(where, f"has a key that is not a string: {key!r}"))
                    elif not _text_ok(key):
                        found.append(FieldError(where, f"has a key that is not valid Unicode text: {key!r}"))
                    else:
                        children.append((item, f"{where}.{key}" if where else key, depth + 1))
            todo.extend(reversed(children))
        else:
            found.append(FieldError(where, f"is not a JSON value (a {type(node).__name__})"))
    return found[:MAX_PROBLEMS]
