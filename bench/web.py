"""Issue #4 figures: the tag's size, track() to timeline latency, the karte's server time.

    python bench/web.py [--events 1000] [--karte-events 10000] [--others 2000]

Starts a real `tsunagu serve` on 127.0.0.1 and prints one JSON object:

* `tag_gzip_bytes`: /tag.js as served, gzipped;
* `track_to_timeline_ms`: a page in Chromium (Debian's, via Playwright) calls
  `tsunagu.track()` every 20 ms; a poller reads the person's timeline through the admin
  API and notes when each event first shows; p50/p99/max over `--events` events;
* `karte_ms`: GET /ui/people/{id} for a person with `--karte-events` events (among the
  demo retailer's `--others` people), measured on the client over loopback, p50/p99 over
  50 requests after a warm-up.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(len(values) * p))], 1)


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": pct(values, 0.5), "p99": pct(values, 0.99), "max": round(max(values), 1),
            "mean": round(statistics.mean(values), 1)}  # fmt: skip


def tsunagu(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "tsunagu", *args], check=True, capture_output=True, text=True).stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--karte-events", type=int, default=10_000)
    ap.add_argument("--others", type=int, default=2000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tsunagu-bench-web-"))
    data = tmp / "data"
    print("loading the demo retailer ...", file=sys.stderr)
    tsunagu("demo", "--size", str(args.others), "--data-dir", str(data))
    creds = json.loads((data / "credentials.json").read_text())["demo"]
    tsunagu("user", "create", "demo", "bench@example.jp", "--password", "bench-password", "--data-dir", str(data))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "tsunagu", "serve", "--data-dir", str(data), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        report = {
            "tag_gzip_bytes": len(gzip.compress(httpx.get(url + "/tag.js").content, 9)),
            "track_to_timeline_ms": track_latency(url, creds, args.events, tmp),
            "karte_ms": karte_time(url, creds, args.karte_events),
            "config": vars(args),
        }
        print(json.dumps(report, indent=2))
    finally:
        os.killpg(server.pid, signal.SIGINT)
        server.wait(60)


def track_latency(url: str, creds: dict[str, str], n: int, tmp: Path) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    site = tmp / "site"
    site.mkdir()
    (site / "index.html").write_text(
        f"<!doctype html><title>bench</title><script src='{url}/tag.js?key={creds['write_key']}'></script>"
    )
    handler = lambda *a, **k: SimpleHTTPRequestHandler(*a, directory=str(site), **k)  # noqa: E731
    SimpleHTTPRequestHandler.log_message = lambda *a: None  # type: ignore[method-assign]
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    sent: dict[int, float] = {}
    seen: dict[int, float] = {}
    auth = {"Authorization": f"Bearer {creds['api_token']}"}
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
        )
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{httpd.server_address[1]}/index.html")
        anon = page.evaluate("tsunagu.anonymousId()")
        with httpx.Client(base_url=url, headers=auth, timeout=30) as api:
            pid = None
            while pid is None:
                r = api.get("/api/v1/people/lookup", params={"type": "anonymous_id", "value": anon})
                pid = r.json()["person_id"] if r.status_code == 200 else None
            done = threading.Event()

            def poll() -> None:
                with httpx.Client(base_url=url, headers=auth, timeout=30) as c:
                    while not done.is_set():
                        r = c.get(
                            f"/api/v1/people/{pid}/events", params={"limit": 100, "event": "bench", "type": "track"}
                        )
                        if r.status_code != 200:
                            print(f"poll: {r.status_code} {r.text[:200]}", file=sys.stderr)
                            time.sleep(0.1)
                            continue
                        events = r.json()
                        now = time.time() * 1000
                        for e in events["events"]:
                            seen.setdefault(e["properties"]["i"], now)
                        if len(seen) >= n:
                            return

            poller = threading.Thread(target=poll)
            poller.start()
            for i in range(n):
                sent[i] = page.evaluate(f"(() => {{ tsunagu.track('bench', {{i: {i}}}); return Date.now(); }})()")
                time.sleep(0.02)
            poller.join(120)
            done.set()
        browser.close()
    httpd.shutdown()
    latencies = [seen[i] - sent[i] for i in sent if i in seen]
    return {**summary(latencies), "lost": n - len(latencies)}


def karte_time(url: str, creds: dict[str, str], n: int) -> dict[str, float]:
    batch = []
    with httpx.Client(base_url=url, auth=(creds["write_key"], ""), timeout=60) as c:
        start = int(time.time() * 1000) - n * 60_000
        for i in range(n):
            channel = "store" if i % 25 == 0 else "web"
            batch.append({
                "type": "track", "userId": "BENCH-KARTE", "event": "buy" if channel == "store" else "view",
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime((start + i * 60_000) / 1000)) + "Z",
                "properties": {"sku": f"SKU{i % 300:04d}", "product_name": "ウールコート", "price": 29800},
                "context": {"channel": channel, **({"store_id": "S001"} if channel == "store" else {})},
            })  # fmt: skip
            if len(batch) == 100:
                c.post("/v1/batch", json={"batch": batch}).raise_for_status()
                batch = []
    ui = httpx.Client(base_url=url, timeout=60)
    page = ui.get("/ui/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    ui.post("/ui/login", data={"csrf": token, "workspace": "demo", "email": "bench@example.jp",
                               "password": "bench-password"})  # fmt: skip
    pid = httpx.get(
        url + "/api/v1/people/lookup", params={"type": "user_id", "value": "BENCH-KARTE"},
        headers={"Authorization": f"Bearer {creds['api_token']}"},
    ).json()["person_id"]  # fmt: skip
    times = []
    for i in range(60):
        t0 = time.perf_counter()
        r = ui.get(f"/ui/people/{pid}")
        elapsed = (time.perf_counter() - t0) * 1000
        assert r.status_code == 200 and "visit" in r.text
        if i >= 10:
            times.append(elapsed)
    return {**summary(times), "person_events": n, "rows_shown": 1000}


if __name__ == "__main__":
    main()
