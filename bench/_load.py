"""Load worker for bench/ingest.py: retail event pools and a cheap keep-alive HTTP/1.1 client.

One worker is one OS process (started with multiprocessing "spawn" by bench/ingest.py).
Before any timing it builds pools of complete request bytes (request line, headers and
JSON body). A request's messageIds are made unique by overwriting a fixed-width 9-digit
field inside every messageId with a per-process request counter, at offsets found once
when the pool was built, so no JSON is encoded while the clock runs and Content-Length
never changes:

    "messageId":"bench-3fa9c1-01-#########-017"   (pool template)
    "messageId":"bench-3fa9c1-01-000004711-017"   (request 4711 of worker 01, event 17)

The client is raw asyncio streams (on uvloop when importable): write one request, read the
status line and headers up to the blank line, read Content-Length bytes of body, record the
latency with time.perf_counter, repeat. No pipelining: each connection has exactly one
request in flight, like an SDK or a collector with N keep-alive connections.

The people are shared by every worker (same seed), so identity resolution sees the same
anonymousIds and userIds arriving from different connections and processes.
"""

from __future__ import annotations

import array
import asyncio
import base64
import json
import random
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any

__all__ = ["PhaseResult", "PhaseSpec", "WorkerConfig", "worker_main"]

PLACEHOLDER = b"#########"  # the per-request counter field inside every messageId
OK_BODY = b'{"success":true}'  # what the ingest answers when every event was taken


# -- configuration and results (all picklable: they cross the process boundary) ----------


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    index: int
    host: str
    port: int
    write_key: str
    run_id: str
    connections: int
    batch_size: int
    batch_pool: int
    single_pool: int
    people: int
    seed: int


@dataclass(frozen=True, slots=True)
class PhaseSpec:
    name: str
    kind: str  # "batch" (POST /v1/batch) or "single" (POST /v1/track)
    max_requests: int | None  # this worker's share; None: run for duration_s
    duration_s: float  # hard cap on the phase
    start_at: float  # time.perf_counter() value (CLOCK_MONOTONIC: shared by processes)
    record_latency: bool = True


@dataclass(slots=True)
class PhaseResult:
    worker: int
    phase: str
    requests_ok: int = 0
    events_ok: int = 0
    requests_sent: int = 0
    statuses: dict[int, int] = field(default_factory=dict)  # non-200 answers
    ok_with_rejections: int = 0  # 200 whose body was not {"success":true}
    connection_errors: int = 0
    unfinished: int = 0  # requests still in flight when the phase was cut off
    error_samples: list[str] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0
    cpu_s: float = 0.0
    latencies: bytes = b""  # array("d") of seconds, one per 200 answer
    events_per_second: list[int] = field(default_factory=list)  # [k]: events answered 200 in second k after start_at


@dataclass(frozen=True, slots=True)
class Template:
    data: bytes  # the whole request, messageId counters still PLACEHOLDER
    offsets: tuple[int, ...]  # where each PLACEHOLDER starts
    events: int


# -- the retail population ---------------------------------------------------------------

_CATEGORIES = (
    "shoes/running", "shoes/casual", "apparel/tops", "apparel/outerwear", "apparel/bottoms",
    "bags", "accessories/watches", "beauty/skincare", "home/kitchen", "outdoor/camping",
)  # fmt: skip
_BRANDS = ("Kaze", "Hoshi", "Arata", "Mori Works", "Nagi", "Sorairo", "Tsubame", "Hikari")
_NOUNS = (
    "ランニングシューズ",
    "リネンシャツ",
    "ダウンジャケット",
    "トートバッグ",
    "腕時計",
    "化粧水",
    "鉄フライパン",
    "テント",
)
_PAGES = (("Home", "/"), ("Category", "/c/"), ("Product Detail", "/p/"), ("Search", "/search"), ("Cart", "/cart"))
_REFERRERS = (
    "https://www.google.com/",
    "https://www.instagram.com/",
    "https://line.me/",
    "",
    "https://shop.example.jp/",
)
_USER_AGENTS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
    "Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 "
    "Safari/605.1.15",
)
_APP_CONTEXT: dict[str, Any] = {
    "app": {"name": "ShopApp", "version": "5.2.1", "build": "521", "namespace": "jp.example.shop"},
    "device": {"manufacturer": "Apple", "model": "iPhone15,2", "type": "ios"},
    "os": {"name": "iOS", "version": "17.4"},
    "library": {"name": "analytics-swift", "version": "1.5.0"},
    "network": {"wifi": True, "carrier": "docomo"},
    "locale": "ja-JP",
    "timezone": "Asia/Tokyo",
}


@dataclass(frozen=True, slots=True)
class Person:
    web_anon: str
    app_anon: str | None  # has the app too: a second device, merged through userId or email
    user_id: str | None  # a member who logs in
    email: str | None


@dataclass(frozen=True, slots=True)
class Product:
    sku: str
    name: str
    category: str
    brand: str
    price: int


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-{h[20:]}"


def make_people(n: int, seed: int) -> list[Person]:
    """The same n people in every worker: ~45% members, ~35% also use the app."""
    rng = random.Random(seed)
    people = []
    for i in range(n):
        member = rng.random() < 0.45
        people.append(
            Person(
                web_anon=_uuid(rng),
                app_anon=_uuid(rng) if rng.random() < 0.35 else None,
                user_id=f"M{i:07d}" if member else None,
                email=f"customer{i}@example.jp" if member or rng.random() < 0.2 else None,
            )
        )
    return people


def make_catalog(n: int, seed: int) -> list[Product]:
    rng = random.Random(seed + 1)
    return [
        Product(
            sku=f"SKU-{i:06d}",
            name=f"{rng.choice(_BRANDS)} {rng.choice(_NOUNS)} {i % 97}",
            category=rng.choice(_CATEGORIES),
            brand=rng.choice(_BRANDS),
            price=rng.randrange(980, 39800, 10),
        )
        for i in range(n)
    ]


class EventFactory:
    """Realistic Segment-spec retail messages: page, view, cart, buy, identify."""

    KINDS = ("page", "view", "cart", "buy", "identify")
    WEIGHTS = (32, 33, 15, 7, 13)

    def __init__(self, people: list[Person], catalog: list[Product], rng: random.Random) -> None:
        self.people = people
        self.catalog = catalog
        self.rng = rng
        self.now = time.time()

    def _iso(self, seconds_ago: float) -> str:
        stamp = datetime.fromtimestamp(self.now - seconds_ago, UTC).isoformat(timespec="milliseconds")
        return stamp.replace("+00:00", "Z")

    def _web_context(self, path: str) -> dict[str, Any]:
        rng = self.rng
        return {
            "channel": "web",
            "ip": f"203.0.113.{rng.randrange(1, 255)}",
            "locale": "ja-JP",
            "userAgent": rng.choice(_USER_AGENTS),
            "library": {"name": "analytics.js", "version": "npm:next-1.70.0"},
            "page": {"path": path, "url": "https://shop.example.jp" + path, "referrer": rng.choice(_REFERRERS)},
        }

    def message(self, message_id: str, *, track_only: bool = False) -> dict[str, Any]:
        rng = self.rng
        person = self.people[int(len(self.people) * rng.random() ** 1.3)]  # some people are busier
        kind = (
            rng.choices(self.KINDS[1:4], self.WEIGHTS[1:4])[0]
            if track_only
            else rng.choices(self.KINDS, self.WEIGHTS)[0]
        )
        product = self.catalog[rng.randrange(len(self.catalog))]
        on_app = person.app_anon is not None and rng.random() < 0.4
        anon = person.app_anon if on_app and person.app_anon else person.web_anon
        path = "/p/" + product.sku.lower()
        msg: dict[str, Any] = {"messageId": message_id, "timestamp": self._iso(rng.uniform(0.5, 30))}
        if on_app:
            msg["context"] = {"channel": "app", **_APP_CONTEXT}
        else:
            msg["context"] = self._web_context(path)
        # Before login only the device id; after it both, or the userId alone (server side).
        if kind == "identify":
            msg["type"] = "identify"
            msg["anonymousId"] = anon
            traits: dict[str, Any] = {"locale": "ja-JP", "newsletter": rng.random() < 0.5}
            if person.user_id is not None:
                msg["userId"] = person.user_id
                traits["member_rank"] = rng.choice(("regular", "silver", "gold"))
            if person.email is not None:
                traits["email"] = person.email
            msg["traits"] = traits
            return msg
        if person.user_id is not None:
            r = rng.random()
            if r < 0.8:
                msg["anonymousId"] = anon
            if r >= 0.45:
                msg["userId"] = person.user_id
        else:
            msg["anonymousId"] = anon
        item = {
            "sku": product.sku,
            "product_id": product.sku[4:],
            "name": product.name,
            "category": product.category,
            "brand": product.brand,
            "price": product.price,
            "currency": "JPY",
        }
        if kind == "page":
            title, prefix = rng.choice(_PAGES)
            page_path = path if prefix == "/p/" else prefix
            msg.update(
                type="page",
                name=title,
                properties={"path": page_path, "url": "https://shop.example.jp" + page_path, "title": title},
            )
        elif kind == "view":
            msg.update(type="track", event="view", properties={**item, "position": rng.randrange(1, 40)})
        elif kind == "cart":
            msg.update(
                type="track",
                event="cart",
                properties={**item, "quantity": rng.randrange(1, 4), "cart_id": f"c{rng.getrandbits(40):x}"},
            )
        else:
            lines = [self.catalog[rng.randrange(len(self.catalog))] for _ in range(rng.randrange(1, 3))]
            msg.update(
                type="track",
                event="buy",
                properties={
                    "order_id": f"O{rng.getrandbits(48):012x}",
                    "total": sum(p.price for p in lines),
                    "currency": "JPY",
                    "products": [{"sku": p.sku, "price": p.price, "quantity": 1} for p in lines],
                },
            )
        return msg


def _request(path: str, host: str, port: int, write_key: str, body: bytes) -> bytes:
    auth = base64.b64encode(f"{write_key}:".encode()).decode()
    head = (
        f"POST {path} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        "User-Agent: tsunagu-bench/1\r\n"
        f"Authorization: Basic {auth}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode() + body


def _template(data: bytes, events: int) -> Template:
    offsets = []
    at = data.find(PLACEHOLDER)
    while at != -1:
        offsets.append(at)
        at = data.find(PLACEHOLDER, at + len(PLACEHOLDER))
    if len(offsets) != events:
        raise AssertionError(f"expected {events} messageId placeholders, found {len(offsets)}")
    return Template(data, tuple(offsets), events)


def build_pools(cfg: WorkerConfig) -> tuple[list[Template], list[Template], dict[str, float]]:
    """Every request this worker can send, as bytes; returns (batch pool, single pool, sizes)."""
    people = make_people(cfg.people, cfg.seed)
    catalog = make_catalog(5000, cfg.seed)
    factory = EventFactory(people, catalog, random.Random(cfg.seed * 1000 + cfg.index + 1))
    prefix = f"bench-{cfg.run_id}-{cfg.index:02d}-{PLACEHOLDER.decode()}"
    dumps: Callable[[Any], str] = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    event_bytes = 0
    batches = []
    for _ in range(cfg.batch_pool):
        messages = [factory.message(f"{prefix}-{i:03d}") for i in range(cfg.batch_size)]
        body = dumps({"batch": messages, "sentAt": factory._iso(0)}).encode()
        event_bytes += len(body)
        batches.append(_template(_request("/v1/batch", cfg.host, cfg.port, cfg.write_key, body), cfg.batch_size))
    singles = []
    single_bytes = 0
    for _ in range(cfg.single_pool):
        msg = factory.message(f"{prefix}-s00", track_only=True)  # /v1/track: view, cart or buy
        body = dumps(msg).encode()
        single_bytes += len(body)
        singles.append(_template(_request("/v1/track", cfg.host, cfg.port, cfg.write_key, body), 1))
    sizes = {
        "batch_body_bytes_avg": event_bytes / max(1, cfg.batch_pool),
        "batch_event_bytes_avg": event_bytes / max(1, cfg.batch_pool * cfg.batch_size),
        "single_body_bytes_avg": single_bytes / max(1, cfg.single_pool),
        "pool_mb": sum(len(t.data) for t in (*batches, *singles)) / 1e6,
    }
    return batches, singles, sizes


# -- the client ------------------------------------------------------------------------


class Worker:
    def __init__(self, cfg: WorkerConfig) -> None:
        self.cfg = cfg
        started = time.perf_counter()
        self.batches, self.singles, self.sizes = build_pools(cfg)
        self.sizes["build_s"] = time.perf_counter() - started
        self.counter = 0  # per-process request number: the unique part of every messageId

    def _next_request(self, pool: list[Template]) -> tuple[bytes, int]:
        n = self.counter
        self.counter = n + 1
        tpl = pool[n % len(pool)]
        buf = bytearray(tpl.data)
        digits = b"%09d" % n
        for off in tpl.offsets:
            buf[off : off + 9] = digits
        return bytes(buf), tpl.events

    async def run_phase(self, spec: PhaseSpec) -> PhaseResult:
        cfg = self.cfg
        result = PhaseResult(worker=cfg.index, phase=spec.name)
        pool = self.batches if spec.kind == "batch" else self.singles
        latencies: array.array[float] = array.array("d")
        streams = await asyncio.gather(*(asyncio.open_connection(cfg.host, cfg.port) for _ in range(cfg.connections)))
        await asyncio.sleep(max(0.0, spec.start_at - time.perf_counter()))
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu0 = usage.ru_utime + usage.ru_stime
        result.started = time.perf_counter()
        deadline = result.started + spec.duration_s
        budget = [spec.max_requests if spec.max_requests is not None else 1 << 62]
        per_second = result.events_per_second
        origin = spec.start_at

        async def drive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            record = latencies.append if spec.record_latency else None
            clock = time.perf_counter
            while budget[0] > 0 and clock() < deadline:
                budget[0] -= 1
                data, events = self._next_request(pool)
                result.requests_sent += 1
                try:
                    t0 = clock()
                    writer.write(data)
                    status, body, close = await _read_response(reader)
                    t1 = clock()
                except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
                    result.connection_errors += 1
                    if len(result.error_samples) < 5:
                        result.error_samples.append(repr(exc))
                    writer.close()
                    reader, writer = await asyncio.open_connection(cfg.host, cfg.port)
                    continue
                if status == 200:
                    result.requests_ok += 1
                    result.events_ok += events
                    second = int(t1 - origin)
                    while len(per_second) <= second:
                        per_second.append(0)
                    per_second[second] += events
                    if record is not None:
                        record(t1 - t0)
                    if body != OK_BODY:
                        result.ok_with_rejections += 1
                else:
                    result.statuses[status] = result.statuses.get(status, 0) + 1
                    if len(result.error_samples) < 5:
                        result.error_samples.append(f"{status}: {body[:300]!r}")
                if close:
                    writer.close()
                    reader, writer = await asyncio.open_connection(cfg.host, cfg.port)
            writer.close()

        tasks = [asyncio.ensure_future(drive(r, w)) for r, w in streams]
        # Requests still unanswered 60 s after the phase should have ended count as errors.
        _, pending = await asyncio.wait(tasks, timeout=spec.duration_s + 60)
        for task in pending:
            task.cancel()
        result.unfinished = len(pending)
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                result.connection_errors += 1
                result.error_samples.append(repr(task.exception()))
        result.ended = time.perf_counter()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        result.cpu_s = usage.ru_utime + usage.ru_stime - cpu0
        result.latencies = latencies.tobytes()
        return result


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """One HTTP/1.1 response: (status, body, server closes the connection)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    close = b"\r\nconnection: close" in lower
    at = lower.find(b"\r\ncontent-length:")
    if at != -1:
        end = lower.find(b"\r\n", at + 17)
        length = int(lower[at + 17 : end])
        return status, (await reader.readexactly(length) if length else b""), close
    if b"\r\ntransfer-encoding: chunked" in lower:
        chunks: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                return status, b"".join(chunks), close
            chunks.append(chunk[:-2])
    return status, b"", close


def _runner() -> asyncio.Runner:
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


def worker_main(cfg: WorkerConfig, conn: Connection) -> None:
    """Process entry point: build the pools, say ready, then run each PhaseSpec received."""
    worker = Worker(cfg)
    with _runner() as runner:
        conn.send(("ready", {**worker.sizes, "loop": type(runner.get_loop()).__module__}))
        while True:
            spec = conn.recv()
            if spec is None:
                break
            conn.send(("result", runner.run(worker.run_phase(spec))))
    conn.close()
