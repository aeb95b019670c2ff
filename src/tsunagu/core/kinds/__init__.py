"""The definition kinds, registered in one place (see `kind.py` for what a kind says).

    >>> from tsunagu.core.kinds import kind
    >>> kind("segment").section
    'segments'

A new kind is one module here plus its tests: `plan`, the definition file schema, the
apply API, rule warnings and the engine's live state all read this registry. Kinds are
listed in the order a definition file's sections are read and an apply prefers when
nothing orders two definitions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import FieldError, InvalidInput
from ..vocabulary import nearest
from .computed_trait import COMPUTED_TRAIT
from .kind import NAME, Kind, Need, Reference
from .segment import SEGMENT

if TYPE_CHECKING:
    from ..rulecheck import RuleWarning
    from ..vocabulary import Vocabulary

__all__ = ["KINDS", "NAME", "Kind", "Need", "Reference", "check_definitions", "kind", "names", "register", "unregister"]

#: name -> kind, in order
KINDS: dict[str, Kind] = {k.name: k for k in (COMPUTED_TRAIT, SEGMENT)}


def names() -> tuple[str, ...]:
    return tuple(KINDS)


def kind(name: Any, field: str = "kind") -> Kind:
    """The kind called `name`; InvalidInput naming the kinds there are (and the nearest) if none."""
    found = KINDS.get(name) if isinstance(name, str) else None
    if found is not None:
        return found
    reason = f"{name!r} is not one of {', '.join(KINDS)}"
    near = nearest(name, list(KINDS)) if isinstance(name, str) else []
    if near:
        reason += f"; did you mean {near[0]!r}?"
    raise InvalidInput.for_fields([FieldError(field, reason)])


def register(new: Kind) -> None:
    """Add a kind (its module calls this; so can a test's)."""
    if new.name in KINDS and KINDS[new.name] is not new:
        raise ValueError(f"a kind {new.name!r} is registered already")
    KINDS[new.name] = new


def unregister(name: str) -> None:
    KINDS.pop(name, None)


def check_definitions(items: list[Any], vocab: Vocabulary) -> list[RuleWarning]:
    """The warnings of an apply's definitions, each with its index (`definitions[2].rule.did`)."""
    from ..rulecheck import indexed

    out: list[RuleWarning] = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping) or not isinstance(item.get("kind"), str) or item["kind"] not in KINDS:
            continue
        body = {k: v for k, v in item.items() if k not in ("kind", "name")}
        out += [indexed(w, i) for w in KINDS[item["kind"]].warnings(body, vocab, f"definitions[{i}]")]
    return out
