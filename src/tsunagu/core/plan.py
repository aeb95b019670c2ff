"""Applying a set of definitions: validate them all, then say what changes, in an order that works.

A definition file (docs/segments.md#definition-files) holds definitions of every kind
(`core.kinds`: segments and computed traits); `tsunagu apply` and `POST /api/v1/apply`
send it as one list:

    [{"kind": "computed_trait", "name": "ltv", "event": "buy", "agg": "sum", "property": "revenue"},
     {"kind": "segment", "name": "vip", "description": "…", "rule": {"computed": "ltv", "op": "gte", "value": 100000}}]

`plan` is the one validation of a definition: it checks every definition against the
others and the workspace's current ones before anything is applied (all or nothing):
every problem is reported with the definition's index and the exact path
(`definitions[2].rule.all[0].op`). It answers one `Change` per definition, in the order
to apply them: each after what it reads (a kind's `references`), then in the registry's
kind order and the list's; deletes (`prune`) last, readers before what they read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import kinds, storable
from .errors import FieldError, InvalidInput
from .kinds import NAME
from .vocabulary import nearest

__all__ = ["ACTIONS", "NAME", "Change", "flatten_document", "json_diff", "plan", "readers_of"]

ACTIONS = ("create", "update", "unchanged", "delete")

Key = tuple[str, str]  # (kind, name)


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

    A file is either a list of definitions, each with its `kind`, or an object with one
    section per kind (`{"computed_traits": [...], "segments": [...]}`) whose items need
    no `kind`. The second list names each item's place in the file (`retail.yaml: segments[1]`).
    """
    prefix = f"{source}: " if source else ""
    unkept = storable.problems(data, source)
    if unkept:
        raise InvalidInput.for_fields(unkept)
    if isinstance(data, list):
        return list(data), [f"{prefix}[{i}]" for i in range(len(data))]
    sections = {k.section: k.name for k in kinds.KINDS.values()}
    if not isinstance(data, dict):
        why = f"must be a list of definitions or an object with {'/'.join(sections)}"
        raise InvalidInput.for_field(source, why)
    unknown = sorted(set(data) - set(sections))
    if unknown:
        near = nearest(unknown[0], list(sections)) if isinstance(unknown[0], str) else []
        why = f"is not a section: use {' and '.join(sections)}"
        why += f"; did you mean {near[0]!r}?" if near else ""
        raise InvalidInput.for_field(f"{prefix}{unknown[0]}", why)
    items: list[Any] = []
    places: list[str] = []
    for section, kind in sections.items():
        part = data.get(section) or []
        if not isinstance(part, list):
            raise InvalidInput.for_field(f"{prefix}{section}", "must be a list")
        for i, item in enumerate(part):
            items.append({"kind": kind, **item} if isinstance(item, dict) else item)
            places.append(f"{prefix}{section}[{i}]")
    return items, places


def body_of(item: Mapping[str, Any]) -> dict[str, Any]:
    """The definition's body as the pipeline keeps it: everything but kind and name."""
    return {k: v for k, v in item.items() if k not in ("kind", "name")}


def readers_of(current: Mapping[Key, Mapping[str, Any]], kind: str, name: str) -> list[Key]:
    """The definitions of `current` that read (kind, name)."""
    return sorted(key for key, body in current.items() if key[0] in kinds.KINDS and (kind, name) in _reads(key, body))


def plan(current: Mapping[Key, dict[str, Any]], items: list[Any], *, prune: bool = False) -> list[Change]:
    """Validate `items` (all of them) against `current` ((kind, name) -> body); the changes, in order."""
    errors: list[FieldError] = []
    wanted: dict[Key, tuple[int, dict[str, Any]]] = {}
    for i, item in enumerate(items):
        path = f"definitions[{i}]"
        if not isinstance(item, dict):
            errors.append(FieldError(path, "must be an object with kind and name", i))
            continue
        unkept = storable.problems(item, path)
        if unkept:
            errors += [FieldError(e.field, e.reason, i) for e in unkept]
            continue
        try:
            k = kinds.kind(item.get("kind"), f"{path}.kind")
        except InvalidInput as exc:
            errors += [FieldError(e.field, e.reason, i) for e in exc.errors]
            continue
        name = item.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            errors.append(
                FieldError(f"{path}.name", "must be 1-64 letters, digits, _ . - (starting with a letter or digit)", i)
            )
            continue
        if name in k.reserved:
            errors.append(
                FieldError(f"{path}.name", f"{name!r} is reserved: {k.endpoint}/{name} is another endpoint", i)
            )
            continue
        if (k.name, name) in wanted:
            other = wanted[(k.name, name)][0]
            errors.append(FieldError(f"{path}.name", f"{name!r} is already defined by definitions[{other}]", i))
            continue
        body = body_of(item)
        try:
            k.parse(name, body, path)
        except InvalidInput as exc:
            errors += [FieldError(e.field, e.reason, i) for e in exc.errors]
            continue
        wanted[(k.name, name)] = (i, body)
    # What the workspace will hold afterwards: what it reads must be in it.
    final: dict[Key, Mapping[str, Any]] = {
        key: body for key, body in current.items() if (prune is False or key in wanted) and key[0] in kinds.KINDS
    }
    final.update({key: body for key, (_, body) in wanted.items()})
    for (kind, _), (i, body) in wanted.items():
        for ref in kinds.KINDS[kind].references(body):
            target = (ref.kind, ref.name)
            if target not in final:
                what = kinds.KINDS[ref.kind].label if ref.kind in kinds.KINDS else ref.kind
                why = "which this apply deletes" if target in current else "which is not defined"
                near = nearest(ref.name, sorted(n for k, n in final if k == ref.kind))
                why += f"; did you mean {', '.join(repr(n) for n in near)}?" if near else ""
                errors.append(FieldError(f"definitions[{i}].{ref.path}", f"reads {what} {ref.name!r}, {why}", i))
    graph = {key: {r for r in _reads(key, body) if r in final} for key, body in final.items()}
    depth, cyclic = _depths(graph)
    for key in sorted(cyclic):
        if key in wanted:
            i, body = wanted[key]
            first = kinds.KINDS[key[0]].references(body)
            where = f".{first[0].path.split('.')[0]}" if first else ""
            why = f"{kinds.KINDS[key[0]].label} {key[1]!r} reads itself, through {cyclic[key]}"
            errors.append(FieldError(f"definitions[{i}]{where}", why, i))
    if errors:
        raise InvalidInput.for_fields(errors)

    rank = {name: n for n, name in enumerate(kinds.KINDS)}
    changes: list[Change] = []
    for (kind, name), (i, body) in sorted(wanted.items(), key=lambda kv: (depth[kv[0]], rank[kv[0][0]], kv[1][0])):
        before = current.get((kind, name))
        action = "create" if before is None else ("unchanged" if before == body else "update")
        changes.append(Change(action, kind, name, before, body, i, json_diff(before or {}, body)))
    if prune:
        gone = [key for key in current if key not in wanted]
        # readers first: by how deep they read now (what `final` keeps no longer counts)
        now_graph = {key: {r for r in _reads(key, body) if r in current} for key, body in current.items()}
        now_depth, _ = _depths(now_graph)
        gone.sort(key=lambda k: (-now_depth.get(k, 0), -rank.get(k[0], 0), k[1]))
        changes += [Change("delete", kind, name, current[(kind, name)], None) for kind, name in gone]
    return changes


def _reads(key: Key, body: Mapping[str, Any]) -> set[Key]:
    k = kinds.KINDS.get(key[0])
    return set() if k is None else {(r.kind, r.name) for r in k.references(body)}


def _depths(graph: Mapping[Key, set[Key]]) -> tuple[dict[Key, int], dict[Key, str]]:
    """How deep each definition reads (0: nothing defined), and the ones in a cycle, with it."""
    depth: dict[Key, int] = {}
    state: dict[Key, int] = {}  # 1: on the path, 2: done
    cyclic: dict[Key, str] = {}

    def visit(key: Key, trail: list[Key]) -> int:
        if state.get(key) == 2:
            return depth[key]
        if state.get(key) == 1:
            loop = [*trail[trail.index(key) :], key]
            for member in loop:
                cyclic.setdefault(member, " → ".join(name for _, name in loop))
            return 0
        state[key] = 1
        deep = 0
        for dep in sorted(graph.get(key, ())):
            if dep in graph:
                deep = max(deep, visit(dep, [*trail, key]) + 1)
        state[key] = 2
        depth[key] = deep
        return deep

    for key in sorted(graph):
        visit(key, [])
    return depth, cyclic


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
