"""The engine's step: one event, its person, the catalog of definitions, now -> effects.

    step(event, person, catalog, now, out)

folds the event into the person (first and last seen, channels, stores, traits, then
what the definitions need kept: counters, user data fields, aggregates) and decides
what follows from it (segment entries and exits, a timer), appending typed effects
(`core.effects`) to `out`. It changes the person and nothing else: the catalog (`Live`:
definitions, their indexes, segment sizes, the timer index) is only read, and the
runtime (`Engine.apply`) commits the effects after the step returned. (An event that
fails halfway has its effects so far committed with the half-changed person, and
`core.repair` puts both back; they never reach the timeline.)

Identity comes first and is not part of the step: which person an event belongs to
(and whether two persons merge) is the identity index's answer (`Engine._link`).
"""

from __future__ import annotations

from .effects import Effect
from .events import Event
from .live import Live
from .people import Person, apply_traits

__all__ = ["step"]


def step(ev: Event, p: Person, catalog: Live, now: int, out: list[Effect]) -> None:
    """Fold `ev` into `p` and append what it decides to `out`; `now` is when it was received."""
    ts = ev.timestamp
    is_new = p.event_count == 0
    if is_new:
        p.first_seen = p.last_seen = ts
    elif ts < p.first_seen:
        p.first_seen = ts
    elif ts > p.last_seen:
        p.last_seen = ts
    p.event_count += 1
    ch = p.channels
    ch[ev.channel] = ch.get(ev.channel, 0) + 1
    if ev.store_id is not None:
        p.stores[ev.store_id] = p.stores.get(ev.store_id, 0) + 1
    traits_changed = ev.type == "identify" and bool(ev.traits) and apply_traits(p, ev.traits, ts, ev.message_id)
    catalog.observe(p, ev, bool(traits_changed), is_new, out, now)
