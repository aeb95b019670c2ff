"""Fuzz the public ingest endpoints of a real `tsunagu serve` with hostile requests.

    python bench/fuzz.py [--requests 100000] [--concurrency 8] [--seed 1] [--out DIR]

What it does
------------
Starts `tsunagu serve` on a free 127.0.0.1 port with a fresh data directory and
workspace (or uses `--url`, `--write-key`, `--token`), then sends `--requests` requests
made by `tests/fuzzing.py` (the generator the suite's fuzz test uses): every path and
method, good and bad credentials, content types and encodings, single messages and
batches, every field of every message with strings and numbers no store can hold
spliced in as raw JSON, and mangled bytes. Request `i` is made by
`random.Random(seed * 1_000_003 + i)`, so any request can be made again by its index.

Each answer must have a status a correct server may give (200, 204, 400, 401, 404, 405,
413: never a 5xx). Afterwards it checks the workspace works for everyone: a good event
is taken and read back, search, a person's data and a segment preview answer.

Output: one JSON object: counts by status and by kind of request, accepted events (the
server's count), requests per second, the server's peak RSS, tracebacks and reopens in
the server log, the after-checks, and every unexpected answer (5xx first) with its index
and a curl reproducer (also written to `--out`/reproducers.txt).
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.fuzzing, the shared generator

from ingest import Server, create_workspace, free_port, log
from tests.fuzzing import hostile_request


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--requests", type=int, default=100_000)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--url", help="fuzz a running server instead of starting one")
    p.add_argument("--write-key")
    p.add_argument("--token", help="the workspace's API token (for the after-checks)")
    p.add_argument("--out", type=Path, help="directory for reproducers.txt and the server log")
    p.add_argument("--quick", action="store_true", help="2,000 requests")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.quick:
        args.requests = 2_000
    out = args.out or Path(tempfile.mkdtemp(prefix="tsunagu-fuzz-"))
    out.mkdir(parents=True, exist_ok=True)
    server = None
    if args.url:
        url, write_key, token = args.url.rstrip("/"), args.write_key, args.token
    else:
        data_dir = out / "data"
        creds = create_workspace(data_dir)
        server = Server(data_dir, free_port(), out / "server.log")
        server.wait_healthy()
        url, write_key, token = server.url, creds["write_key"], creds["api_token"]
    try:
        result = fuzz(args, url, write_key, token, server)
    finally:
        if server is not None:
            server.stop()
    (out / "reproducers.txt").write_text("\n\n".join(u["reproducer"] for u in result["unexpected"]))
    result["out"] = str(out)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 1 if result["unexpected"] or not all(result["after"].values()) else 0


def fuzz(args: argparse.Namespace, url: str, write_key: str, token: str, server: Server | None) -> dict[str, Any]:
    by_status: collections.Counter[int] = collections.Counter()
    by_kind: dict[str, collections.Counter[int]] = collections.defaultdict(collections.Counter)
    unexpected: list[dict[str, Any]] = []
    errors: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()
    next_index = iter(range(args.requests))
    rss_peak = 0
    done = 0

    def worker() -> None:
        nonlocal done
        with httpx.Client(timeout=60) as http:
            while True:
                with lock:
                    i = next(next_index, None)
                if i is None:
                    return
                req = hostile_request(random.Random(args.seed * 1_000_003 + i), write_key)
                try:
                    r = http.request(req.method, url + req.path, headers=req.headers, content=req.body)
                    status = r.status_code
                except httpx.HTTPError as exc:
                    with lock:
                        errors[type(exc).__name__] += 1
                        unexpected.append({"index": i, "status": None, "error": repr(exc),
                                           "reproducer": req.reproducer(url)})  # fmt: skip
                    continue
                with lock:
                    done += 1
                    by_status[status] += 1
                    by_kind[req.kind][status] += 1
                    if status not in req.expect:
                        unexpected.append({"index": i, "status": status, "answer": r.text[:300],
                                           "reproducer": req.reproducer(url)})  # fmt: skip

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(args.concurrency)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        time.sleep(0.5)
        if server is not None:
            rss_peak = max(rss_peak, server.rss())
        log(f"fuzz: {done:,}/{args.requests:,} answered, {len(unexpected)} unexpected")
    wall = time.perf_counter() - started
    after = after_checks(url, write_key, token)
    workspace = httpx.get(url + "/api/v1/workspace", headers={"Authorization": f"Bearer {token}"}, timeout=60).json()
    server_log = server.log_path.read_text(errors="replace") if server is not None else ""
    unexpected.sort(key=lambda u: (-(u["status"] or 600), u["index"]))
    return {
        "requests": args.requests,
        "seed": args.seed,
        "concurrency": args.concurrency,
        "wall_s": round(wall, 1),
        "requests_per_s": round(args.requests / wall),
        "by_status": dict(sorted(by_status.items())),
        "by_kind": {k: dict(sorted(v.items())) for k, v in sorted(by_kind.items())},
        "server_errors_5xx": sum(n for s, n in by_status.items() if s >= 500),
        "connection_errors": dict(errors),
        "events_accepted": workspace.get("events_accepted_since_start"),
        "server_rss_peak_mb": round(rss_peak / 2**20) if server is not None else None,
        "tracebacks_in_server_log": server_log.count("Traceback"),
        "reopens_in_server_log": server_log.count("reopening after a storage error"),
        "engine_refusals_in_server_log": server_log.count("could not apply event"),
        "after": after,
        "unexpected": unexpected[:50],
        "unexpected_total": len(unexpected),
    }


def after_checks(url: str, write_key: str, token: str) -> dict[str, bool]:
    """The workspace works for everyone after the fuzz."""
    user = f"after-fuzz-{uuid.uuid4().hex[:8]}"
    admin = {"Authorization": f"Bearer {token}"}
    checks: dict[str, bool] = {}
    with httpx.Client(base_url=url, timeout=60) as http:
        r = http.post("/v1/track", json={"userId": user, "event": "buy", "properties": {"revenue": 1200}},
                      auth=(write_key, ""))  # fmt: skip
        checks["good_event_accepted"] = r.status_code == 200
        found = http.get("/api/v1/people/lookup", params={"type": "user_id", "value": user}, headers=admin)
        checks["person_found"] = found.status_code == 200
        if found.status_code == 200:
            pid = found.json()["person_id"]
            events = http.get(f"/api/v1/people/{pid}/events", headers=admin)
            checks["timeline_shows_it"] = events.status_code == 200 and len(events.json()["events"]) == 1
            checks["person_data"] = http.get(f"/api/v1/people/{pid}/data", headers=admin).status_code == 200
        checks["search"] = http.get("/api/v1/people", params={"q": "ゴールド"}, headers=admin).status_code == 200
        preview = http.post("/api/v1/segments/preview", json={"rule": {"did": "buy"}}, headers=admin)
        checks["segment_preview"] = preview.status_code == 200 and preview.json()["count"] >= 1
        checks["health"] = http.get("/health").status_code == 200
    return checks


if __name__ == "__main__":
    raise SystemExit(main())
