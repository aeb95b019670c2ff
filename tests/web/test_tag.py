"""The web tag in a real browser: browse, add to cart, log in; one person, both parts."""

from __future__ import annotations

import gzip
import time
from typing import Any

import httpx

from ..conftest import Workspace

# fmt: off
PAGE = """<!doctype html><html lang="ja"><head><meta charset="utf-8"><title>{title}</title>
<script src="{tsunagu}/tag.js?key={key}" async></script></head>
<body><h1>{title}</h1>
<button id="cart" onclick="tsunagu.track('cart', {{sku: 'YH-OT001', price: 29800, quantity: 1}})">カートに入れる</button>
<button id="login" onclick="tsunagu.identify('M-100', {{email: 'Hanako@Example.jp', name: '山田 花子'}})">ログイン</button>
</body></html>"""  # noqa: E501
# fmt: on


def _wait(fn: Any, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = fn()
            if result:
                return result
        except (AssertionError, KeyError, httpx.HTTPError):
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.1)


def _loaded_anonymous_id(page: Any) -> str:
    return page.evaluate(
        "new Promise(r => { const t = () => window.tsunagu && tsunagu.loaded ? r(tsunagu.anonymousId())"
        " : setTimeout(t, 20); t(); })"
    )


def _lookup(ws: Workspace, typ: str, value: str) -> dict[str, Any] | None:
    with ws.client() as c:
        r = c.get("/api/v1/people/lookup", params={"type": typ, "value": value})
    return r.json() if r.status_code == 200 else None


def test_browsing_then_login_is_one_person_with_the_anonymous_and_logged_in_parts(browser, site, workspace) -> None:
    pages = [
        site.page(f"p{i}.html", PAGE.format(title=title, tsunagu=workspace.url, key=workspace.write_key))
        for i, title in enumerate(["トップ", "アウター", "ウールコート"], 1)
    ]
    context = browser.new_context()
    page = context.new_page()
    previous = None
    for url in pages:
        page.goto(url, referer=previous)  # as if a link on the previous page was followed
        page.wait_for_function("window.tsunagu && window.tsunagu.loaded")
        # a reader stays a moment: the page view is sent before the next click (events in
        # flight together are ordered by receive time, which clock-skew correction uses)
        page.wait_for_function("!(JSON.parse(localStorage.getItem('tsg_queue') || '[]').length)")
        previous = url
    page.click("#cart")
    page.click("#login")
    anonymous_id = page.evaluate("tsunagu.anonymousId()")

    person = _wait(lambda: _lookup(workspace, "user_id", "M-100"))
    assert person["identifiers"]["anonymous_id"] == [anonymous_id]
    assert person["identifiers"]["email"] == ["hanako@example.jp"]
    assert person["traits"]["name"] == "山田 花子"

    def timeline() -> list[dict[str, Any]]:
        events = workspace.timeline(person["person_id"], type=["page", "track", "identify"])
        assert len(events) == 5
        return events

    events = list(reversed(_wait(timeline)))  # oldest first
    assert [(e["type"], e["event"]) for e in events] == [
        ("page", "トップ"), ("page", "アウター"), ("page", "ウールコート"), ("track", "cart"), ("identify", None),
    ]  # fmt: skip
    assert [e["properties"].get("path") for e in events[:3]] == ["/p1.html", "/p2.html", "/p3.html"]
    assert events[2]["properties"]["referrer"] == pages[1]
    assert all(e["channel"] == "web" and e["anonymous_id"] == anonymous_id for e in events)
    assert events[3]["properties"] == {"sku": "YH-OT001", "price": 29800, "quantity": 1}
    assert events[4]["user_id"] == "M-100"
    context.close()


def test_the_anonymous_id_is_shared_by_the_sites_pages_and_survives_a_reload(browser, site, workspace) -> None:
    a = site.page("a.html", PAGE.format(title="A", tsunagu=workspace.url, key=workspace.write_key))
    b = site.page("b.html", PAGE.format(title="B", tsunagu=workspace.url, key=workspace.write_key))
    context = browser.new_context()
    page = context.new_page()
    page.goto(a)
    first = _loaded_anonymous_id(page)
    page.goto(b)
    second = _loaded_anonymous_id(page)
    assert first == second
    assert any(c["name"] == "tsg_aid" and c["value"] == first for c in context.cookies())
    person = _wait(lambda: (p := _lookup(workspace, "anonymous_id", first)) and p["event_count"] >= 2 and p)
    assert person["channels"] == {"web": 2}
    context.close()


def test_utm_parameters_become_the_campaign_and_calls_made_before_the_tag_loads_are_kept(
    browser, site, workspace
) -> None:
    html = (
        "<!doctype html><html><head><title>LP</title>"
        "<script>window.tsunagu = window.tsunagu || [];"
        "['track','identify','page'].forEach(function (m) { window.tsunagu[m] = function () {"
        " window.tsunagu.push([m, Array.prototype.slice.call(arguments)]); }; });"
        "tsunagu.track('view', {sku: 'EARLY'});</script>"
        f"<script src='{workspace.url}/tag.js?key={workspace.write_key}' async></script></head><body>LP</body></html>"
    )
    url = site.page("lp.html", html) + "?utm_source=line&utm_medium=message&utm_campaign=winter_sale"
    context = browser.new_context()
    page = context.new_page()
    page.goto(url)
    anonymous_id = _loaded_anonymous_id(page)
    person = _wait(lambda: (p := _lookup(workspace, "anonymous_id", anonymous_id)) and p["event_count"] >= 2 and p)
    events = workspace.timeline(person["person_id"])
    landing = next(e for e in events if e["type"] == "page")
    assert landing["context"]["campaign"] == {"source": "line", "medium": "message", "name": "winter_sale"}
    assert any(e["event"] == "view" and e["properties"] == {"sku": "EARLY"} for e in events)
    context.close()


def test_the_tag_is_small_and_served_compressed(workspace) -> None:
    plain = httpx.get(f"{workspace.url}/tag.js", headers={"Accept-Encoding": "identity"})
    packed = httpx.get(f"{workspace.url}/tag.js", headers={"Accept-Encoding": "gzip"})
    assert plain.status_code == 200 and plain.headers["content-type"].startswith("application/javascript")
    assert packed.headers.get("content-encoding") == "gzip"
    assert len(gzip.compress(plain.content, 9)) < 8 * 1024


def test_segment_browser_sdk_settings_send_everything_to_tsunagu(workspace) -> None:
    r = httpx.get(f"{workspace.url}/v1/projects/{workspace.write_key}/settings")
    assert r.status_code == 200
    seg = r.json()["integrations"]["Segment.io"]
    host = workspace.url.removeprefix("http://")
    assert seg == seg | {"apiKey": workspace.write_key, "apiHost": f"{host}/v1", "protocol": "http"}
    assert r.json()["metrics"]["host"] == f"{host}/v1"
    assert httpx.get(f"{workspace.url}/v1/projects/wk_nobody/settings").status_code == 404


def test_events_still_queued_when_the_page_goes_away_leave_by_beacon(browser, site, workspace) -> None:
    html = (
        "<!doctype html><html><head><title>slow</title>"
        "<script>window.__tsunagu_config = {flushInterval: 60000, autoPage: false};</script>"
        f"<script src='{workspace.url}/tag.js?key={workspace.write_key}'></script></head><body>x</body></html>"
    )
    url = site.page("slow.html", html)
    context = browser.new_context()
    page = context.new_page()
    page.goto(url)
    anonymous_id = _loaded_anonymous_id(page)
    page.evaluate("tsunagu.track('favorite', {sku: 'BEACON'})")  # would wait a minute for its batch
    page.goto("about:blank")  # pagehide: the tag hands the queue to navigator.sendBeacon
    person = _wait(lambda: _lookup(workspace, "anonymous_id", anonymous_id))
    assert [e["properties"] for e in workspace.timeline(person["person_id"])] == [{"sku": "BEACON"}]
    context.close()


def test_events_the_server_did_not_take_are_kept_and_sent_from_a_later_page(browser, site, workspace) -> None:
    dead = "http://127.0.0.1:9"  # nothing listens on the discard port
    offline = (
        "<!doctype html><html><head><title>offline</title>"
        "<script>window.__tsunagu_config = "
        f"{{endpoint: '{dead}', key: '{workspace.write_key}', autoPage: false}};</script>"
        f"<script src='{workspace.url}/tag.js'></script></head><body>x</body></html>"
    )
    online = PAGE.format(title="online", tsunagu=workspace.url, key=workspace.write_key)
    context = browser.new_context()
    page = context.new_page()
    page.goto(site.page("offline.html", offline))
    anonymous_id = _loaded_anonymous_id(page)
    page.evaluate("tsunagu.track('cart', {sku: 'RETRY'})")
    page.wait_for_function("JSON.parse(localStorage.getItem('tsg_queue') || '[]').length === 1")
    page.goto(site.page("online.html", online))  # same site: the stored queue goes out with this page
    person = _wait(lambda: (p := _lookup(workspace, "anonymous_id", anonymous_id)) and p["event_count"] >= 2 and p)
    assert {e["event"] for e in workspace.timeline(person["person_id"])} >= {"cart", "online"}
    context.close()
