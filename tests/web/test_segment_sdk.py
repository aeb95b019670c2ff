"""A site running Segment's browser SDK (@segment/analytics-next, from the npm registry
via `npm ci`) switches to tsunagu by pointing the SDK's CDN at tsunagu, nothing else."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from ..conftest import Server, Workspace, free_port

SDK_DIR = Path(__file__).resolve().parents[2] / "node_modules" / "@segment" / "analytics-next" / "dist" / "umd"

# Segment's documented snippet, with its CDN address changed to tsunagu's.
SNIPPET = """<!doctype html><html><head><meta charset="utf-8"><title>Segment site</title>
<script>
  !function(){var i="analytics",analytics=window[i]=window[i]||[];if(!analytics.initialize)
  if(analytics.invoked)window.console&&console.error&&console.error("Segment snippet included twice.");
  else{analytics.invoked=!0;analytics.methods=["trackSubmit","trackClick","trackLink","trackForm","pageview",
  "identify","reset","group","track","ready","alias","debug","page","screen","once","off","on","addSourceMiddleware",
  "addIntegrationMiddleware","setAnonymousId","addDestinationMiddleware","register"];
  analytics.factory=function(e){return function(){
  if(window[i].initialized)return window[i][e].apply(window[i],arguments);
  var n=Array.prototype.slice.call(arguments);if(["track","screen","alias","group","page","identify"].indexOf(e)>-1){
  var c=document.querySelector("link[rel='canonical']");n.push({__t:"bpc",c:c&&c.getAttribute("href")||void 0,
  p:location.pathname,u:location.href,s:location.search,t:document.title,r:document.referrer})}n.unshift(e);
  analytics.push(n);return analytics}};for(var n=0;n<analytics.methods.length;n++){var key=analytics.methods[n];
  analytics[key]=analytics.factory(key)}analytics.load=function(key,n){var t=document.createElement("script");
  t.type="text/javascript";t.async=!0;t.setAttribute("data-global-segment-analytics-key",i);
  t.src="CDN/analytics.js/v1/" + key + "/analytics.min.js";var r=document.getElementsByTagName("script")[0];
  r.parentNode.insertBefore(t,r);analytics._loadOptions=n};analytics._writeKey="WRITE_KEY";analytics._cdn="CDN";
  analytics.SNIPPET_VERSION="5.2.0";
  analytics.load("WRITE_KEY");
  analytics.page();
  }}();
</script></head><body>
<button id="buy" onclick="analytics.track('view', {sku: 'YH-OT001', price: 29800})">view</button>
<button id="login" onclick="analytics.identify('M-55', {email: 'taro@example.jp', name: '佐藤 太郎'})">login</button>
</body></html>"""


@pytest.fixture(scope="module")
def sdk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if not (SDK_DIR / "standalone.js").exists():
        pytest.fail("@segment/analytics-next is not installed: run `npm ci` (.ci/run does)")
    os.environ["TSUNAGU_BROWSER_SDK_DIR"] = str(SDK_DIR)
    try:
        srv = Server(tmp_path_factory.mktemp("sdk"), free_port())
        srv.start()
    finally:
        del os.environ["TSUNAGU_BROWSER_SDK_DIR"]
    yield srv
    srv.stop()


def _wait(fn: Any, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := fn():
            return result
        time.sleep(0.1)
    raise AssertionError("timed out")


def _member(ws: Workspace) -> dict[str, Any] | None:
    """M-55 once the page, the view and the identify have all arrived."""
    with ws.client() as c:
        r = c.get("/api/v1/people/lookup", params={"type": "user_id", "value": "M-55"})
    return r.json() if r.status_code == 200 and r.json()["event_count"] >= 3 else None


def test_segment_browser_sdk_pointed_at_tsunagu_sends_track_and_identify_to_it_only(
    browser, site, sdk_server: Server
) -> None:
    ws: Workspace = sdk_server.create_workspace()
    url = site.page("segment.html", SNIPPET.replace("CDN", sdk_server.url).replace("WRITE_KEY", ws.write_key))
    context = browser.new_context()
    page = context.new_page()
    hosts: list[str] = []
    page.on("request", lambda r: hosts.append(urlparse(r.url).netloc))
    page.goto(url)
    page.wait_for_function("window.analytics && window.analytics.initialized === true", timeout=15000)
    page.click("#buy")
    page.click("#login")

    p = _wait(lambda: _member(ws))
    events = ws.timeline(p["person_id"], type=["page", "track", "identify"])
    assert sorted((e["type"], e["event"]) for e in events) == [("identify", None), ("page", None), ("track", "view")]
    view = next(e for e in events if e["type"] == "track")
    assert view["properties"] == {"sku": "YH-OT001", "price": 29800}
    assert view["context"]["library"]["name"] == "analytics.js"
    assert p["traits"]["name"] == "佐藤 太郎" and p["identifiers"]["email"] == ["taro@example.jp"]
    assert len(p["identifiers"]["anonymous_id"]) == 1  # the SDK's anonymous part joined the member
    # nothing left for Segment's CDN or API: every request went to the site or to tsunagu
    assert set(hosts) <= {urlparse(site.url).netloc, urlparse(sdk_server.url).netloc}, set(hosts)
    context.close()


def test_the_sdk_files_are_served_only_from_the_configured_package(sdk_server: Server, server: Server) -> None:
    assert httpx.get(f"{sdk_server.url}/analytics-next/bundles/..%2F..%2Fpackage.json").status_code == 404
    r = httpx.get(f"{server.url}/analytics.js/v1/wk_x/analytics.min.js")  # a server without the SDK
    assert r.status_code == 404 and "TSUNAGU_BROWSER_SDK_DIR" in r.json()["error"]["message"]


def test_segment_browser_sdk_in_batching_mode_posts_to_v1_b(browser, site, sdk_server: Server) -> None:
    ws: Workspace = sdk_server.create_workspace()
    options = (
        '{integrations: {"Segment.io": {deliveryStrategy: {strategy: "batching", config: {size: 3, timeout: 200}}}}}'
    )
    html = SNIPPET.replace('analytics.load("WRITE_KEY");', f'analytics.load("WRITE_KEY", {options});')
    url = site.page("batching.html", html.replace("CDN", sdk_server.url).replace("WRITE_KEY", ws.write_key))
    context = browser.new_context()
    page = context.new_page()
    posts: list[str] = []
    page.on("request", lambda r: posts.append(urlparse(r.url).path) if r.method == "POST" else None)
    page.goto(url)
    page.wait_for_function("window.analytics && window.analytics.initialized === true", timeout=15000)
    page.click("#buy")
    page.click("#login")

    p = _wait(lambda: _member(ws))
    assert p["traits"]["email"] == "taro@example.jp"
    # sync Playwright runs `request` listeners only inside a Playwright call, and _wait
    # polls tsunagu over HTTP: give the page's queued events a turn before reading them
    deadline = time.monotonic() + 5
    while "/v1/b" not in posts and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert "/v1/b" in posts and not {"/v1/t", "/v1/i", "/v1/p"} & set(posts), posts
    context.close()
