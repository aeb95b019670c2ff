"""Layout checks the Chromium tests share."""

from __future__ import annotations

from typing import Any


def no_overlap(page: Any, selector: str) -> None:
    """No two visible elements matching `selector` overlap (half a pixel of slack)."""
    boxes = [b for b in (e.bounding_box() for e in page.locator(selector).all() if e.is_visible()) if b]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            apart = (
                a["x"] + a["width"] <= b["x"] + 0.5
                or b["x"] + b["width"] <= a["x"] + 0.5
                or a["y"] + a["height"] <= b["y"] + 0.5
                or b["y"] + b["height"] <= a["y"] + 0.5
            )
            assert apart, f"{selector}: {a} overlaps {b}"
