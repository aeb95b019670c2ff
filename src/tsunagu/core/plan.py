"""Applying a set of definitions: validate them all, then say what changes, in an order that works.

A definition file (docs/segments.md#definition-files) holds segments and computed
traits; `tsunagu apply` and `POST /api/v1/apply` send it as one list:

    [{"kind": "computed_trait", "name": "ltv", "event": "buy", "agg": "sum", "property": "revenue"},
     {"kind": "segment", "name": "vip", "description": "…", "rule": {"computed": "ltv", "op": "gte", "value": 100000}}]

`plan` checks every definition against the others and the workspace's current ones
before anything is applied (all or nothing): every problem is reported with the
definition's index and the exact path (`definitions[2].rule.all[0].op`). It answers one
`Change` per definition, in the order to apply them: computed traits first (they read
nothing defined), then segments so that a segment comes after the segments it reads;
deletes (`prune`) last, readers before what they read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import storable
from .computed import parse_computed
from .errors import FieldError, InvalidInput
from .segments import Segment, parse_rule
from .vocabulary import nearest

__all__ = ["ACTIONS", "KINDS", "NAME", "RESERVED", "Change", "flatten_document", "json_diff", "plan"]

KINDS = ("computed_trait", "segment")
ACTIONS = ("create", "update", "unchanged", "delete")
#: what a definition may be called (the pipeline refuses other names the same way)
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_SEGMENT_FIELDS = {"kind", "name", "rule", "description"}
#: names the admin API's paths take for themselves (`/api/v1/segments/overlap`)
RESERVED = {"segment": ("overlap", "preview")}
#: the grouped file format's keys, and the kind each holds
_GROUPS = {"computed_traits": "computed_trait", "segments": "segment"}


@dataclass(frozen=True)
class Change:
    """What applying does to one definition."""

    action: str  # create | update | unchanged | delete
    kind: str
    name: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    index: int | None = None  # its position in the applied list (None: a delete)
    diff: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "kind": self.kind,
            "name": self.name,
            "index": self.index,
            "before": self.before,
            "after": self.after,
            "diff": self.diff,
        }


def flatten_document(data: Any, source: str = "") -> tuple[list[Any], list[str]]:
    """A definition file's definitions as one list, and where each came from.

    A file is either a list of definitions, each with its `kind`, or an object
    `{"computed_traits": [...], "segments": [...]}` whose items need no `kind`.
    The second list names each item's place in the file (`retail.yaml: segments[1]`).
    """
    prefix = f"{source}: " if source else ""
    unkept = storable.problems(data, source)
    if unkept:
        raise InvalidInput.for_fields(unkept)
    if isinstance(data, list):
        return list(data), [f"{prefix}[{i}]" for i in range(len(data))]
    if not isinstance(data, dict):
        raise InvalidInput.for_field(source, "must be a list of definitions or an object with segments/computed_traits")
    unknown = sorted(set(data) - set(_GROUPS))
    if unknown:
        raise InvalidInput.for_field(f"{prefix}{unknown[0]}", "is not a section: use computed_traits and segments")
    items: list[Any] = []
    places: list[str] = []
    for group, kind in _GROUPS.items():
        section = data.get(group) or []
        if not isinstance(section, list):
            raise InvalidInput.for_field(f"{prefix}{group}", "must be a list")
        for i, item in enumerate(section):
            items.append({"kind": kind, **item} if isinstance(item, dict) else item)
            places.append(f"{prefix}{group}[{i}]")
    return items, places


def body_of(item: dict[str, Any]) -> dict[str, Any]:
    """The definition's body as the pipeline keeps it: everything but kind and name."""
    return {k: v for k, v in item.items() if k not in ("kind", "name")}


def plan(current: Mapping[tuple[str, str], dict[str, Any]], items: list[Any], *, prune: bool = False) -> list[Change]:
    """Validate `items` (all of them) against `current` ((kind, name) -> body); the changes, in order."""
    errors: list[FieldError] = []
    wanted: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
    segments: dict[str, Segment] = {}  # parsed segments from the items
    for i, item in enumerate(items):
        path = f"definitions[{i}]"
        if not isinstance(item, dict):
            errors.append(FieldError(path, "must be an object with kind and name", i))
            continue
        unkept = storable.problems(item, path)
        if unkept:
            errors += [FieldError(e.field, e.reason, i) for e in unkept]
            continue
        kind, name = item.get("kind"), item.get("name")
        if kind not in KINDS:
            errors.append(FieldError(f"{path}.kind", f"{kind!r} is not one of {', '.join(KINDS)}", i))
            continue
        if not isinstance(name, str) or not NAME.match(name):
            errors.append(
                FieldError(f"{path}.name", "must be 1-64 letters, digits, _ . - (starting with a letter or digit)", i)
            )
            continue
        if name in RESERVED.get(kind, ()):
            where = f"/api/v1/{kind}s/{name}"
            errors.append(FieldError(f"{path}.name", f"{name!r} is reserved: {where} is another endpoint", i))
            continue
        if (kind, name) in wanted:
            other = wanted[(kind, name)][0]
            errors.append(FieldError(f"{path}.name", f"{name!r} is already defined by definitions[{other}]", i))
            continue
        found = _check(kind, name, item, path, i)
        if isinstance(found, list):
            errors += found
            continue
        if found is not None:
            segments[name] = found
        wanted[(kind, name)] = (i, body_of(item))
    # What the workspace will hold afterwards: what it reads must be in it.
    kept = {key for key in current if prune is False or key in wanted}
    final = kept | set(wanted)
    for (kind, name), (i, body) in wanted.items():
        if kind != "segment" or name not in segments:
            continue
        for node_path, node in _nodes(body["rule"], f"definitions[{i}].rule"):
            for key, target_kind in (("computed", "computed_trait"), ("segment", "segment")):
                target = node.get(key)
                if isinstance(target, str) and (target_kind, target) not in final:
                    what = "computed trait" if key == "computed" else "segment"
                    why = "which this apply deletes" if (target_kind, target) in current else "which is not defined"
                    near = nearest(target, sorted(n for k, n in final if k == target_kind))
                    why += f"; did you mean {', '.join(repr(n) for n in near)}?" if near else ""
                    errors.append(FieldError(f"{node_path}.{key}", f"reads {what} {target!r}, {why}", i))
    reads = {name: _reads(body) for (kind, name), body in current.items() if kind == "segment"}
    reads.update({name: set(seg.segments) for name, seg in segments.items()})
    reads = {name: deps for name, deps in reads.items() if ("segment", name) in final}
    order, cyclic = _topological(reads)
    for name in sorted(cyclic):
        if ("segment", name) in wanted:
            i = wanted[("segment", name)][0]
            why = f"segment {name!r} reads itself, through {cyclic[name]}"
            errors.append(FieldError(f"definitions[{i}].rule", why, i))
    if errors:
        raise InvalidInput.for_fields(errors)

    changes: list[Change] = []
    position = {name: n for n, name in enumerate(order)}
    ordered = sorted(wanted.items(), key=lambda kv: (kv[0][0] == "segment", position.get(kv[0][1], 0), kv[1][0]))
    for (kind, name), (i, body) in ordered:
        before = current.get((kind, name))
        action = "create" if before is None else ("unchanged" if before == body else "update")
        changes.append(Change(action, kind, name, before, body, i, json_diff(before or {}, body)))
    if prune:
        gone = [key for key in current if key not in wanted]
        # readers first: segments in reverse dependency order (as they read now: what
        # `final` keeps no longer counts), then computed traits
        now_order, _ = _topological({name: _reads(body) for (kind, name), body in current.items() if kind == "segment"})
        now_position = {name: n for n, name in enumerate(now_order)}
        gone.sort(key=lambda k: (k[0] == "computed_trait", -now_position.get(k[1], -1), k[1]))
        changes += [Change("delete", kind, name, current[(kind, name)], None) for kind, name in gone]
    return changes


def _check(kind: str, name: str, item: dict[str, Any], path: str, index: int) -> Segment | list[FieldError] | None:
    """Parse one definition: its parsed segment (None for a computed trait), or its errors."""
    try:
        if kind == "computed_trait":
            parse_computed({k: v for k, v in item.items() if k != "kind"}, path)
            return None
        errors = [
            FieldError(f"{path}.{key}", "is not a field of a segment (rule, description)", index)
            for key in sorted(set(item) - _SEGMENT_FIELDS)
        ]
        if "rule" not in item:
            errors.append(FieldError(f"{path}.rule", "a segment needs a rule", index))
        if not isinstance(item.get("description", ""), str):
            errors.append(FieldError(f"{path}.description", "must be a string", index))
        if errors:
            return errors
        return Segment(name, parse_rule(item["rule"], f"{path}.rule"))
    except InvalidInput as exc:
        return [FieldError(e.field, e.reason, index) for e in exc.errors]


def _nodes(rule: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every node of a (valid) rule, with its path."""
    if not isinstance(rule, dict):
        return
    yield path, rule
    for key in ("all", "any"):
        if isinstance(rule.get(key), list):
            for n, child in enumerate(rule[key]):
                yield from _nodes(child, f"{path}.{key}[{n}]")
    if "not" in rule:
        yield from _nodes(rule["not"], f"{path}.not")


def _reads(body: dict[str, Any]) -> set[str]:
    return {node["segment"] for _, node in _nodes(body.get("rule"), "rule") if isinstance(node.get("segment"), str)}


def _topological(reads: dict[str, set[str]]) -> tuple[list[str], dict[str, str]]:
    """Segment names, each after the ones it reads; and the ones in a cycle, with the cycle."""
    order: list[str] = []
    state: dict[str, int] = {}  # 1: on the path, 2: done
    cyclic: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == 2 or name not in reads:
            return
        if state.get(name) == 1:
            loop = [*trail[trail.index(name) :], name]
            for member in loop:
                cyclic.setdefault(member, " → ".join(loop))
            return
        state[name] = 1
        for dep in sorted(reads[name]):
            visit(dep, [*trail, name])
        state[name] = 2
        order.append(name)

    for name in sorted(reads):
        visit(name, [])
    return order, cyclic


def json_diff(before: Any, after: Any, path: str = "") -> list[dict[str, Any]]:
    """What changed between two JSON values, leaf by leaf: [{path, before?, after?}].

    Objects are compared key by key and lists of the same length item by item, so a
    changed window in a long rule reads `rule.all[1].within_days: 90 → 30`.
    """
    if before == after:
        return []
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[dict[str, Any]] = []
        for key in [*before, *(k for k in after if k not in before)]:
            sub = f"{path}.{key}" if path else str(key)
            if key not in after:
                out.append({"path": sub, "before": before[key]})
            elif key not in before:
                out.append({"path": sub, "after": after[key]})
            else:
                out += json_diff(before[key], after[key], sub)
        return out
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        out = []
        for n, (b, a) in enumerate(zip(before, after, strict=True)):
            out += json_diff(b, a, f"{path}[{n}]")
        return out
    return [{"path": path, "before": before, "after": after}]
