"""The JSON Schema of definition files: segments, computed traits and the rule language.

Built from the same constants the parsers use (`COMPARISONS`, `STATS`, `WINDOWS`,
`AGGS`), so it cannot drift from them; served at `GET /api/v1/schema/definitions` and
kept in `docs/definitions.schema.json` (a test fails when that copy is stale). Editors
that read JSON Schema (VS Code's YAML extension, JetBrains) complete and check a file
from it. The parsers stay the judge: they also check what a schema cannot say well
(a segment that reads an undefined one, a cycle).
"""

from __future__ import annotations

from typing import Any

from .computed import AGGS, COMPUTED_WINDOWS
from .kinds import KINDS, NAME
from .segments import COMPARISONS, MAX_WINDOW_DAYS
from .userdata import STATS, WINDOWS

__all__ = ["DEFINITION_HEAD", "SCHEMA_ID", "aggregate_schema", "cases_schema", "definitions_schema"]

SCHEMA_ID = "https://tsunagu.dev/schemas/definitions.schema.json"

_NAME = {"type": "string", "pattern": NAME.pattern, "description": "1-64 letters, digits, _ . -"}
_PLAIN = {"type": ["string", "number", "boolean"]}
_PLAIN_OR_NULL = {"type": ["string", "number", "boolean", "null"]}
_NODES = ("all", "any", "not", "trait", "did", "first_did", "data", "last", "computed", "segment")
_DAYS = {"type": "integer", "minimum": 1, "maximum": MAX_WINDOW_DAYS}


def _comparison(subject: dict[str, Any], doc: str) -> dict[str, Any]:
    """A node that compares a value: `op` (default eq) and `value`, typed by the op."""
    return {
        "type": "object",
        "description": doc,
        "properties": {
            **subject,
            "op": {"enum": list(COMPARISONS), "default": "eq"},
            "value": {"description": "a number for gt/gte/lt/lte, a list for in, a plain value otherwise"},
        },
        "required": list(subject)[:1],
        "additionalProperties": False,
        "allOf": [
            {"if": {"properties": {"op": {"enum": ["gt", "gte", "lt", "lte"]}}, "required": ["op"]},
             "then": {"properties": {"value": {"type": "number"}}, "required": ["value"]}},
            {"if": {"properties": {"op": {"const": "in"}}, "required": ["op"]},
             "then": {"properties": {"value": {"type": "array", "items": _PLAIN}}, "required": ["value"]}},
            {"if": {"properties": {"op": {"enum": ["eq", "neq", "contains"]}}},
             "then": {"properties": {"value": _PLAIN}, "required": ["value"]}},
        ],
    }  # fmt: skip


_FILTERS = {
    "channel": {"type": "string", "description": "only on this channel: web, app, store, email, line, …"},
    "store_id": {"type": "string", "description": "only at this store"},
    "where": {
        "type": "object",
        "description": "property values the event must have (equality)",
        "additionalProperties": _PLAIN,
    },
}


def _rule_defs() -> dict[str, Any]:
    ref = {"$ref": "#/$defs/rule"}
    return {
        "rule": {
            "description": "a segment rule: exactly one node",
            "oneOf": [{"$ref": f"#/$defs/{n}"} for n in _NODES],
        },
        "all": {
            "type": "object",
            "description": "every rule holds",
            "properties": {"all": {"type": "array", "items": ref, "minItems": 1}},
            "required": ["all"],
            "additionalProperties": False,
        },
        "any": {
            "type": "object",
            "description": "at least one rule holds",
            "properties": {"any": {"type": "array", "items": ref, "minItems": 1}},
            "required": ["any"],
            "additionalProperties": False,
        },
        "not": {
            "type": "object",
            "description": "the rule does not hold",
            "properties": {"not": ref},
            "required": ["not"],
            "additionalProperties": False,
        },
        "trait": _comparison({"trait": {"type": "string", "minLength": 1}}, "a trait compared"),
        "did": {
            "type": "object",
            "description": "did the track event, `count` times (default: at least once) in the window",
            "properties": {
                "did": {"type": "string", "minLength": 1, "description": "the event name"},
                **_FILTERS,
                "within_days": {**_DAYS, "description": "the last N calendar days, today included (default: all time)"},
                "since": {"type": "string", "format": "date", "description": "from this day on (YYYY-MM-DD)"},
                "count": {
                    "type": "object",
                    "properties": {
                        "op": {"enum": ["eq", "gte", "gt", "lte", "lt"], "default": "gte"},
                        "value": {"type": "integer", "minimum": 0, "default": 1},
                    },
                    "additionalProperties": False,
                },
            },
            "required": ["did"],
            "additionalProperties": False,
            "not": {"required": ["within_days", "since"]},
        },
        "first_did": {
            "type": "object",
            "description": "did the event for the first time within the last `within_days` days",
            "properties": {"first_did": {"type": "string", "minLength": 1}, **_FILTERS, "within_days": _DAYS},
            "required": ["first_did", "within_days"],
            "additionalProperties": False,
        },
        "data": _comparison(
            {
                "data": {"type": "string", "minLength": 1, "description": "a user data field: buy, buy.revenue, …"},
                "stat": {"enum": list(STATS), "default": "count"},
                "window": {"enum": list(WINDOWS), "default": "all_time"},
            },
            "a statistic of a user data field in a window, compared",
        ),
        "last": _comparison(
            {
                "last": {"type": "string", "minLength": 1, "description": "an event name"},
                "property": {"type": "string", "minLength": 1},
            },
            "a property of the last such event, compared (data with stat last, all time)",
        )
        | {"required": ["last", "property"]},
        "computed": _comparison({"computed": {"type": "string", "minLength": 1}}, "a computed trait compared"),
        "segment": {
            "type": "object",
            "description": "is in another segment",
            "properties": {"segment": {"type": "string", "minLength": 1}},
            "required": ["segment"],
            "additionalProperties": False,
        },
    }


#: the fields every definition has
DEFINITION_HEAD: dict[str, Any] = {"name": _NAME, "description": {"type": "string"}}


def aggregate_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "a computed trait: an aggregate of the events that match, in a window",
        "properties": {
            "kind": {"const": "computed_trait"},
            **DEFINITION_HEAD,
            "event": {"type": "string", "minLength": 1, "description": "an event name, or * for any track event"},
            "agg": {"enum": list(AGGS)},
            "property": {"type": "string", "description": "the property path: revenue, items.category, $store_id"},
            "channel": {"type": "string", "description": "a channel, or several separated by commas (web,app)"},
            "store_id": _FILTERS["store_id"],
            "where": _FILTERS["where"],
            "window": {"enum": list(COMPUTED_WINDOWS), "default": "all_time"},
            "within_days": _DAYS,
        },
        "required": ["name", "event", "agg"],
        "additionalProperties": False,
        "not": {"required": ["window", "within_days"]},
    }


def cases_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "a computed trait: the value of the first case whose rule holds, else `else`",
        "properties": {
            "kind": {"const": "computed_trait"},
            **DEFINITION_HEAD,
            "cases": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {"when": {"$ref": "#/$defs/rule"}, "value": _PLAIN_OR_NULL},
                    "required": ["when", "value"],
                    "additionalProperties": False,
                },
            },
            "else": _PLAIN_OR_NULL,
        },
        "required": ["name", "cases"],
        "additionalProperties": False,
    }


def _definition_defs() -> dict[str, Any]:
    """Every kind's entries (`core.kinds`), and one definition of any kind."""
    out: dict[str, Any] = {}
    for k in KINDS.values():
        out |= k.schema()
    labels = [k.label for k in _file_order()]
    out["definition"] = {
        "description": f"{' or '.join(f'a {label}' for label in labels)}, with its kind",
        "oneOf": [{"allOf": [{"$ref": f"#/$defs/{k.definition_ref}"}], "required": ["kind"]} for k in _file_order()],
    }
    return out


def _file_order() -> list[Any]:
    """Kinds as the schema has always listed them: segments first."""
    return sorted(KINDS.values(), key=lambda k: k.name != "segment")


def definitions_schema() -> dict[str, Any]:
    """The schema of a definition file (YAML or JSON), of `POST /api/v1/apply` and of a rule."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "tsunagu definitions",
        "description": "Segments and computed traits, as `tsunagu apply` reads them (docs/segments.md). "
        "Either a list of definitions, each with its kind, or an object with computed_traits and segments.",
        "oneOf": [
            {"type": "array", "items": {"$ref": "#/$defs/definition"}},
            {
                "type": "object",
                "properties": {
                    k.section: {"type": "array", "items": {"$ref": f"#/$defs/{k.definition_ref}"}}
                    for k in KINDS.values()
                },
                "additionalProperties": False,
            },
            {
                "type": "object",
                "description": "the body of POST /api/v1/apply",
                "properties": {
                    "definitions": {"type": "array", "items": {"$ref": "#/$defs/definition"}},
                    "dry_run": {"type": "boolean"},
                    "prune": {"type": "boolean"},
                },
                "required": ["definitions"],
                "additionalProperties": False,
            },
        ],
        "$defs": {**_rule_defs(), **_definition_defs()},
    }
