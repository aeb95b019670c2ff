"""Every page of the admin UI at 1280 px and 820 px in Japanese, in Chromium, on the demo.

The pictures in docs/ui.md are these: `TSUNAGU_SCREENSHOTS=docs python -m pytest
tests/web/test_screenshots.py -n 0` writes them to docs/images/ (with Japanese fonts
installed: Debian's fonts-ipafont-gothic); otherwise they go to a temporary directory.
Either way each page must render without an error, without a horizontal scroll bar and
with its own content, at both widths.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
MEMBER = "M001312"  # the README's member: web, app and the Shibuya store
WIDTHS = (1280, 820)

#: name -> (path, a selector that must be on the page)
PAGES = {
    "overview": ("/ui/", "main .card"),
    "people": ("/ui/people?q=ゴールド", "table.list tbody tr"),
    "karte": ("/ui/people/{pid}", ".timeline .visit"),
    "segments": ("/ui/segments", "table.list tbody tr"),
    "segment-builder": ("/ui/segments/vip/edit", "#live-count"),
    "segment-report": ("/ui/segments/vip/report", "main .card"),
    "live": ("/ui/live", "#live-rows tr"),
    "account": ("/ui/account", ".password-form"),
    "datahub": ("/ui/datahub", ".import-form"),
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    """The quick start's demo workspace, served; (url, admin password, the member's person id)."""
    home = tmp_path_factory.mktemp("shots")
    port = free_port()
    log_path = home / "quickstart.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tsunagu", "quickstart", "--port", str(port)],
        cwd=home, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    while True:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.3)
    banner = log_path.read_text()
    password = next(line.split(" / ")[-1].strip() for line in banner.splitlines() if "admin@example.com /" in line)
    token = json.loads((home / "tsunagu-data" / "credentials.json").read_text())["demo"]["api_token"]
    person = httpx.get(
        url + "/api/v1/people/lookup", params={"type": "user_id", "value": MEMBER},
        headers={"Authorization": f"Bearer {token}"}, timeout=30,
    ).json()  # fmt: skip
    # the report's days before the definition are reconstructed in the background: wait for them
    deadline = time.monotonic() + 300
    while True:
        history = httpx.get(url + "/api/v1/segments/vip/report", params={"days": 1},
                            headers={"Authorization": f"Bearer {token}"}, timeout=30).json()["history"]  # fmt: skip
        if history["status"] == "done" or time.monotonic() > deadline:
            break
        time.sleep(1)
    yield url, password, person["person_id"]
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)
    log.close()


_SPILLED = """() => [...document.querySelectorAll('.card')]
    .filter(c => c.scrollWidth > c.clientWidth + 1)
    .map(c => (c.className + ': ' + c.innerText).slice(0, 80))"""


def _out_dir(tmp_path: Path) -> Path:
    if os.environ.get("TSUNAGU_SCREENSHOTS") == "docs":
        return ROOT / "docs" / "images"
    return tmp_path


def test_every_page_in_japanese_on_a_laptop_and_a_tablet(browser: Any, demo: tuple[str, str, str], tmp_path: Path):
    url, password, pid = demo
    out = _out_dir(tmp_path)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ja-JP")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url + "/ui/login")
    page.fill("input[name=email]", "admin@example.com")  # the workspace is filled in: there is only one
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(url + "/ui/")
    for name, (path, selector) in PAGES.items():
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900 if width > 1000 else 1180})
            page.goto(url + path.format(pid=pid))
            page.wait_for_selector(selector)
            page.wait_for_timeout(300)  # the builder's live count, the live page's first refresh
            assert page.evaluate("document.documentElement.scrollWidth") <= width, (name, width)
            # nothing spills out of its card (a long number in a narrow stat card)
            spilled = page.evaluate(_SPILLED)
            assert not spilled, (name, width, spilled)
            page.screenshot(path=str(out / f"{name}-ja-{width}.png"), full_page=False)
    assert not errors, errors
    context.close()
