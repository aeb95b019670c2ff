"""The definitions' JSON Schema: current in docs/, valid, and agreeing with the parsers on the docs' examples."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tsunagu.core.computed import RETAIL
from tsunagu.core.errors import InvalidInput
from tsunagu.core.plan import flatten_document, plan
from tsunagu.core.schema import definitions_schema
from tsunagu.core.segments import parse_rule

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_FILE = ROOT / "docs" / "definitions.schema.json"
RETAIL_NOW = {("computed_trait", d["name"]): {k: v for k, v in d.items() if k != "name"} for d in RETAIL}
_VALIDATOR = jsonschema.Draft202012Validator(definitions_schema())


def _rule_validator() -> jsonschema.Draft202012Validator:
    schema = definitions_schema()
    return jsonschema.Draft202012Validator({"$defs": schema["$defs"], "$ref": "#/$defs/rule"})


def test_docs_hold_the_current_schema() -> None:
    text = json.dumps(definitions_schema(), indent=2, ensure_ascii=False) + "\n"
    if not SCHEMA_FILE.exists() or SCHEMA_FILE.read_text(encoding="utf-8") != text:
        SCHEMA_FILE.write_text(text, encoding="utf-8")
        pytest.fail(f"{SCHEMA_FILE.relative_to(ROOT)} was stale and has been rewritten: commit it")


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(definitions_schema())


def _blocks(path: Path) -> list[tuple[str, Any]]:
    text = path.read_text(encoding="utf-8")
    out = []
    for lang, body in re.findall(r"```(json|yaml)\n(.*?)```", text, re.S):
        out.append((lang, json.loads(body) if lang == "json" else yaml.safe_load(body)))
    return out


def _documents() -> list[tuple[str, Any]]:
    found = [("examples/retail.yaml", yaml.safe_load((ROOT / "examples" / "retail.yaml").read_text()))]
    for doc in ("segments.md", "userdata.md"):
        for n, (_, data) in enumerate(_blocks(ROOT / "docs" / doc)):
            found.append((f"docs/{doc} block {n}", data))
    return found


@pytest.mark.parametrize(("where", "data"), _documents(), ids=[w for w, _ in _documents()])
def test_every_example_is_valid_for_the_schema_and_the_parsers(where: str, data: Any) -> None:
    is_rule = isinstance(data, dict) and not ({"computed_traits", "segments", "definitions"} & set(data))
    if is_rule:
        errors = list(_rule_validator().iter_errors(data))
        assert not errors, f"{where}: {errors[0].message}"
        parse_rule(data)
        return
    if isinstance(data, dict) and "definitions" in data:
        assert not list(_VALIDATOR.iter_errors(data))
        return
    errors = list(_VALIDATOR.iter_errors(data))
    assert not errors, f"{where}: {errors[0].message}"
    items, _ = flatten_document(data)
    # the docs' files may read segments and traits of the example file and the retail set
    known = dict(RETAIL_NOW)
    for ex in flatten_document(yaml.safe_load((ROOT / "examples" / "retail.yaml").read_text()))[0]:
        known[(ex["kind"], ex["name"])] = {k: v for k, v in ex.items() if k not in ("kind", "name")}
    plan(known, items)


@pytest.mark.parametrize(
    "rule",
    [
        {"trait": "member_rank", "op": "like", "value": "x"},
        {"did": "buy", "within_days": 0},
        {"did": "buy", "count": {"op": "gte", "value": -1}},
        {"did": "buy", "colour": "red"},
        {"all": []},
        {"data": "buy.revenue", "stat": "median"},
        {"data": "buy.revenue", "window": "last_year"},
        {"trait": "age", "op": "gt", "value": "20"},
        {"trait": "rank", "op": "in", "value": "gold"},
        {"first_did": "view"},
        {"segment": "vip", "op": "eq"},
        {"did": "buy", "trait": "x"},
    ],
)
def test_the_schema_refuses_what_the_parser_refuses(rule: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        parse_rule(rule)
    assert list(_rule_validator().iter_errors(rule)), rule
