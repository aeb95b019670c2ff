"""The person store's key filter, A/B: the same import with and without it, interleaved.

    python bench/key_filter.py [--people 50000] [--active 5000] [--cache 100000]

Two `WorkspacePipeline`s (as `bench/scale.py` opens them: retail traits, 100 segments),
one whose person store has its Bloom filter of keys and one without (every lookup of a
new key a SQLite read that misses), are fed the same people (`scale.py`'s
`person_events`) batch by batch in turn, so both see the same machine: a second
developer's tests slow both alike. Figures per pipeline: the engine's time per event
(`Engine.apply`) and the person store's lookups by outcome. One JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from scale import NOW, _open, person_events
from segments import CpuWatch, make_segments, source_info


async def run(args: argparse.Namespace) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix="tsunagu-keyfilter-", dir=args.dir))
    out: dict[str, Any] = {"source": source_info(), "config": {k: v for k, v in vars(args).items() if k != "dir"}}
    pipes: dict[str, Any] = {}
    applied: dict[str, list[float]] = {}
    try:
        for label, on in (("filter", True), ("no_filter", False)):
            pipe = pipes[label] = await _open(base / label, args.cache, False, key_filter=on)
            for name, rule in make_segments(args.segments, computed=True):
                await pipe.define("segment", name, {"rule": rule}, NOW)
            while pipe.engine.live.backfills:
                await asyncio.sleep(0.05)
            times = applied[label] = []

            def timed(events: Any, apply: Any = pipe.engine.apply, times: list[float] = times) -> Any:
                t = time.perf_counter()
                try:
                    return apply(events)
                finally:
                    times.append(time.perf_counter() - t)

            pipe.engine.apply = timed

        rng = random.Random(args.seed)
        active_every = max(1, args.people // max(1, args.active)) if args.active else 0
        watch = CpuWatch()
        events = 0
        batch: list[Any] = []
        order = list(pipes.items())
        for i in range(args.people):
            batch.extend(person_events(i, rng, args.history if active_every and i % active_every == 0 else 0))
            if len(batch) >= args.batch or i == args.people - 1:
                order.reverse()  # neither goes first every time
                for _, pipe in order:
                    await pipe.submit(batch, NOW)
                events += len(batch)
                batch = []
        for pipe in pipes.values():
            await pipe.flush(600)
            await pipe.checkpoint()
        for label, pipe in pipes.items():
            out[label] = {
                "engine_us_per_event": round(sum(applied[label]) * 1e6 / max(1, events), 2),
                "store": pipe._state.stats(),
            }
        out["events"] = events
        out["engine_time_saved"] = round(
            1 - out["filter"]["engine_us_per_event"] / max(0.01, out["no_filter"]["engine_us_per_event"]), 3
        )
        out["cpu"] = watch.result()
        for pipe in pipes.values():
            await pipe.close()
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--people", type=int, default=50_000)
    p.add_argument("--active", type=int, default=5_000, help="people with a year of history")
    p.add_argument("--history", type=int, default=25)
    p.add_argument("--cache", type=int, default=100_000, help="persons kept in memory (TSUNAGU_PERSON_CACHE)")
    p.add_argument("--segments", type=int, default=100)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--dir", type=Path)
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()
