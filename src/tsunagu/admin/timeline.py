"""The karte's timeline: entries grouped into visits, readable at a glance.

A web or app visit is a run of that channel's events with no gap over 30 minutes (the
usual session rule); a store visit is the events at one store within 3 hours. Merge and
conflict entries stay where they happened, inside the visit they interrupted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

__all__ = ["Visit", "group_visits"]

SESSION_GAP_MS = 30 * 60_000
STORE_GAP_MS = 3 * 3600_000
SYSTEM = ("merge", "identity_conflict")


@dataclass
class Visit:
    channel: str
    store_id: str | None
    start: int
    end: int
    entries: list[dict[str, Any]] = field(default_factory=list)

    @property
    def revenue(self) -> float:
        return sum(e["amount"] or 0 for e in self.entries if e.get("event") == "buy")

    @property
    def kind(self) -> str:
        kinds = {"web": "visit_web", "app": "visit_app", "store": "visit_store", "system": "visit_segments"}
        return kinds.get(self.channel, "visit_other")


def _describe(row: dict[str, Any]) -> tuple[str, float | None]:
    """A one-line summary and the amount (for purchases)."""
    p = row["properties"]
    if row["type"] in ("page", "screen"):
        return f"{row['event'] or p.get('title') or ''}  {p.get('path') or ''}".strip(), None
    if row["type"] == "identify":
        t = row["traits"]
        shown = [f"{k}: {t[k]}" for k in ("name", "email", "member_rank") if k in t]
        return ", ".join(shown) or ", ".join(f"{k}: {v}" for k, v in list(t.items())[:3]), None
    if row["type"] == "merge":
        ids = p.get("identifiers", {})
        return " · ".join(f"{typ} {v}" for typ, vs in ids.items() for v in vs), None
    if row["type"] == "identity_conflict":
        return f"{p.get('type')}: {', '.join(map(str, p.get('values', [])))}", None
    if row["type"] in ("segment_enter", "segment_exit"):
        return str(p.get("segment", "")), None
    if row["event"] == "buy":
        items = p.get("items") or p.get("products") or []
        names = "、".join(str(i.get("product_name") or i.get("sku")) for i in items if isinstance(i, dict))
        amount = p.get("revenue", p.get("total"))
        return names, amount if isinstance(amount, (int, float)) else None
    if "product_name" in p or "sku" in p:
        price = p.get("price")
        return str(p.get("product_name") or p.get("sku")), price if isinstance(price, (int, float)) else None
    if row["event"] == "checkin":
        return str(p.get("store_name") or row.get("store_id") or ""), None
    return ", ".join(f"{k}: {v}" for k, v in p.items() if not isinstance(v, (dict, list)))[:120], None


def group_visits(rows: list[dict[str, Any]], zone: ZoneInfo) -> list[Visit]:
    """Group newest-first timeline rows into visits, newest visit first."""
    visits: list[Visit] = []
    current: Visit | None = None
    for row in sorted(rows, key=lambda r: (r["timestamp"], r["message_id"])):
        text, amount = _describe(row)
        entry = {
            **row,
            "text": text,
            "amount": amount,
            "time": datetime.fromtimestamp(row["timestamp"] / 1000, UTC).astimezone(zone).strftime("%H:%M"),
            "system": row["type"] in SYSTEM,
        }
        if entry["system"] and current is not None:
            current.entries.append(entry)
            continue
        channel = row["channel"]
        gap = STORE_GAP_MS if channel == "store" else SESSION_GAP_MS
        if (
            current is None
            or current.channel != channel
            or (channel == "store" and current.store_id != row["store_id"])
            or row["timestamp"] - current.end > gap
        ):
            current = Visit(channel, row["store_id"], row["timestamp"], row["timestamp"])
            visits.append(current)
        current.end = row["timestamp"]
        current.entries.append(entry)
    visits.reverse()
    for v in visits:
        v.entries.reverse()
    return visits
