"""The segment kind: a rule kept live per person (`core.segments`), members entering and leaving.

    {"kind": "segment", "name": "store_regulars", "description": "…",
     "rule": {"did": "buy", "channel": "store", "within_days": 90, "count": {"op": "gte", "value": 2}}}

Its form is a `Segment` (the rule compiled, with what it reads collected); its SQL form
is the same rule through `sql.segments.segment_query`. It reads computed traits and
other segments (`{"computed": …}`, `{"segment": …}` nodes); it needs a counter per
event condition and the user data fields its `data` nodes name.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .. import storable
from ..errors import FieldError, InvalidInput
from ..segments import Did, Segment, parse_rule
from ._paths import relative, under
from .kind import Need, Reference

if TYPE_CHECKING:
    from ..rulecheck import RuleWarning
    from ..vocabulary import Vocabulary

__all__ = ["SEGMENT", "SegmentKind"]

_FIELDS = ("rule", "description")


class SegmentKind:
    name = "segment"
    section = "segments"
    label = "segment"
    endpoint = "/api/v1/segments"
    reserved = frozenset({"overlap", "preview"})
    definition_ref = "segment_definition"

    def parse(self, name: str, body: Mapping[str, Any], path: str) -> Segment:
        unkept = storable.problems(body, path)  # keys and values that could not be stored or printed
        if unkept:
            raise relative(InvalidInput.for_fields(unkept), path)
        errors = [FieldError(under(path, key), "is not a field of a segment (rule, description)")
                  for key in sorted(set(body) - set(_FIELDS))]  # fmt: skip
        if "rule" not in body:
            errors.append(FieldError(under(path, "rule"), "a segment needs a rule"))
        if not isinstance(body.get("description", ""), str):
            errors.append(FieldError(under(path, "description"), "must be a string"))
        if errors:
            raise InvalidInput.for_fields(errors)
        try:
            return Segment(name, parse_rule(body["rule"], under(path, "rule")))
        except InvalidInput as exc:
            raise relative(exc, path) from None

    def references(self, body: Mapping[str, Any]) -> list[Reference]:
        out: list[Reference] = []
        for node_path, node in _nodes(body.get("rule"), "rule"):
            for key, kind in (("computed", "computed_trait"), ("segment", "segment")):
                target = node.get(key)
                if isinstance(target, str):
                    out.append(Reference(f"{node_path}.{key}", kind, target))
        return out

    def needs(self, form: Segment, body: Mapping[str, Any]) -> list[Need]:
        return rule_needs(form)

    def schema(self) -> dict[str, Any]:
        from ..schema import DEFINITION_HEAD

        return {
            "segment_definition": {
                "type": "object",
                "description": "a segment: a rule, kept live per person",
                "properties": {"kind": {"const": "segment"}, **DEFINITION_HEAD, "rule": {"$ref": "#/$defs/rule"}},
                "required": ["name", "rule"],
                "additionalProperties": False,
            },
        }

    def warnings(self, body: Mapping[str, Any], vocab: Vocabulary, prefix: str) -> list[RuleWarning]:
        from ..rulecheck import check_rule

        return check_rule(body.get("rule"), vocab, under(prefix, "rule"))


def rule_needs(reads: Segment) -> list[Need]:
    """The counters and user data fields a rule's conditions read (a segment's, a case's)."""
    out: dict[str, Need] = {}
    for cond in reads.counters:
        if cond.key not in out:
            where = dict(cond.where)
            spec = {"event": cond.event, "channel": cond.channel, "store_id": cond.store_id, "where": where}
            counter = Did(cond.event, cond.channel, cond.store_id, cond.where)  # what is counted, not the window
            out[cond.key] = Need("counter", cond.key, spec, counter)
    return [*out.values(), *(Need("data", f, {"field": f}) for f in sorted(reads.data))]


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


SEGMENT = SegmentKind()
