"""The admin REST API (`/api/v1/...`), described by OpenAPI at `/openapi.json`.

Every endpoint takes the workspace's API token as `Authorization: Bearer TOKEN`; the
token names the workspace, so one workspace can never address another's people. Errors
have one shape, documented on every operation (`api/errors.py`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from fastapi import Depends, FastAPI, Query, Request, Security
from fastapi.security import HTTPBearer
from pydantic import BaseModel, Field

from .. import __version__
from ..core.config import IDENTIFIER_TYPES
from ..core.errors import InvalidInput, NotFound, TsunaguError, Unauthorized, Unavailable
from ..core.identity import normalize_value
from ..core.people import Person
from ..core.userdata import Folded, describe
from ..pipeline import WorkspacePipeline
from ..sql.search import PeopleFilter, people_count_query, people_search_query
from .errors import document_errors, error_responses, install_error_handlers
from .preview import preview_rule
from .vocabulary import WARNINGS_DOC, RuleWarningOut, rule_check, warnings_of

if TYPE_CHECKING:
    from ..app import Platform

__all__ = ["build_admin_app", "count_people", "iso", "person_json", "search_people", "user_data"]


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def person_json(p: Person) -> dict[str, Any]:
    d = p.to_dict()
    d["first_seen"] = iso(p.first_seen) if p.event_count else None
    d["last_seen"] = iso(p.last_seen) if p.event_count else None
    return d


class PersonOut(BaseModel):
    person_id: str = Field(examples=["p_3f2a9c0d1e4b5a6c7d8e"])
    identifiers: dict[str, list[str]] = Field(examples=[{"user_id": ["M000123"], "anonymous_id": ["a-1"]}])
    traits: dict[str, Any]
    first_seen: str | None
    last_seen: str | None
    channels: dict[str, int] = Field(description="events per channel")
    stores: dict[str, int] = Field(description="events per store id")
    event_count: int
    merged_ids: list[str] = Field(description="person ids merged into this one")
    conflicts: list[dict[str, Any]] = Field(description="identifiers refused because they would join two user_ids")
    segments: list[str] = Field(default_factory=list, description="the live segments this person is in")
    computed: dict[str, Any] = Field(
        default_factory=dict, description="computed trait values now (on GET of one person and lookup)"
    )


class PersonDataOut(BaseModel):
    person_id: str
    evaluated_on: str = Field(description="the day windows end on, in the workspace's time zone")
    fields: dict[str, dict[str, Any]] = Field(
        description="user data: field (buy, buy.revenue, $page.path) -> statistics over all time "
        "(count, sum/min/max/avg, most_frequent, distinct_count, first, last, count_last_7_days, …), most used first"
    )
    fields_dropped: int = Field(description="fields not summarised because the person reached the cap")


class EventOut(BaseModel):
    message_id: str
    type: str
    event: str | None
    channel: str
    store_id: str | None
    timestamp: str
    received_at: str
    person_id: str
    user_id: str | None
    anonymous_id: str | None
    properties: dict[str, Any]
    context: dict[str, Any]
    traits: dict[str, Any]


class TimelineOut(BaseModel):
    person_id: str
    events: list[EventOut]
    next_cursor: str | None


class PeopleOut(BaseModel):
    people: list[PersonOut]
    next_cursor: str | None


class DeletedOut(BaseModel):
    deleted: bool
    person_id: str
    person_ids: list[str]
    identifiers: int
    events: int
    timeline_entries: int
    log_records_rewritten: int


class SegmentPreviewIn(BaseModel):
    rule: dict[str, Any] = Field(description="a segment rule (docs/segments.md)")
    dialect: str = Field(default="duckdb", description="also show the SQL in this dialect")
    sample: int = Field(default=20, ge=0, le=1000, strict=True, description="how many members to return")


class SegmentPreviewOut(BaseModel):
    count: int
    sample: list[PersonOut]
    sql: str
    evaluated_on: str = Field(description="the day windows end on, in the workspace's time zone")
    warnings: list[RuleWarningOut] | None = Field(description=f"the rule's {WARNINGS_DOC}")


class WorkspaceOut(BaseModel):
    workspace: str
    people: int
    events_accepted_since_start: int
    log_seq: int
    config: dict[str, Any]
    set_aside: dict[str, int] = Field(description="quarantine entries by source (GET /api/v1/quarantine)")


def _encode_cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(value)).decode().rstrip("=")


def _decode_cursor(cursor: str, type_: Any) -> Any:
    try:
        value = msgspec.json.decode(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)), type=type_)
    except (binascii.Error, msgspec.DecodeError, ValueError):
        value = None
    # a cursor is an offset, a person id or (time, message id): ints this API could have written
    parts = value if isinstance(value, (list, tuple)) else [value]
    if value is None or any(isinstance(p, int) and not 0 <= p < 2**62 for p in parts):
        raise InvalidInput.for_field("cursor", "is not a cursor this API returned")
    return value


_BEARER = HTTPBearer(
    auto_error=False,  # refused below, naming what is wrong with the header
    scheme_name="apiToken",
    description="The workspace's API token (`tsunagu workspace create` prints it): `Authorization: Bearer <token>`.",
)


async def workspace_pipeline(request: Request, _: Annotated[Any, Security(_BEARER)] = None) -> WorkspacePipeline:
    """The dependency every admin endpoint takes: the token's workspace, or 401."""
    platform: Platform = request.app.state.platform
    authorization = request.headers.get("authorization")
    if not authorization:
        raise Unauthorized.for_field("Authorization", "missing: send `Authorization: Bearer <api token>`")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized.for_field("Authorization", "use `Bearer <api token>`")
    workspace = platform.workspace_for_token(token.strip())
    if workspace is None:
        raise Unauthorized.for_field("Authorization", "unknown API token (a write key opens no admin endpoint)")
    try:
        return await platform.pipeline(workspace)
    except TsunaguError:
        raise
    except Exception:
        logging.getLogger("tsunagu.admin").exception("%s: the workspace could not be opened", workspace)
        raise Unavailable("the workspace could not be opened; retry shortly (the server log has why)") from None


Pipe = Annotated[WorkspacePipeline, Depends(workspace_pipeline)]


def _people_filter(pipe: WorkspacePipeline, q: str | None, trait: str | None, value: str | None) -> PeopleFilter:
    """The search: exact identifier matches (listed first, left out of the SQL) and the rest."""
    exact: list[str] = []
    if q:
        for typ in IDENTIFIER_TYPES:
            norm = normalize_value(typ, q)
            if norm and (p := pipe.engine.lookup(typ, norm)) and p.person_id not in exact:
                exact.append(p.person_id)
    if trait is not None and not trait:
        raise InvalidInput.for_field("trait", "must be a trait name")
    return PeopleFilter(text=q or None, trait=trait, value=value, exclude=exact)


async def search_people(
    pipe: WorkspacePipeline, *, q: str | None, trait: str | None, value: str | None, limit: int, offset: int
) -> tuple[list[str], bool]:
    """Person ids matching a search, newest activity first, and whether more follow.

    `q` matches any identifier exactly (those come first) or any text in traits and
    identifiers; `trait`/`value` match one trait.
    """
    search = _people_filter(pipe, q, trait, value)
    exact = list(search.exclude)
    await pipe.flush()
    skip = max(0, offset - len(exact))
    sql, params = people_search_query(search, limit=limit + 1, offset=skip)
    rows = await asyncio.to_thread(pipe.analytics.query, sql, params)
    ids = (exact[offset:] if offset < len(exact) else []) + [r[0] for r in rows]
    return ids[:limit], len(ids) > limit


async def count_people(pipe: WorkspacePipeline, *, q: str | None, trait: str | None, value: str | None) -> int:
    """How many people `search_people` finds in all (its pages together)."""
    search = _people_filter(pipe, q, trait, value)
    await pipe.flush()
    sql, params = people_count_query(search)
    ((n,),) = await asyncio.to_thread(pipe.analytics.query, sql, params)
    return len(search.exclude) + int(n)


def build_admin_app(platform: Platform) -> FastAPI:
    app = FastAPI(
        # Swagger UI and ReDoc load their scripts from a CDN; a self-hosted platform must
        # not. The description is served as OpenAPI JSON (a bundled viewer can come later).
        docs_url=None,
        redoc_url=None,
        title="tsunagu admin API",
        version=__version__,
        description="People, timelines and workspace administration. "
        "Authenticate with `Authorization: Bearer <api token>`. Every error has one shape, "
        '`{"error": {"status", "code", "message", "errors"?: [{"field", "reason", "index"?}]}}`, '
        "and every operation lists the statuses it can answer.",
    )

    app.state.platform = platform
    install_error_handlers(app)

    # First: `/api/v1/segments/overlap` must win over any `/api/v1/segments/{name}` route.
    from .reports import router as reports_router  # it imports this module's helpers

    app.include_router(reports_router)
    from .overview import router as overview_router  # it imports this module's helpers

    app.include_router(overview_router)
    from .datahub import router as datahub_router  # it imports this module's helpers

    app.include_router(datahub_router)

    @app.get("/health", tags=["system"])
    async def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/api/v1/workspace", response_model=WorkspaceOut, tags=["workspace"])
    async def workspace(pipe: Pipe) -> dict[str, Any]:
        return {
            "workspace": pipe.workspace,
            "people": len(pipe.engine.persons),
            "events_accepted_since_start": pipe.stats["accepted"],
            "log_seq": pipe.committed_seq,
            "config": msgspec.to_builtins(pipe.config),
            "set_aside": await asyncio.to_thread(pipe.quarantine.counts),
        }

    @app.get("/api/v1/people/lookup", response_model=PersonOut, tags=["people"], responses=error_responses(404))
    async def lookup(
        pipe: Pipe,
        request: Request,
        type: Annotated[
            str, Query(description="identifier type: " + ", ".join(IDENTIFIER_TYPES) + " or a custom type")
        ],
        value: Annotated[str, Query(description="identifier value")],
    ) -> dict[str, Any]:
        norm = normalize_value(type, value) or value
        person = pipe.engine.lookup(type, norm)
        if person is None:
            raise NotFound.for_field("value", f"no person with {type} {value!r}")
        return _with_computed(pipe, person, request)

    @app.get("/api/v1/people", response_model=PeopleOut, tags=["people"])
    async def search(
        pipe: Pipe,
        q: Annotated[str | None, Query(description="an identifier value, or text found in traits")] = None,
        trait: Annotated[str | None, Query(min_length=1, description="trait name to match exactly")] = None,
        value: Annotated[str | None, Query(description="the trait's value (as text)")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        offset = _decode_cursor(cursor, int) if cursor else 0
        ids, more = await search_people(pipe, q=q, trait=trait, value=value, limit=limit, offset=offset)
        people = [person_json(p) for pid in ids if (p := pipe.engine.get(pid))]
        nxt = _encode_cursor(offset + limit) if more else None
        return {"people": people, "next_cursor": nxt}

    @app.get("/api/v1/people/{person_id}", response_model=PersonOut, tags=["people"], responses=error_responses(404))
    async def get_person(pipe: Pipe, person_id: str, request: Request) -> dict[str, Any]:
        return _with_computed(pipe, pipe.person(person_id), request)

    @app.get(
        "/api/v1/people/{person_id}/data", response_model=PersonDataOut, tags=["people"], responses=error_responses(404)
    )
    async def person_data(pipe: Pipe, person_id: str, request: Request) -> dict[str, Any]:
        """A person's user data: every event field summarised, without any declaration."""
        person = pipe.person(person_id)
        today = pipe.engine.live.day_of(request.app.state.platform.clock())
        folded = await pipe.user_data(person)
        return {
            "person_id": person.person_id,
            "evaluated_on": (date(1970, 1, 1) + timedelta(days=today)).isoformat(),
            "fields": user_data(folded, today),
            "fields_dropped": folded.dropped,
        }

    @app.get(
        "/api/v1/people/{person_id}/events", response_model=TimelineOut, tags=["people"], responses=error_responses(404)
    )
    async def timeline(
        pipe: Pipe,
        person_id: str,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: str | None = None,
        event: Annotated[list[str] | None, Query(description="event names (view, cart, buy, ...)")] = None,
        channel: Annotated[list[str] | None, Query(description="channels (web, app, store, ...)")] = None,
        type: Annotated[list[str] | None, Query(description="types (track, page, identify, merge, ...)")] = None,
    ) -> dict[str, Any]:
        person = pipe.person(person_id)
        cur = tuple(_decode_cursor(cursor, tuple[int, str])) if cursor else None
        rows, nxt = await pipe.timeline(
            person,
            limit=limit,
            cursor=cur,
            events=event or (),
            channels=channel or (),
            types=type or (),  # type: ignore[arg-type]
        )
        for r in rows:
            r["timestamp"] = iso(r["timestamp"])
            r["received_at"] = iso(r["received_at"])
        return {
            "person_id": person.person_id,
            "events": rows,
            "next_cursor": _encode_cursor(list(nxt)) if nxt else None,
        }

    @app.post("/api/v1/segments/preview", response_model=SegmentPreviewOut, tags=["segments"])
    async def preview_segment(pipe: Pipe, body: SegmentPreviewIn, request: Request) -> dict[str, Any]:
        """Count a rule's members now (bulk SQL over the analytics store) and show a sample."""
        count, sample, sql, day = await preview_rule(
            pipe, body.rule, now=request.app.state.platform.clock(), sample=body.sample, dialect=body.dialect
        )
        return {
            "count": count,
            "sample": [person_json(p) for pid in sample if (p := pipe.engine.get(pid))],
            "sql": sql,
            "evaluated_on": day,
            "warnings": await warnings_of(pipe, rule_check(body.rule), flush=False),  # the preview flushed
        }

    @app.delete(
        "/api/v1/people/{person_id}", response_model=DeletedOut, tags=["people"], responses=error_responses(404)
    )
    async def delete_person(pipe: Pipe, person_id: str, request: Request) -> dict[str, Any]:
        result = await pipe.forget(person_id, request.app.state.platform.clock())
        return {"deleted": True, **result}

    from .definitions import router as definitions_router  # it imports this module

    app.include_router(definitions_router)
    from .quarantine import router as quarantine_router  # it imports this module

    app.include_router(quarantine_router)
    document_errors(app)
    return app


def _with_computed(pipe: WorkspacePipeline, person: Person, request: Request) -> dict[str, Any]:
    values = pipe.engine.live.computed_values(person, request.app.state.platform.clock())
    return person_json(person) | {"computed": values}


def user_data(folded: Folded, today: int) -> dict[str, dict[str, Any]]:
    """Every user data field's statistics, the most used first."""
    fields = {name: describe(summary, today, folded.session_no) for name, summary in folded.data.items()}
    return dict(sorted(((k, v) for k, v in fields.items() if v), key=lambda kv: (-kv[1]["count"], kv[0])))
