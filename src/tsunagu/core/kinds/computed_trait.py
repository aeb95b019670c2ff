"""The computed trait kind: a value per person computed from their events (`core.computed`).

    {"kind": "computed_trait", "name": "ltv", "event": "buy", "agg": "sum", "property": "revenue"}
    {"kind": "computed_trait", "name": "tier", "cases": [{"when": <rule>, "value": "gold"}], "else": "none"}

An aggregate's form is an `Aggregate`: it needs its own per-person aggregate (back-filled
from history whenever its definition changes); its SQL form is
`sql.segments.computed_query`. A cases trait's form is `Cases`: it needs what its rules
read, and may not read segments or other computed traits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..computed import Aggregate, Cases, ComputedTrait, parse_computed
from ..errors import InvalidInput
from ._paths import relative
from .kind import Need, Reference
from .segment import rule_needs

if TYPE_CHECKING:
    from ..rulecheck import RuleWarning
    from ..vocabulary import Vocabulary

__all__ = ["COMPUTED_TRAIT", "ComputedTraitKind"]


class ComputedTraitKind:
    name = "computed_trait"
    section = "computed_traits"
    label = "computed trait"
    endpoint = "/api/v1/computed-traits"
    reserved: frozenset[str] = frozenset()
    definition_ref = "computed_trait"

    def parse(self, name: str, body: Mapping[str, Any], path: str) -> ComputedTrait:
        try:
            return parse_computed({**body, "name": name}, path)
        except InvalidInput as exc:
            raise relative(exc, path) from None

    def references(self, body: Mapping[str, Any]) -> list[Reference]:
        return []  # a case may not read segments or computed traits (parse refuses it)

    def needs(self, form: ComputedTrait, body: Mapping[str, Any]) -> list[Need]:
        if isinstance(form, Aggregate):
            return [Need("computed", form.name, dict(body), form)]
        assert isinstance(form, Cases)
        return rule_needs(form.reads())

    def schema(self) -> dict[str, Any]:
        from ..schema import aggregate_schema, cases_schema

        return {
            "aggregate": aggregate_schema(),
            "cases": cases_schema(),
            "computed_trait": {"oneOf": [{"$ref": "#/$defs/aggregate"}, {"$ref": "#/$defs/cases"}]},
        }

    def warnings(self, body: Mapping[str, Any], vocab: Vocabulary, prefix: str) -> list[RuleWarning]:
        from ..rulecheck import check_computed

        return check_computed(body, vocab, prefix)


COMPUTED_TRAIT = ComputedTraitKind()
