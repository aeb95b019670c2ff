"""The segments pages: the list, the builder with a live count, and the karte's user data panel.

The builder (templates/segment_edit.html, static/builder.js) edits the rule as a tree and
as JSON; every change is counted by `POST /ui/segments/preview`, which runs the same
preview as `POST /api/v1/segments/preview` (bulk SQL over the analytics store), so the
number on the page is the API's, with the same warnings (names the workspace never saw,
shown on the condition they concern, a click away from the nearest name it has). The
names it offers are the workspace's vocabulary: the events seen, page views included,
with counts. Saving goes through the same checked define as
`PUT /api/v1/segments/{name}`. These endpoints take the session cookie and the session's
CSRF token (the `X-CSRF-Token` header), never the API token, and answer every error in the
one shape (admin/json_endpoints.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from ..api.definitions import put_definition
from ..api.preview import preview_rule
from ..api.vocabulary import rule_check, vocabulary, warnings_of
from ..core.computed import COMPUTED_WINDOWS, Aggregate, Cases
from ..core.errors import Forbidden, InvalidInput, NotFound
from ..core.segments import COMPARISONS
from ..core.userdata import STATS, WINDOWS
from ..core.vocabulary import Vocabulary
from .i18n import pick_language, translator
from .json_endpoints import json_body, json_route

if TYPE_CHECKING:
    from ..app import Platform
    from ..pipeline import WorkspacePipeline
    from ..storage.control import Session

__all__ = ["data_rows", "segment_routes"]

log = logging.getLogger("tsunagu.admin")

SAMPLE = 12
#: the words the builder's script shows, in the page's language
BUILDER_LABELS = (
    "match_all", "match_any", "add_condition", "add_group", "exclude", "remove", "cond_did", "cond_trait",
    "cond_data", "cond_computed", "cond_segment", "cond_other", "any_channel", "all_time", "within_days", "times",
    "where", "value", "in_segment", "saving", "invalid_json",
    # warnings (static/builder.js words each kind; {name} and {event} are filled in)
    "did_you_mean", "page_views", "screen_views", "events_count", "warn_unknown_event", "warn_unknown_channel",
    "warn_unknown_channel_on", "warn_unknown_store", "warn_unknown_store_on", "warn_unknown_property",
    "warn_unknown_value", "warn_unknown_field", "warn_unknown_trait", "warn_unknown_computed",
    "warn_unknown_segment", "warnings_title",
)  # fmt: skip
NEW_RULE: dict[str, Any] = {"all": [{"did": "buy", "within_days": 90}]}


def _yen(value: Any) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{value:,.0f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def data_rows(fields: dict[str, dict[str, Any]], limit: int = 40) -> list[dict[str, Any]]:
    """The karte's user data rows: field, count, last 7 / 28 days, and the telling statistic."""
    rows = []
    for name, d in list(fields.items())[:limit]:
        parts = []
        if "sum" in d:
            parts.append(f"Σ {_yen(d['sum'])} · avg {_yen(d['avg'])} · max {_yen(d['max'])}")
        if "most_frequent" in d:
            parts.append(f"★ {d['most_frequent']} ({d['distinct_count']})")
        if "true_count" in d:
            parts.append(f"✓ {d['true_count']} / ✗ {d['false_count']}")
        if "last" in d and "sum" not in d and "most_frequent" not in d:
            parts.append(f"→ {d['last']}")
        rows.append({"field": name, "count": d["count"], "d7": d.get("count_last_7_days", 0),
                     "d28": d.get("count_last_28_days", 0), "summary": " · ".join(parts), "stats": d})  # fmt: skip
    return rows


def _computed_summary(trait: Any) -> str:
    if isinstance(trait, Cases):
        values = ", ".join(str(v) for _, v in trait.cases[:3]) + ("…" if len(trait.cases) > 3 else "")
        return f"{len(trait.cases)} cases → {values}"
    if isinstance(trait, Aggregate):
        what = f"{trait.agg}({trait.prop})" if trait.prop else trait.agg
        scope = [trait.event if trait.event != "*" else "any event"]
        if trait.channel:
            scope.append(trait.channel)
        if trait.where:
            scope.append(", ".join(f"{k}={v}" for k, v in trait.where))
        window = f"last {trait.within_days} days" if trait.within_days else trait.window.replace("_", " ")
        return f"{what} · {' · '.join(scope)} · {window}"
    return ""


def _progress(d: dict[str, Any]) -> int | None:
    fills = d.get("backfill") or []
    total = sum(b["persons_total"] or 0 for b in fills)
    return int(100 * sum(b["persons_done"] for b in fills) / total) if total else None


def segment_routes(
    platform: Platform,
    render: Callable[..., Response],
    pipeline_for: Callable[[Request], Awaitable[tuple[Session, WorkspacePipeline]]],
    guarded: Callable[[Any], Any],
) -> list[Route]:
    """The pages' routes, for `build_ui` (which owns sessions and rendering)."""

    async def list_page(request: Request) -> Response:
        s, pipe = await pipeline_for(request)
        defs = pipe.definitions()
        segments = [d | {"progress": _progress(d)} for d in defs if d["kind"] == "segment"]
        live = pipe.engine.live
        computed = [d | {"progress": _progress(d), "summary": _computed_summary(live.computed.get(d["name"]))}
                    for d in defs if d["kind"] == "computed_trait"]  # fmt: skip
        building = any(d["status"] == "building" for d in defs)
        return render(request, "segments.html", s=s, segments=segments, computed=computed, building=building,
                      saved=request.query_params.get("saved"))  # fmt: skip

    async def _vocabulary(pipe: WorkspacePipeline) -> dict[str, Any]:
        """Names the builder offers, from what the workspace has seen: events (page views
        included, as `$page`) with counts, the most frequent first; channels, stores,
        traits, user data fields; and the workspace's definitions."""
        try:
            seen = (await vocabulary(pipe)).to_dict()
        except Exception:  # the analytics store is unavailable: offer the definitions and free names
            log.warning("%s: the builder offers no names: the vocabulary could not be read", pipe.workspace,
                        exc_info=True)  # fmt: skip
            live = pipe.engine.live
            seen = Vocabulary(computed=set(live.computed), segments=set(live.segments)).to_dict()
        return seen | {
            "ops": list(COMPARISONS), "stats": list(STATS), "windows": list(WINDOWS),
            "computed_windows": list(COMPUTED_WINDOWS),
        }  # fmt: skip

    async def edit_page(request: Request) -> Response:
        s, pipe = await pipeline_for(request)
        name = request.path_params.get("name")
        body: dict[str, Any] = {"rule": NEW_RULE}
        if name is not None:
            try:
                body = pipe.definition("segment", name)["body"]
            except NotFound:
                return render(request, "not_found.html", status=404, s=s)
        vocab = await _vocabulary(pipe)
        if name:
            vocab["segments"] = [n for n in vocab["segments"] if n != name]
        t = translator(pick_language(request.cookies.get("tsg_lang"), request.headers.get("accept-language")))
        return render(
            request, "segment_edit.html", s=s, segment=name, description=body.get("description", ""),
            builder={"rule": body["rule"], "vocabulary": vocab, "name": name},
            labels={key: t(key) for key in BUILDER_LABELS},
            rule_json=json.dumps(body["rule"], ensure_ascii=False, indent=2),
        )  # fmt: skip

    def _check_csrf(request: Request, s: Session) -> None:
        if request.headers.get("x-csrf-token") != s.csrf:
            raise Forbidden.for_field("X-CSRF-Token", "missing or wrong: send the CSRF token of the session's page")

    async def preview(request: Request) -> Response:
        s, pipe = await pipeline_for(request)
        _check_csrf(request, s)
        data = await json_body(request)
        count, ids, _, day = await preview_rule(pipe, data.get("rule"), now=platform.clock(), sample=SAMPLE)
        sample = []
        for pid in ids:
            p = pipe.engine.get(pid)
            if p is not None:
                sample.append({"person_id": p.person_id, "name": p.traits.get("name") or "",
                               "user_id": (p.identifiers.get("user_id") or [""])[0]})  # fmt: skip
        warnings = await warnings_of(pipe, rule_check(data.get("rule")), flush=False)  # the preview flushed
        return JSONResponse({"count": count, "sample": sample, "evaluated_on": day, "warnings": warnings})

    async def save(request: Request) -> Response:
        s, pipe = await pipeline_for(request)
        _check_csrf(request, s)
        data = await json_body(request)
        name = data.get("name")
        if not isinstance(name, str):
            raise InvalidInput.for_field("name", "must be a name")
        body: dict[str, Any] = {"rule": data.get("rule")}
        if data.get("description"):
            body["description"] = data["description"]
        out = await put_definition(pipe, "segment", name, body, platform.clock())
        return JSONResponse({"name": name, "changed": out["changed"], "status": out["status"],
                             "members": out.get("members"), "redirect": f"/ui/segments?saved={name}"})  # fmt: skip

    async def delete(request: Request) -> Response:
        s, pipe = await pipeline_for(request)
        form = await request.form()
        if form.get("csrf") != s.csrf:
            return Response("CSRF token missing or wrong", status_code=403)
        await pipe.undefine("segment", request.path_params["name"], platform.clock())
        return RedirectResponse("/ui/segments", status_code=303)

    return [
        Route("/segments", guarded(list_page)),
        Route("/segments/new", guarded(edit_page)),
        json_route("/segments/preview", preview),
        json_route("/segments/save", save),
        Route("/segments/{name}/edit", guarded(edit_page)),
        Route("/segments/{name}/delete", guarded(delete), methods=["POST"]),
    ]
