"""The overview page's charts: bars per day and channel as inline SVG geometry.

The SVG stretches to the card's width (`preserveAspectRatio="none"`), so it holds only
shapes; the axis labels are HTML around it (text in a stretched SVG would be squashed).
The y axis starts at 0 and ends at a round value at or above the largest bar, labelled.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Any

from ..sql.overview import CHANNELS
from .karte import CHANNEL_MIX

__all__ = ["DAY_CHOICES", "H", "W", "bar_chart", "day_labels", "mix_label", "nice_top"]

DAY_CHOICES = (7, 30, 90)
W, H = 600, 160  # the drawing box, in SVG user units
_MAX_LABELS = 7  # x-axis day labels: few enough never to touch at 820 px


def nice_top(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^k at or above `value` (1 for nothing)."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power * (1 + 1e-12):
            top = step * power
            return int(top) if float(top).is_integer() else top
    return 10 * power  # pragma: no cover (the loop ends at 10)


def bar_chart(daily: list[dict[str, Any]], measure: str, *, stacked: bool) -> dict[str, Any]:
    """Bars of `measure` (revenue, buyers) per day and channel, stacked or side by side."""
    n = len(daily)
    slot = W / n
    values = [[getattr(d[ch], measure) for ch in CHANNELS] for d in daily]
    top = nice_top(max([sum(v) if stacked else max(v) for v in values] + [0]))
    bars = []
    for i, (d, vs) in enumerate(zip(daily, values, strict=True)):
        left, width = i * slot + slot * 0.12, slot * 0.76
        base = 0.0
        for j, (ch, v) in enumerate(zip(CHANNELS, vs, strict=True)):
            if not v:
                continue
            h = v / top * H
            if stacked:
                x, w, y = left, width, H - base - h
                base += h
            else:
                w = width / len(CHANNELS)
                x, y = left + j * w, H - h
            bars.append({"channel": ch, "x": round(x, 2), "y": round(y, 2), "w": round(w, 2), "h": round(h, 2),
                         "value": v, "day": d["day"]})  # fmt: skip
    return {"bars": bars, "top": top, "grid": [round(H / 2, 2)]}


def day_labels(days: list[date]) -> list[dict[str, Any]]:
    """Labels under the bars: at most seven, today always, evenly spaced back from it;
    `left` is the centre of the day's slot in percent of the plot's width."""
    n = len(days)
    every = max(1, math.ceil(n / _MAX_LABELS))
    picked = range(n - 1, -1, -every)
    return [
        {"left": round((i + 0.5) / n * 100, 3), "text": f"{days[i].month}/{days[i].day}", "day": days[i].isoformat()}
        for i in sorted(picked)
    ]


def mix_label(value: str, lang: str) -> str:
    """A channel-mix class in the UI's language (the value itself when it has no label)."""
    pair = CHANNEL_MIX.get(value)
    return value if pair is None else pair[0 if lang == "ja" else 1]
