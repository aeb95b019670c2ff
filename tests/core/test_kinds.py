"""Definition kinds: the registry, and a new kind plugging in as one module (here, one class).

`Flag` stands for the campaign of the next issue: a definition that reads a segment and
needs an event counter kept live. Registering it is all it takes for the planner, the
definition file schema, the file format and the engine's live state to know it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from tsunagu.core import kinds
from tsunagu.core.engine import Engine
from tsunagu.core.errors import FieldError, InvalidInput
from tsunagu.core.events import Event
from tsunagu.core.kinds import Need, Reference
from tsunagu.core.plan import flatten_document, plan
from tsunagu.core.schema import definitions_schema
from tsunagu.core.segments import Did

NOW = 1_780_000_000_000


@dataclass(frozen=True)
class FlagForm:
    segment: str
    counter: Did


class Flag:
    name = "flag"
    section = "flags"
    label = "flag"
    endpoint = "/api/v1/flags"
    reserved = frozenset({"overview"})
    definition_ref = "flag_definition"

    def parse(self, name: str, body: Mapping[str, Any], path: str) -> FlagForm:
        at = f"{path}." if path else ""
        errors = [FieldError(f"{at}{key}", "must be a name") for key in ("segment", "event")
                  if not isinstance(body.get(key), str) or not body[key]]  # fmt: skip
        if errors:
            raise InvalidInput.for_fields(errors)
        return FlagForm(body["segment"], Did(body["event"]))

    def references(self, body: Mapping[str, Any]) -> list[Reference]:
        return [Reference("segment", "segment", body["segment"])]

    def needs(self, form: FlagForm, body: Mapping[str, Any]) -> list[Need]:
        spec = {"event": form.counter.event, "channel": None, "store_id": None, "where": {}}
        return [Need("counter", form.counter.key, spec, form.counter)]

    def schema(self) -> dict[str, Any]:
        return {"flag_definition": {"type": "object", "properties": {"kind": {"const": "flag"}}}}

    def warnings(self, body: Mapping[str, Any], vocab: Any, prefix: str) -> list[Any]:
        return []


@pytest.fixture
def flag() -> Iterator[Flag]:
    k = Flag()
    kinds.register(k)
    try:
        yield k
    finally:
        kinds.unregister(k.name)


def _ev(mid: str, name: str, uid: str, ts: int = NOW) -> Event:
    return Event(mid, "track", name, uid, None, ts, ts, "web", None, b"{}", {}, b"{}")


def test_an_unknown_kind_is_refused_naming_the_kinds_and_the_nearest() -> None:
    with pytest.raises(InvalidInput) as err:
        plan({}, [{"kind": "segmnt", "name": "x", "rule": {"did": "buy"}}])
    assert err.value.errors[0].field == "definitions[0].kind"
    assert "computed_trait, segment" in err.value.errors[0].reason
    assert "did you mean 'segment'?" in err.value.errors[0].reason


def test_registering_a_kind_twice_under_one_name_is_refused(flag: Flag) -> None:
    with pytest.raises(ValueError, match="registered already"):
        kinds.register(Flag())


def test_a_new_kind_is_applied_after_what_it_reads(flag: Flag) -> None:
    items = [{"kind": "flag", "name": "f", "segment": "buyers", "event": "view"},
             {"kind": "segment", "name": "buyers", "rule": {"did": "buy"}}]  # fmt: skip
    assert [(c.kind, c.name, c.index) for c in plan({}, items)] == [("segment", "buyers", 1), ("flag", "f", 0)]


def test_a_new_kind_reading_what_is_not_defined_is_refused_at_its_path(flag: Flag) -> None:
    current = {("segment", "buyers"): {"rule": {"did": "buy"}}}
    with pytest.raises(InvalidInput) as err:
        plan(current, [{"kind": "flag", "name": "f", "segment": "buyer", "event": "view"}])
    (e,) = err.value.errors
    assert (e.field, e.index) == ("definitions[0].segment", 0)
    assert e.reason == "reads segment 'buyer', which is not defined; did you mean 'buyers'?"
    with pytest.raises(InvalidInput, match=r"definitions\[0\]\.event: must be a name"):
        plan(current, [{"kind": "flag", "name": "f", "segment": "buyers"}])
    with pytest.raises(InvalidInput, match="/api/v1/flags/overview is another endpoint"):
        plan(current, [{"kind": "flag", "name": "overview", "segment": "buyers", "event": "view"}])


def test_a_prune_deletes_a_new_kind_before_the_segment_it_reads(flag: Flag) -> None:
    current = {("segment", "a"): {"rule": {"did": "buy"}}, ("flag", "z"): {"segment": "a", "event": "view"}}
    assert [(c.action, c.kind) for c in plan(current, [], prune=True)] == [("delete", "flag"), ("delete", "segment")]


def test_a_new_kind_has_its_section_in_files_and_its_entry_in_the_schema(flag: Flag) -> None:
    items, places = flatten_document({"flags": [{"name": "f", "segment": "s", "event": "view"}]}, "x.yaml")
    assert items == [{"kind": "flag", "name": "f", "segment": "s", "event": "view"}]
    assert places == ["x.yaml: flags[0]"]
    schema = definitions_schema()
    assert "flag_definition" in schema["$defs"]
    assert {"allOf": [{"$ref": "#/$defs/flag_definition"}], "required": ["kind"]} in schema["$defs"]["definition"][
        "oneOf"
    ]
    assert "flags" in schema["oneOf"][1]["properties"]
    with pytest.raises(InvalidInput, match="use computed_traits and segments and flags; did you mean 'flags'"):
        flatten_document({"flag": []})


def test_the_engine_keeps_live_what_a_new_kind_needs_and_drops_it_after(flag: Flag) -> None:
    engine = Engine()
    engine.define("segment", "buyers", {"rule": {"did": "buy"}}, seq=1, now=NOW)
    engine.define("flag", "f", {"segment": "buyers", "event": "view"}, seq=2, now=NOW)
    engine.apply([_ev("m1", "view", "U1"), _ev("m2", "buy", "U1")])
    p = engine.lookup("user_id", "U1")
    assert p is not None
    view = Did("view").key
    assert p.counters[view] == {engine.live.day_of(NOW): 1}
    assert p.segments == ["buyers"]
    # what the flag reads cannot go while it does
    with pytest.raises(InvalidInput, match="'buyers' is read by flag 'f'"):
        engine.undefine("segment", "buyers", now=NOW)
    engine.undefine("flag", "f", now=NOW)
    assert view not in p.counters and Did("buy").key in p.counters
    engine.undefine("segment", "buyers", now=NOW)
    assert not engine.live.definitions


def test_a_new_kind_defined_over_history_waits_for_its_back_fill(flag: Flag) -> None:
    engine = Engine()
    engine.define("segment", "buyers", {"rule": {"did": "buy"}}, seq=1, now=NOW)
    engine.apply([_ev("m1", "view", "U1")])
    engine.define("flag", "f", {"segment": "buyers", "event": "view"}, seq=3, now=NOW)
    (bf,) = engine.live.pending_for("flag", "f")
    assert (bf.kind, bf.key, bf.upto_seq) == ("counter", Did("view").key, 3)
    assert engine.live.pending_for("segment", "buyers") == []
