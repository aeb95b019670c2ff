"""Definition parsing is total: any JSON value gives a definition or `InvalidInput`.

Every parser a definition goes through (`parse_rule`, `parse_computed`, `plan` as the
admin API and `tsunagu apply` call it, `flatten_document` for files, and the engine's own
`parse`) is fed arbitrary JSON: the real keys mixed with any others, values of every type
(huge integers, NaN, lone surrogates, deep nesting), and near-valid definitions with one
field swapped for anything. Only `InvalidInput` may escape, and it names the field.

What parses must then work everywhere a definition goes: the log keeps it as it is,
the engine compiles and evaluates it, and the SQL compiler prints it for every dialect
and DuckDB runs it.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import duckdb
import msgspec
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tsunagu.core.computed import AGGS, COMPUTED_WINDOWS, Aggregate, parse_computed
from tsunagu.core.engine import Engine
from tsunagu.core.errors import InvalidInput
from tsunagu.core.plan import flatten_document, plan
from tsunagu.core.segments import COMPARISONS, MAX_RULE_DEPTH, Facts, Segment, evaluate, parse_rule
from tsunagu.core.storable import MAX_DEPTH
from tsunagu.core.userdata import STATS, WINDOWS
from tsunagu.sql.segments import DIALECTS, compile_segment, computed_query, to_sql
from tsunagu.storage.duckdb_analytics import _SCHEMA

TODAY = 20_777  # 2026-11-20
TZ = "Asia/Tokyo"

KEYS = ["did", "event", "agg", "where", "within_days", "and", "or", "not", "window", "stat", "op", "value",
        "cases", "when", "else", "all", "any", "trait", "first_did", "data", "last", "computed", "segment",
        "channel", "store_id", "since", "count", "property", "name", "kind", "description", "rule",
        "computed_traits", "segments"]  # fmt: skip
ODD = ["\\", '"', "\\\"", "'", "\ud800", "a\udfff", "\x00", "😀", "$", "$.a", "[", "a.b", "a..b", ".a", "a.",
       "", " ", "$page.path", "$sessions", "$channel", "buy.", "a" * 300, "0001-01-01", "9999-12-31",
       "2026-02-30"]  # fmt: skip
WORDS = ["buy", "view", "x", "2026-01-01", "segment", "computed_trait", "web", "web,app", "store", "$store_id",
         "items.category", "revenue", "buy.revenue", "$page", *AGGS, *STATS, *WINDOWS, *COMPARISONS]  # fmt: skip

text = st.text(st.characters(codec=None, categories=None), max_size=8) | st.sampled_from(ODD)
names = st.sampled_from(WORDS) | text
numbers = st.one_of(
    st.integers(-5, 4000),
    st.integers(-(2**200), 2**200),
    st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 3660, 3661, 0, -1]),
    st.floats(),  # NaN and both infinities included
)
scalars = st.none() | st.booleans() | numbers | names
arbitrary = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | text, inner, max_size=5),
    max_leaves=20,
)


def grammar(swap: int, *, wild: bool) -> SimpleNamespace:
    """The definition language, with about one value in `swap` replaced by anything and one
    object in `swap` given a stray field."""

    odds = st.integers(1, swap)  # one_of would not weigh: it draws each branch alike

    def maybe(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return odds.flatmap(lambda n: arbitrary if n == swap else good)

    def node(required: dict[str, Any], optional: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
        fixed = st.fixed_dictionaries(required, optional=optional)
        stray = st.dictionaries(st.sampled_from(KEYS) | text, arbitrary, min_size=1, max_size=2)
        strayed = st.tuples(fixed, stray).map(lambda t: {**t[1], **t[0]})
        return odds.flatmap(lambda n: strayed if n == swap else fixed)

    # Each value is drawn from the plausible ones (the wild grammar: any of its kind), so
    # that the near grammar mostly parses and the wild one mostly does not.
    plain = st.one_of(st.sampled_from(WORDS + ODD), st.integers(-5, 4000), st.floats(-1e9, 1e9), st.booleans())
    name = maybe(names if wild else st.sampled_from(WORDS + [n for n in ODD if n.strip()]))
    value = maybe(scalars | st.lists(scalars, max_size=3) if wild else plain)
    op = maybe(st.sampled_from(COMPARISONS) if wild else st.sampled_from(["eq", "neq", "contains", "exists"]))
    where = maybe(st.dictionaries(names if wild else st.sampled_from(WORDS), scalars if wild else plain, max_size=3))
    within = maybe(st.integers(-2, 4000) | numbers if wild else st.integers(1, 3660))
    since = maybe(names if wild else st.sampled_from(["2026-01-01", "0001-01-01", "9999-12-31"]))
    count_op = maybe(st.sampled_from(["eq", "gte", "gt", "lte", "lt"]))
    times = maybe(st.integers(-1 if wild else 0, 5))
    count = maybe(st.fixed_dictionaries({}, optional={"op": count_op, "value": times}))
    stat, window = maybe(st.sampled_from(STATS)), maybe(st.sampled_from(WINDOWS))
    # a comparison's op and value: any pair (wild), or a value of the op's kind
    pairs = st.fixed_dictionaries({}, optional={"op": op, "value": value})
    if not wild:
        number = st.integers(-5, 4000) | st.floats(-1e9, 1e9)
        pairs = st.one_of(
            st.fixed_dictionaries({"op": st.sampled_from(["eq", "neq", "contains"]), "value": value}),
            st.fixed_dictionaries({"op": st.sampled_from(["gt", "gte", "lt", "lte"]), "value": number}),
            st.fixed_dictionaries({"op": st.just("in"), "value": st.lists(plain, max_size=3)}),
            st.fixed_dictionaries({"op": st.sampled_from(["exists", "not_exists"])}),
        )

    def compared(required: dict[str, Any], optional: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
        return st.tuples(node(required, optional), pairs).map(lambda t: {**t[0], **t[1]})

    leaves = st.one_of(
        compared({"trait": name}, {}),
        node({"did": name}, {"channel": name, "store_id": name, "where": where, "within_days": within,
                             "since": since, "count": count}),
        node({"first_did": name, "within_days": within}, {"channel": name, "store_id": name, "where": where}),
        compared({"data": name}, {"stat": stat, "window": window}),
        compared({"last": name, "property": name}, {}),
        compared({"computed": name}, {}),
        node({"segment": name}, {}),
    )  # fmt: skip
    rules = st.recursive(
        maybe(leaves),
        lambda inner: st.one_of(
            st.builds(lambda xs: {"all": xs}, maybe(st.lists(inner, min_size=1, max_size=3))),
            st.builds(lambda xs: {"any": xs}, maybe(st.lists(inner, min_size=1, max_size=3))),
            st.builds(lambda x: {"not": x}, inner),
        ),
        max_leaves=8,
    )
    aggregates = node(
        {"event": name, "agg": maybe(st.sampled_from(AGGS))},
        {"property": name, "channel": name, "store_id": name, "where": where,
         "window": maybe(st.sampled_from(COMPUTED_WINDOWS)), "within_days": within, "description": maybe(text)},
    )  # fmt: skip
    cases = node(
        {"cases": maybe(st.lists(node({"when": rules, "value": value}, {}), min_size=1, max_size=3))},
        {"else": value, "description": maybe(text)},
    )
    computed_traits = st.tuples(st.one_of(aggregates, cases), name).map(lambda t: {**t[0], "name": t[1]})
    segments = node({"rule": rules}, {"description": maybe(text)})
    kinds = maybe(st.just("computed_trait")), maybe(st.just("segment"))
    definitions = st.one_of(
        st.tuples(computed_traits, kinds[0], name).map(lambda t: {**t[0], "kind": t[1], "name": t[2]}),
        st.tuples(segments, kinds[1], name).map(lambda t: {**t[0], "kind": t[1], "name": t[2]}),
    )
    return SimpleNamespace(rules=rules, computed_traits=computed_traits, segments=segments, definitions=definitions)


WILD, NEAR = grammar(4, wild=True), grammar(20, wild=False)
rules = st.one_of(WILD.rules, NEAR.rules, arbitrary)
computed_traits = st.one_of(WILD.computed_traits, NEAR.computed_traits, arbitrary)
definitions = st.one_of(WILD.definitions, NEAR.definitions, arbitrary)
segment_bodies = st.one_of(WILD.segments, NEAR.segments)

#: what a workspace holds already (what `plan` checks the definitions against)
CURRENT = {
    ("computed_trait", "ltv"): {"event": "buy", "agg": "sum", "property": "revenue"},
    ("segment", "buyers"): {"rule": {"did": "buy"}},
    ("segment", "vip"): {"rule": {"all": [{"segment": "buyers"}, {"computed": "ltv", "op": "gte", "value": 1}]}},
}

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def analytics() -> duckdb.DuckDBPyConnection:
    """An empty analytics store (its real schema): every parsed rule must run on it."""
    con = duckdb.connect()
    con.execute(_SCHEMA)
    return con


def refused_with_fields(call: Any, *args: Any, **kwargs: Any) -> Any:
    """The call's result, or None when it raised InvalidInput naming the fields; anything else fails."""
    try:
        result = call(*args, **kwargs)
    except InvalidInput as exc:
        event("refused")
        assert exc.errors, exc.message
        assert all(isinstance(e.field, str) and e.reason for e in exc.errors)
        exc.message.encode("utf-8")  # an error must be printable whatever the input held
        return None
    event("parsed")
    return result


def kept_by_the_log(data: Any) -> None:
    """The log (msgpack) and the API's responses (JSON) give the definition back as it is."""
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(data)) == data
    assert msgspec.json.decode(msgspec.json.encode(data)) == data


def reads_definitions(segment: Segment) -> bool:
    return bool(segment.segments or segment.computed)


def works_everywhere(rule: Any, analytics: duckdb.DuckDBPyConnection) -> None:
    segment = Segment("s", rule)
    facts = Facts({}, {})
    assert segment.check(facts, TODAY) == evaluate(rule, facts, TODAY)
    if reads_definitions(segment):
        return  # the SQL needs the workspace's definitions (plan checks they exist)
    for dialect in DIALECTS:
        assert compile_segment(rule, today=TODAY, timezone=TZ, dialect=dialect)
    analytics.execute(f"SELECT count(*) FROM ({compile_segment(rule, today=TODAY, timezone=TZ)})").fetchall()


@SETTINGS
@given(data=rules)
def test_parse_rule_gives_a_rule_or_invalid_input_for_any_json(data: Any, analytics: duckdb.DuckDBPyConnection) -> None:
    rule = refused_with_fields(parse_rule, data)
    if rule is not None:
        kept_by_the_log(data)
        works_everywhere(rule, analytics)


@SETTINGS
@given(data=computed_traits)
def test_parse_computed_gives_a_computed_trait_or_invalid_input_for_any_json(
    data: Any, analytics: duckdb.DuckDBPyConnection
) -> None:
    trait = refused_with_fields(parse_computed, data)
    if trait is None:
        return
    kept_by_the_log(data)
    if isinstance(trait, Aggregate):
        sql = to_sql(computed_query(trait, today=TODAY, timezone=TZ))
        analytics.execute(f"SELECT count(*) FROM ({sql})").fetchall()
    else:
        for rule, _ in trait.cases:
            works_everywhere(rule, analytics)


@SETTINGS
@given(items=st.lists(definitions, max_size=4), prune=st.booleans())
def test_plan_gives_changes_or_invalid_input_for_any_list_of_json(items: list[Any], prune: bool) -> None:
    changes = refused_with_fields(plan, CURRENT, items, prune=prune)
    if changes is None:
        return
    # What plan accepts, the engine applies in plan's order (as the API does).
    engine = Engine()
    for seq, ((kind, defined), body) in enumerate(CURRENT.items(), 1):
        engine.define(kind, defined, body, seq=seq, now=0)
    for seq, change in enumerate(changes, 10):
        if change.action == "delete":
            engine.undefine(change.kind, change.name, now=0)
        elif change.after is not None:
            kept_by_the_log(change.after)
            engine.define(change.kind, change.name, change.after, seq=seq, now=0)


@SETTINGS
@given(data=arbitrary | st.dictionaries(st.sampled_from(["segments", "computed_traits"]), arbitrary, max_size=2))
def test_flatten_document_gives_definitions_or_invalid_input_for_any_json(data: Any) -> None:
    found = refused_with_fields(flatten_document, data, "file.yaml")
    if found is not None:
        items, places = found
        assert len(items) == len(places)
        refused_with_fields(plan, {}, items)


@SETTINGS
@given(kind=st.sampled_from(["segment", "computed_trait"]) | arbitrary, body=segment_bodies | computed_traits)
def test_the_engine_parses_any_json_body_to_a_definition_or_invalid_input(kind: Any, body: Any) -> None:
    refused_with_fields(Engine().live.parse, kind, "n", body)


def _nested(levels: int) -> dict[str, Any]:
    rule: dict[str, Any] = {"trait": "rank", "op": "exists"}
    for i in range(levels):
        rule = {"not": rule} if i % 2 else {"all": [rule, {"did": "buy"}]}
    return rule


def test_a_rule_nested_as_deep_as_allowed_runs_everywhere_and_one_deeper_is_refused(
    analytics: duckdb.DuckDBPyConnection,
) -> None:
    works_everywhere(parse_rule(_nested(MAX_RULE_DEPTH)), analytics)
    with pytest.raises(InvalidInput) as err:
        parse_rule(_nested(MAX_RULE_DEPTH + 1))
    assert "levels deep" in err.value.errors[0].reason


@pytest.mark.parametrize(
    ("data", "field", "reason"),
    [
        ({"trait": "\ud800", "op": "exists"}, "rule.trait", "lone surrogate"),
        ({"trait": "rank", "op": "gt", "value": float("nan")}, "rule.value", "finite"),
        ({"trait": "rank", "op": "lt", "value": float("inf")}, "rule.value", "finite"),
        ({"trait": "rank", "op": "eq", "value": 2**64}, "rule.value", "64 bits"),
        ({"did": "buy", "where": {"\udfff": 1}}, "rule.where", "not valid Unicode"),
        ({"did": "buy", "where": {"": 1}}, "rule.where", "empty"),
        ({"data": "buy..price", "stat": "sum", "op": "gt", "value": 1}, "rule.data", "empty part"),
        ({"last": "buy", "property": "items.", "op": "eq", "value": 1}, "rule.property", "empty part"),
        ({"data": "buy", "stat": {"max": 1}, "op": "gt", "value": 1}, "rule.stat", "is not one of"),
        ({"trait": "rank", "op": ["eq"], "value": 1}, "rule.op", "is not one of"),
        ({"not": [[[[[[]]]]]] * 2}, "rule.not", "exactly one of"),
    ],
)
def test_what_no_store_keeps_is_refused_with_the_field_and_the_reason(data: Any, field: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_rule(data)
    assert err.value.errors[0].field == field
    assert reason in err.value.errors[0].reason


@pytest.mark.parametrize(
    ("data", "field", "reason"),
    [
        ({"name": "x", "event": "buy", "agg": {}}, "computed_trait.agg", "is not one of"),
        ({"name": "x", "event": "buy", "agg": ["sum"]}, "computed_trait.agg", "is not one of"),
        ({"name": "x", "event": "buy"}, "computed_trait.agg", "is needed"),
        ({"name": "x", "event": "buy", "agg": "sum", "property": "a..b"}, "computed_trait.property", "empty part"),
        ({"name": "x", "event": "buy", "agg": "count", "window": {}}, "computed_trait.window", "is not one of"),
        ({"name": "x", "cases": [{"when": {"trait": "a", "op": {}}, "value": 1}]}, "computed_trait.cases[0].when.op",
         "is not one of"),
        ({"name": "x", "cases": [{"when": {"trait": "a", "op": "in", "value": 3}, "value": 1}]},
         "computed_trait.cases[0].when.value", "must be a list"),
    ],
)  # fmt: skip
def test_a_computed_trait_with_a_value_of_the_wrong_kind_is_refused_with_the_field(
    data: Any, field: str, reason: str
) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_computed(data)
    assert err.value.errors[0].field == field, err.value.errors
    assert reason in err.value.errors[0].reason


def test_nesting_deeper_than_any_definition_needs_is_refused_without_recursing() -> None:
    data: Any = 1
    for _ in range(100_000):
        data = [data]
    with pytest.raises(InvalidInput) as err:
        parse_rule({"trait": "rank", "op": "in", "value": data})
    assert f"more than {MAX_DEPTH} levels" in err.value.errors[0].reason
