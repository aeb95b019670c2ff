"""What the Chromium tests share: logging in as a workspace user, layout checks."""

from __future__ import annotations

from typing import Any

from ..conftest import Workspace

#: the password the tests give the staff user they create (`staff@example.jp`)
PASSWORD = "correct horse battery"


def login(page: Any, url: str, ws: Workspace, email: str = "staff@example.jp") -> None:
    """Log in as a workspace user (the staff user by default) and land on the overview."""
    page.goto(f"{url}/ui/login")
    page.fill("input[name=workspace]", ws.name)
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/ui/")


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
