"""Segments and computed traits over the admin API: read, write, delete, and apply a file's worth.

    GET/PUT/DELETE /api/v1/segments/{name}          one segment (PUT is idempotent)
    GET/PUT/DELETE /api/v1/computed-traits/{name}   one computed trait
    POST /api/v1/apply                              many at once, validated all or nothing, with a diff
    GET /api/v1/schema/definitions                  the JSON Schema of definition files

Every write goes through `WorkspacePipeline.apply`, the planner `tsunagu apply` uses
(`tsunagu.core.plan`), so an invalid rule is refused with the exact path whichever way it
comes in. Writes to one workspace take turns: an apply is planned against what it will change.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from ..core.plan import ACTIONS, Change
from ..core.schema import definitions_schema
from ..pipeline import WorkspacePipeline
from .admin import Pipe
from .errors import error_responses
from .vocabulary import WARNINGS_DOC, RuleWarningOut, apply_check, definition_check, warnings_of

__all__ = ["put_definition", "router"]

router = APIRouter()


class BackfillOut(BaseModel):
    id: str
    persons_done: int
    persons_total: int | None = Field(description="None until the back-fill has counted them")
    rows: int


class DefinitionOut(BaseModel):
    kind: str = Field(examples=["segment"])
    name: str = Field(examples=["store_regulars"])
    body: dict[str, Any] = Field(description="the definition as written (a segment: rule and description)")
    seq: int = Field(description="the log record that last changed it")
    version: int = Field(description="1, then one more for every change")
    status: str = Field(description="ready, or building while its history is counted (back-fill)")
    backfill: list[BackfillOut] | None = Field(default=None, description="back-fill progress while building")
    members: int | None = Field(default=None, description="a segment's members now")
    changed: bool | None = Field(default=None, description="on PUT: whether anything changed")
    warnings: list[RuleWarningOut] | None = Field(
        default=None, description=f"on PUT: the definition's {WARNINGS_DOC} (paths relative to the body)"
    )


class SegmentsOut(BaseModel):
    segments: list[DefinitionOut]


class ComputedTraitsOut(BaseModel):
    computed_traits: list[DefinitionOut]


class DeletedDefinitionOut(BaseModel):
    deleted: bool
    kind: str
    name: str


class SegmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rule: dict[str, Any] = Field(
        description="the rule (docs/segments.md)",
        examples=[{"all": [{"did": "buy", "channel": "store", "within_days": 90}, {"did": "view", "channel": "web"}]}],
    )
    description: Any = Field(default=None, description="what the segment is for")


class ComputedTraitIn(BaseModel):
    """An aggregate (event, agg, property, filters, window) or cases (a value per rule)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    description: Any = None
    event: Any = Field(default=None, description="an event name, or * for any track event", examples=["buy"])
    agg: Any = Field(default=None, description="count, sum, min, max, avg, first, last, most_frequent, …")
    property: Any = Field(default=None, description="the property to aggregate: revenue, items.category, $store_id")
    channel: Any = Field(default=None, description="a channel, or several: web,app")
    store_id: Any = None
    where: Any = Field(default=None, description="property values the event must have")
    window: Any = Field(default=None, description="all_time, today, this_month, last_7_days, …")
    within_days: Any = Field(default=None, description="the last N days, instead of a window")
    cases: Any = Field(default=None, description="[{when: rule, value}]: the first that holds gives the value")
    else_: Any = Field(default=None, alias="else", description="the value when no case holds")


class ApplyIn(BaseModel):
    definitions: list[Any] = Field(
        description="[{kind: segment|computed_trait, name, ...the definition}] (docs/segments.md)",
        examples=[[{"kind": "segment", "name": "store_buyers", "rule": {"did": "buy", "channel": "store"}}]],
    )
    dry_run: bool = Field(default=False, strict=True, description="only say what would change")
    prune: bool = Field(
        default=False, strict=True, description="also delete the workspace's definitions the list does not name"
    )


class ChangeOut(BaseModel):
    action: str = Field(description=" | ".join(ACTIONS))
    kind: str
    name: str
    index: int | None = Field(description="its position in `definitions` (None for a delete)")
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    diff: list[dict[str, Any]] = Field(description="[{path, before, after}] leaf by leaf (a missing side: absent)")
    status: str | None = Field(default=None, description="after the apply: ready or building")
    members: int | None = None
    backfill: list[BackfillOut] | None = None


class ApplyOut(BaseModel):
    dry_run: bool
    changes: list[ChangeOut]
    summary: dict[str, int] = Field(description="how many of each action")
    warnings: list[RuleWarningOut] | None = Field(
        description=f"the definitions' {WARNINGS_DOC}; each with its `index` (`definitions[2].rule.did`)"
    )


async def put_definition(
    pipe: WorkspacePipeline, kind: str, name: str, body: dict[str, Any], now: int
) -> dict[str, Any]:
    """Validate (paths relative to `body`) and define, in turn with other writes to the workspace;
    with the definition's warnings (checked after, not holding the writes up)."""
    out = await pipe.define(kind, name, body, now)
    return out | {"warnings": await warnings_of(pipe, definition_check(kind, body))}


async def _delete(pipe: WorkspacePipeline, kind: str, name: str, now: int) -> dict[str, Any]:
    await pipe.undefine(kind, name, now)
    return {"deleted": True, "kind": kind, "name": name}


def _now(request: Request) -> int:
    return int(request.app.state.platform.clock())


# -- segments ----------------------------------------------------------------------------


@router.get("/api/v1/segments", response_model=SegmentsOut, tags=["segments"])
async def list_segments(pipe: Pipe) -> dict[str, Any]:
    """Every segment with its status and members now."""
    return {"segments": [d for d in pipe.definitions() if d["kind"] == "segment"]}


@router.get("/api/v1/segments/{name}", response_model=DefinitionOut, tags=["segments"], responses=error_responses(404))
async def get_segment(pipe: Pipe, name: str) -> dict[str, Any]:
    return pipe.definition("segment", name)


@router.put("/api/v1/segments/{name}", response_model=DefinitionOut, tags=["segments"])
async def put_segment(pipe: Pipe, name: str, body: SegmentIn, request: Request) -> dict[str, Any]:
    """Create or change a segment; the same body again changes nothing (`changed: false`)."""
    return await put_definition(pipe, "segment", name, body.model_dump(exclude_none=True), _now(request))


@router.delete(
    "/api/v1/segments/{name}",
    response_model=DeletedDefinitionOut,
    tags=["segments"],
    responses=error_responses(404, 409),
)
async def delete_segment(pipe: Pipe, name: str, request: Request) -> dict[str, Any]:
    """Delete a segment (refused while another segment reads it)."""
    return await _delete(pipe, "segment", name, _now(request))


# -- computed traits ---------------------------------------------------------------------


@router.get("/api/v1/computed-traits", response_model=ComputedTraitsOut, tags=["computed traits"])
async def list_computed_traits(pipe: Pipe) -> dict[str, Any]:
    return {"computed_traits": [d for d in pipe.definitions() if d["kind"] == "computed_trait"]}


@router.get(
    "/api/v1/computed-traits/{name}",
    response_model=DefinitionOut,
    tags=["computed traits"],
    responses=error_responses(404),
)
async def get_computed_trait(pipe: Pipe, name: str) -> dict[str, Any]:
    return pipe.definition("computed_trait", name)


@router.put(
    "/api/v1/computed-traits/{name}",
    response_model=DefinitionOut,
    tags=["computed traits"],
)
async def put_computed_trait(pipe: Pipe, name: str, body: ComputedTraitIn, request: Request) -> dict[str, Any]:
    """Create or change a computed trait; its history is counted in the background (status building)."""
    return await put_definition(
        pipe, "computed_trait", name, body.model_dump(exclude_none=True, by_alias=True), _now(request)
    )


@router.delete(
    "/api/v1/computed-traits/{name}",
    response_model=DeletedDefinitionOut,
    tags=["computed traits"],
    responses=error_responses(404, 409),
)
async def delete_computed_trait(pipe: Pipe, name: str, request: Request) -> dict[str, Any]:
    """Delete a computed trait (refused while a segment reads it)."""
    return await _delete(pipe, "computed_trait", name, _now(request))


# -- apply -------------------------------------------------------------------------------


@router.post("/api/v1/apply", response_model=ApplyOut, tags=["definitions"])
async def apply(pipe: Pipe, body: ApplyIn, request: Request) -> dict[str, Any]:
    """Apply many definitions: validated all or nothing first, then applied in dependency order.

    Answers one change per definition (create, update, unchanged; delete with `prune`)
    with its before, after and a leaf-by-leaf diff. Applying the same list twice changes
    nothing the second time.
    """
    changes = await pipe.apply(body.definitions, _now(request), prune=body.prune, dry_run=body.dry_run)
    states = {(d["kind"], d["name"]): d for d in pipe.definitions()}
    out = [_change_out(states, c, applied=not body.dry_run) for c in changes]
    summary = {action: sum(1 for c in changes if c.action == action) for action in ACTIONS}
    warnings = await warnings_of(pipe, apply_check(body.definitions, [(c.kind, c.name) for c in changes]))
    return {"dry_run": body.dry_run, "changes": out, "summary": summary, "warnings": warnings}


def _change_out(states: dict[tuple[str, str], dict[str, Any]], change: Change, *, applied: bool) -> dict[str, Any]:
    out = change.to_dict()
    state = states.get((change.kind, change.name))
    if state is not None and not (change.action == "delete" and applied):
        out |= {k: state[k] for k in ("status", "members", "backfill") if k in state}
    return out


Schema = Annotated[dict[str, Any], Field(description="a JSON Schema (draft 2020-12)")]


@router.get("/api/v1/schema/definitions", tags=["definitions"])
async def schema(pipe: Pipe) -> Schema:
    """The JSON Schema of definition files and of the apply body (also docs/definitions.schema.json)."""
    return definitions_schema()
