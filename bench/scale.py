"""People beyond memory: a workspace with many people, through the real pipeline.

    python bench/scale.py [--people 1000000] [--active 100000] [--cache 100000] [--segments 100]

A `WorkspacePipeline` (event log, person store, analytics, de-dup: what `tsunagu serve`
runs) with the retail computed traits and `--segments` live segments
(`bench/segments.py`'s `make_segments`), then:

1. **load**: `--people` people, each an `identify` (user id, anonymous id, a rank
   trait) and two events (a page view and a product view), submitted in batches of
   `--batch` (the `/v1/batch` path without HTTP); `--active` of them get a further
   `--history` events (views, carts, purchases spread over a year). Figures: events/s,
   resident memory (RSS growth per person), the state store's disk per person, how many
   persons are in memory;
2. **hot / cold**: single events for people just seen (in the cache) and for people
   loaded long ago (only on disk): the engine's decision time (`Engine.apply`, p50/p99)
   and the acknowledged round trip (`submit`, durable in the log);
3. **restart**: close (a final checkpoint) and open again: time to ready, and after a
   crash (no final checkpoint), with the tail replayed.

`store` gives the person store's lookups by outcome during the load: answered "absent" by
its key filter without a read, read and missed (the filter's false positives), read and
found; `--no-key-filter` reads SQLite for every lookup (the store before the filter).

The segments' history before their definition (issue 10) is not reconstructed during
the run unless `--reconstruct`: the load is all late history, which would re-run it
every 30 s on another thread.

Prints one JSON object on stdout; progress on stderr. Another process on the machine
skews the figures: `other_cores` says how much.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec
import psutil  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).parent))
from segments import CpuWatch, make_segments, source_info

from tsunagu.app import EMBEDDED
from tsunagu.core.config import WorkspaceConfig
from tsunagu.core.events import Event
from tsunagu.core.store import Persons
from tsunagu.pipeline import WorkspacePipeline
from tsunagu.storage.embedded import EmbeddedBackends

DAY = 86_400_000
NOW = 1_790_000_000_000
CATEGORIES = ["アウター", "トップス", "ボトムス", "シューズ", "バッグ", "小物"]


def say(msg: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _ev(mid: str, typ: str, name: str | None, uid: str, ts: int, props: dict[str, Any], traits: Any = None) -> Event:
    return Event(
        mid, typ, name, uid, "a-" + uid, ts, ts, "web" if typ != "track" or name != "checkin" else "store",
        None, msgspec.json.encode(props), traits or {}, b"{}",
    )  # fmt: skip


def person_events(i: int, rng: random.Random, history: int) -> list[Event]:
    uid = f"M{i:08d}"
    ts = NOW - rng.randrange(0, 30) * DAY
    out = [
        _ev(f"{uid}-i", "identify", None, uid, ts, {}, {"member_rank": rng.choice(["gold", "silver", "bronze"])}),
        _ev(f"{uid}-p", "page", None, uid, ts + 1000, {"path": "/"}),
        _ev(f"{uid}-v", "track", "view", uid, ts + 2000, {"category": rng.choice(CATEGORIES), "price": 5000}),
    ]
    for k in range(history):
        t = NOW - rng.randrange(0, 365) * DAY - rng.randrange(0, DAY)
        name = rng.choice(["view", "view", "view", "cart", "buy", "checkin"])
        props: dict[str, Any] = {"category": rng.choice(CATEGORIES), "price": rng.randrange(1000, 30000, 100)}
        if name == "buy":
            props["revenue"] = props["price"]
        out.append(_ev(f"{uid}-h{k}", "track", name, uid, t, props))
    return out


def _pcts(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    if not xs:
        return {}
    return {
        "p50": round(statistics.median(xs), 4),
        "p99": round(xs[min(len(xs) - 1, int(len(xs) * 0.99))], 4),
        "max": round(xs[-1], 4),
        "n": len(xs),
    }


async def _open(directory: Path, cache: int, reconstruct: bool, key_filter: bool = True) -> WorkspacePipeline:
    backends = EMBEDDED if key_filter else EmbeddedBackends(key_filter=False)
    pipe = WorkspacePipeline("bench", directory, WorkspaceConfig(), backends, flush_interval=0.5, person_cache=cache)
    if not reconstruct:
        # The load is all "late history" for the segments defined first, which the
        # reports reconstruct in the background (issue 10): a cost of its own, kept apart.
        pipe.histories.check = lambda: None  # type: ignore[method-assign]
    await pipe.open(NOW, background=True)
    return pipe


async def run(args: argparse.Namespace) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix="tsunagu-scale-", dir=args.dir))
    proc = psutil.Process()
    out: dict[str, Any] = {"source": source_info(), "config": {k: v for k, v in vars(args).items() if k != "dir"}}
    try:
        pipe = await _open(directory, args.cache, args.reconstruct, not args.no_key_filter)
        for name, rule in make_segments(args.segments, computed=True):
            await pipe.define("segment", name, {"rule": rule}, NOW)
        while pipe.engine.live.backfills:
            await asyncio.sleep(0.05)

        # -- load ------------------------------------------------------------------------
        rng = random.Random(args.seed)
        applied: list[float] = []
        engine_apply = pipe.engine.apply

        def timed_apply(events: Any) -> Any:
            t = time.perf_counter()
            try:
                return engine_apply(events)
            finally:
                applied.append((time.perf_counter() - t) * 1000)

        pipe.engine.apply = timed_apply  # type: ignore[method-assign]
        rss0 = proc.memory_info().rss
        watch = CpuWatch()
        started = time.perf_counter()
        events = 0
        batch: list[Event] = []
        pending: list[asyncio.Future[Any]] = []
        active_every = max(1, args.people // max(1, args.active)) if args.active else 0
        for i in range(args.people):
            history = args.history if active_every and i % active_every == 0 else 0
            batch.extend(person_events(i, rng, history))
            if len(batch) >= args.batch:
                pending.append(pipe.submit(batch, NOW))
                events += len(batch)
                batch = []
                if len(pending) >= 8:
                    await asyncio.gather(*pending)
                    pending = []
            if i and i % 100_000 == 0:
                persons = pipe.engine.persons
                mem = persons.in_memory() if isinstance(persons, Persons) else len(persons)
                rate = events / (time.perf_counter() - started)
                say(f"{i:,} people, {events:,} events, {rate:,.0f} ev/s, {mem:,} in memory, "
                    f"RSS {proc.memory_info().rss / 1e9:.2f} GB")  # fmt: skip
        if batch:
            pending.append(pipe.submit(batch, NOW))
            events += len(batch)
        await asyncio.gather(*pending)
        load_s = time.perf_counter() - started
        await pipe.flush(600)
        await pipe.checkpoint()
        rss1 = proc.memory_info().rss
        persons = pipe.engine.persons
        state_bytes = sum(f.stat().st_size for f in directory.glob("state.sqlite*"))
        filter_bytes = sum(f.stat().st_size for f in directory.glob("state-keys/*"))
        assert pipe._state is not None
        reads = pipe._state.stats()
        out["load"] = {
            "people": len(persons),
            "events": events,
            "seconds": round(load_s, 1),
            "events_per_s": round(events / load_s),
            "engine_apply_ms_per_batch": _pcts(applied),
            "engine_us_per_event": round(sum(applied) * 1000 / max(1, events), 2),
            "in_memory": persons.in_memory() if isinstance(persons, Persons) else len(persons),
            "rss_growth_bytes": rss1 - rss0,
            "rss_bytes_per_person": round((rss1 - rss0) / max(1, args.people)),
            "state_disk_bytes_per_person": round((state_bytes + filter_bytes) / max(1, args.people)),
            "key_filter_disk_bytes": filter_bytes,
            "store": reads,
            "log_disk_bytes": sum(f.stat().st_size for f in directory.glob("log.sqlite*")),
            "analytics_disk_bytes": sum(f.stat().st_size for f in directory.glob("analytics.duckdb*")),
            "cpu": watch.result(),
        }
        say(f"load: {json.dumps(out['load'])}")

        # -- hot and cold persons ---------------------------------------------------------
        for label, pick in (
            ("hot", lambda k: args.people - 1 - (k % max(1, min(args.cache or args.people, args.people) // 2))),
            ("cold", lambda k: rng.randrange(0, max(1, args.people // 2))),
        ):
            applied.clear()
            acked: list[float] = []
            loads = persons.loads if isinstance(persons, Persons) else 0
            for k in range(args.single):
                i = pick(k)
                uid = f"M{i:08d}"
                ev = _ev(f"{uid}-{label}{k}", "track", "view", uid, NOW, {"category": rng.choice(CATEGORIES)})
                t = time.perf_counter()
                await pipe.submit([ev], NOW)
                acked.append((time.perf_counter() - t) * 1000)
            out[label] = {
                "decision_ms": _pcts(applied),
                "acknowledged_ms": _pcts(acked),
                "store_reads": (persons.loads if isinstance(persons, Persons) else 0) - loads,
            }
            say(f"{label}: {json.dumps(out[label])}")

        # -- restart ---------------------------------------------------------------------
        t = time.perf_counter()
        await pipe.close()
        close_s = time.perf_counter() - t
        t = time.perf_counter()
        pipe = await _open(directory, args.cache, args.reconstruct, not args.no_key_filter)
        out["restart"] = {"close_s": round(close_s, 2), "open_s": round(time.perf_counter() - t, 2)}
        out["restart"]["key_filter_built"] = pipe._state is not None and pipe._state.filter_built  # False: O(1)
        for k in range(args.tail):  # a tail that only the log holds, then a crash
            uid = f"M{rng.randrange(0, args.people):08d}"
            await pipe.submit([_ev(f"{uid}-t{k}", "track", "view", uid, NOW, {})], NOW)
        pipe._close_stores()
        for task in pipe._tasks:
            task.cancel()
        t = time.perf_counter()
        pipe = await _open(directory, args.cache, args.reconstruct, not args.no_key_filter)
        out["restart"] |= {"after_crash_open_s": round(time.perf_counter() - t, 2), "replayed": pipe.stats["replayed"]}
        say(f"restart: {json.dumps(out['restart'])}")
        await pipe.close()
    finally:
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--people", type=int, default=1_000_000)
    p.add_argument("--active", type=int, default=100_000, help="people with a year of history")
    p.add_argument("--history", type=int, default=25, help="events of history an active person has")
    p.add_argument("--cache", type=int, default=100_000, help="persons kept in memory (TSUNAGU_PERSON_CACHE)")
    p.add_argument("--segments", type=int, default=100)
    p.add_argument("--batch", type=int, default=500, help="events a submitted batch")
    p.add_argument("--single", type=int, default=2000, help="single events per hot/cold phase")
    p.add_argument("--tail", type=int, default=1000, help="events in the log only before the crash")
    p.add_argument("--reconstruct", action="store_true", help="let the segments' history be reconstructed meanwhile")
    p.add_argument("--no-key-filter", action="store_true", help="no Bloom filter before the person store's reads")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--dir", type=Path, help="where the workspace is made (default: $TMPDIR)")
    p.add_argument("--keep", action="store_true", help="keep the workspace directory")
    args = p.parse_args()
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()
