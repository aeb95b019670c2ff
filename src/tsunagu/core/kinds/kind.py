"""What a kind of definition says about itself: one protocol, registered in `core.kinds`.

A workspace's definitions (segments and computed traits now; campaigns, journeys and
Datahub jobs next) are each of a **kind**. A kind is one module that answers, for its
definitions:

* `parse(name, body, path)`: the definition's **form**, from its JSON as written, or
  `InvalidInput` naming every problem by its exact path. Pure and total. The form is
  what the engine runs on every event (the streaming form) and what `sql/` compiles
  (the SQL form: a segment's rule, a computed trait's aggregate).
* `references(body)`: the other definitions it reads, each with where in the body it
  names them. The planner (`core.plan`) checks they exist, applies a definition after
  what it reads, refuses a cycle and refuses deleting what is read.
* `needs(form, body)`: what the engine keeps per person for it (an event counter, a user
  data field, an aggregate). Each `Need` is counted from history by a back-fill when it
  is new (`sql.backfill` compiles it) and dropped from every person when nothing needs it.
* `schema()`: its JSON Schema; the definition file schema is built from every kind's.
* `warnings(body, vocab, prefix)`: what it names that the workspace has never seen.

A definition is validated once, by `core.plan.plan` against the workspace's
definitions: the API's PUT, `POST /api/v1/apply`, `tsunagu apply` and its dry run all go
through it (`WorkspacePipeline.apply`). The engine then builds forms from the records the
plan let into the log (and from the log again on a replay) without judging them again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..rulecheck import RuleWarning
    from ..vocabulary import Vocabulary

__all__ = ["NAME", "Kind", "Need", "Reference"]

#: what a definition may be called, whatever its kind
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Reference:
    """A definition read by another: `path` is where the reader's body names it (`rule.all[0].segment`)."""

    path: str
    kind: str
    name: str


@dataclass(frozen=True)
class Need:
    """Something the engine keeps per person because a definition reads it.

    `kind` is what holds it on a person: "counter" (day buckets of matching events),
    "data" (a user data field's summary) or "computed" (a computed trait's aggregate).
    Two definitions reading the same counter share it: the key says what is counted.
    `spec` is what the back-fill's SQL counts; a changed spec under the same key is a
    new need (the old counts are dropped and history is counted again). `form` is what
    the engine matches events with (a `Did`, an `Aggregate`).
    """

    kind: str
    key: str
    spec: Mapping[str, Any] = field(default_factory=dict, compare=True, hash=False)
    form: Any = field(default=None, compare=False, hash=False)

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.key}"


class Kind(Protocol):
    #: the `kind` of its definitions: "segment"
    name: str
    #: its key in a grouped definition file (`segments:`) and its plural in messages
    section: str
    #: how messages name one ("computed trait")
    label: str
    #: its admin API collection (`/api/v1/segments`)
    endpoint: str
    #: names its admin API paths take for themselves (`/api/v1/segments/overlap`)
    reserved: frozenset[str]

    def parse(self, name: str, body: Mapping[str, Any], path: str) -> Any:
        """The form of a definition (body: everything but kind and name), or InvalidInput
        with paths under `path` (`definitions[2]`, or "" for paths relative to the body)."""
        ...

    def references(self, body: Mapping[str, Any]) -> list[Reference]:
        """The definitions a valid body reads, with paths relative to the body."""
        ...

    def needs(self, form: Any, body: Mapping[str, Any]) -> list[Need]:
        """What the engine keeps per person for this definition itself (not for what it reads)."""
        ...

    def schema(self) -> dict[str, Any]:
        """`$defs` entries of the definition file schema; `definition_ref` names the item's."""
        ...

    @property
    def definition_ref(self) -> str:
        """The `$defs` entry of one definition of this kind."""
        ...

    def warnings(self, body: Mapping[str, Any], vocab: Vocabulary, prefix: str) -> list[RuleWarning]:
        """What a valid body names that the workspace has never seen (paths under `prefix`)."""
        ...
