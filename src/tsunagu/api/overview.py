"""`GET /api/v1/overview`: the morning overview (sql/overview.py) as JSON.

The admin UI's overview page renders the same function, so the two never disagree.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from ..sql.overview import MAX_DAYS, Overview, overview, today_in
from .admin import Pipe

if TYPE_CHECKING:
    from ..pipeline import WorkspacePipeline

__all__ = ["router", "workspace_overview"]


async def workspace_overview(pipe: WorkspacePipeline, days: int, now: int) -> Overview:
    """The overview of the `days` days ending today (in the workspace's zone) as of `now` (ms)."""
    await pipe.flush()
    zone = pipe.config.timezone
    return await asyncio.to_thread(
        overview, pipe.analytics.query, today=today_in(now, zone), days=days, timezone=zone,
        computed=pipe.engine.live.computed,
    )  # fmt: skip


class ChannelTotalsOut(BaseModel):
    revenue: float = Field(description="sum of `properties.revenue` of the purchases (yen)")
    orders: int = Field(description="purchases (`buy` events)")
    buyers: int = Field(description="distinct people with a purchase")


class OverviewDayOut(BaseModel):
    day: str = Field(description="a calendar day in the workspace's time zone", examples=["2026-11-20"])
    web: ChannelTotalsOut
    app: ChannelTotalsOut
    store: ChannelTotalsOut


class SharesOut(BaseModel):
    store_buyers: int = Field(description="people who bought in a store in the range")
    store_buyers_online_same_month: int = Field(
        description="of them, people with a web or app visit in the calendar month of one of those purchases"
    )
    store_online_share: float | None = Field(description="the second over the first (null when no store buyer)")
    online_buyers: int = Field(description="people who bought on the web or in the app in the range")
    online_buyers_also_in_store: int = Field(description="of them, people who also bought in a store in the range")
    online_store_share: float | None = Field(description="the second over the first (null when no online buyer)")


class ClassOut(BaseModel):
    class_: str = Field(alias="class", description="the `cross_channel_class` value")
    people: int
    avg_ltv: float = Field(description="average `ltv` of those people (0 for people without a purchase)")


class ViewedOut(BaseModel):
    product: str = Field(description="`sku`, else `product_id`, else `product_name`")
    name: str | None
    views: int = Field(description="`view` events on web or app")
    people: int


class BoughtOut(BaseModel):
    product: str
    name: str | None
    units: float = Field(description="sum of `quantity` of the purchase's items (1 when missing)")
    receipts: int = Field(description="store purchases with the product")
    revenue: float = Field(description="sum of quantity × price of those items (yen)")


class OverviewOut(BaseModel):
    timezone: str
    first_day: str
    last_day: str = Field(description="today in the workspace's time zone")
    days: int
    daily: list[OverviewDayOut] = Field(description="oldest first; the last is today")
    totals: dict[str, ChannelTotalsOut] = Field(description="web, app and store over the range")
    all_channels: ChannelTotalsOut = Field(description="every purchase in the range, whatever its channel")
    shares: SharesOut
    classes: list[ClassOut] = Field(description="people and average LTV by channel-mix class, now; most first")
    viewed_online: list[ViewedOut] = Field(description="the 10 products viewed most on web and app")
    bought_in_store: list[BoughtOut] = Field(description="the 10 products bought most in stores (units)")


router = APIRouter(tags=["reports"])


@router.get("/api/v1/overview", response_model=OverviewOut, response_model_by_alias=True)
async def get_overview(
    pipe: Pipe,
    request: Request,
    days: Annotated[int, Query(ge=1, le=MAX_DAYS, description="the range: this many days ending today")] = 30,
) -> dict[str, Any]:
    """Sales per day by channel, cross-channel shares, channel-mix classes and top products (docs/reports.md)."""
    result = await workspace_overview(pipe, days, request.app.state.platform.clock())
    return result.to_json()
