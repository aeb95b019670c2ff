"""Putting persons back after an event the engine could not apply.

The engine applies an event in place, so an exception halfway through (a bug: the edge
in `core.events` admits only values every store can hold) may leave the persons that
event touched half-changed. Snapshotting every person before every event would cost the
hot path for a failure that should never happen; instead the failure path pays: the
touched persons are rebuilt from durable data, exactly as a restart would rebuild them,
but without the workspace stopping.

    checkpoint (the suspects' rows) ──▶ a scratch engine ──▶ replay of the log tail's
    records for the suspects, minus the refused event ──▶ copied back over the suspects

The scratch engine sees everyone else through read-only overlays of the main engine:
an identifier that belongs to another person resolves to (a copy of) that person, so
identity decisions (a conflict, a user_id clash) come out as they did the first time.
Persons outside the suspects are never written.

The replay cannot reproduce a definition change (its back-fill and passes depend on
every person), so a tail holding `define` or `undefine` returns False: the caller then
rebuilds the whole workspace instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from .identity import identifiers_of
from .people import Person

if TYPE_CHECKING:
    from .engine import Engine
    from .events import Event

__all__ = ["TailRecord", "repair", "suspects_of"]

_person_copy_enc = msgspec.msgpack.Encoder()
_person_copy_dec = msgspec.msgpack.Decoder(Person)


@dataclass(slots=True)
class TailRecord:
    """One record after the checkpoint, decoded: events with the person ids they got,
    or a control record's body."""

    kind: str
    events: list[Event] | None = None
    person_ids: list[str] | None = None
    body: dict[str, Any] | None = None


def suspects_of(engine: Engine, event: Event, resolved: str | None) -> set[str]:
    """Every person id an event may have touched, and every id merged into those."""
    from .engine import _new_person_id  # the engine's own id scheme

    keys = identifiers_of(event, engine.config)
    if event.type == "alias" and event.previous_id is not None:
        keys += [f"user_id:{event.previous_id}", f"anonymous_id:{event.previous_id}"]
    roots: set[str] = set()
    if resolved is not None:
        roots.add(resolved)
    for key in keys:
        if (pid := engine.index.get(key)) is not None:
            roots.add(pid)
        roots.add(_new_person_id(engine.namespace, event.message_id, key))  # made by this event?
    roots.add(_new_person_id(engine.namespace, event.message_id, "anonymous_id:" + event.message_id))
    out: set[str] = set()
    for pid in roots:
        canonical = engine.canonical(pid)
        if canonical is None:
            continue
        person = engine.persons[canonical]
        out.update(person.all_ids())
        out.add(pid)
    # a merge cut short: the loser still stands while the survivor already lists it
    for pid in list(out):
        standing = engine.persons.get(pid)
        if standing is not None:
            out.update(standing.all_ids())
    return out


class _Persons(dict[str, Person]):
    """The scratch engine's persons: its own, then (copies of) the main engine's others.

    Iteration, `len` and `values()` cover only its own persons, so a pass over "every
    person" (a back-fill's finish, a forget) touches the suspects only.
    """

    def __init__(self, base: dict[str, Person], hidden: set[str]) -> None:
        super().__init__()
        self._base = base
        self._hidden = hidden
        self._copies: dict[str, Person] = {}

    def _outsider(self, pid: str) -> Person | None:
        if pid in self._hidden:
            return None
        p = self._copies.get(pid)
        if p is None:
            found = self._base.get(pid)
            if found is None:
                return None
            p = self._copies[pid] = _person_copy_dec.decode(_person_copy_enc.encode(found))
        return p

    def get(self, pid: str, default: Any = None) -> Any:  # type: ignore[override]
        p = dict.get(self, pid)
        if p is None:
            p = self._outsider(pid)
        return default if p is None else p

    def __getitem__(self, pid: str) -> Person:
        p = self.get(pid)
        if p is None:
            raise KeyError(pid)
        return p

    def __contains__(self, pid: object) -> bool:
        return dict.__contains__(self, pid) or (isinstance(pid, str) and self._outsider(pid) is not None)

    def __delitem__(self, pid: str) -> None:
        if dict.__contains__(self, pid):
            dict.__delitem__(self, pid)
        else:
            self._copies.pop(pid, None)
            self._hidden.add(pid)


class _Lookup(dict[str, str]):
    """An index (identifier -> person) or alias map: its own entries, then the main
    engine's, except those that lead to a suspect (the replay decides those anew)."""

    def __init__(self, base: dict[str, str], hidden: set[str], hide_keys: bool) -> None:
        super().__init__()
        self._base = base
        self._hidden = hidden
        self._hide_keys = hide_keys  # aliases: a suspect's own id is hidden as a key
        self._deleted: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        if dict.__contains__(self, key):
            return dict.__getitem__(self, key)
        if key in self._deleted or (self._hide_keys and key in self._hidden):
            return default
        value = self._base.get(key)
        if value is None or value in self._hidden:
            return default
        return value

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __setitem__(self, key: str, value: str) -> None:
        self._deleted.discard(key)
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: str) -> None:
        if dict.__contains__(self, key):
            dict.__delitem__(self, key)
        self._deleted.add(key)

    def pop(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        value = self.get(key, default)
        if dict.__contains__(self, key):
            dict.__delitem__(self, key)
        self._deleted.add(key)
        return value


def repair(
    engine: Engine,
    suspects: set[str],
    checkpointed: Iterable[Person],
    live_state: dict[str, Any] | None,
    tail: Iterator[TailRecord],
    refused: set[str],
    now: int,
) -> bool:
    """Rebuild `suspects` from their checkpointed rows and the log tail, minus `refused`.

    `tail` holds every record after the checkpoint in log order (the events of the
    request being applied last). Returns False, changing nothing, if the tail holds a
    definition change (the caller then rebuilds the whole engine).
    """
    from .engine import Engine

    hidden = set(suspects)
    scratch = Engine(engine.config, namespace=engine.namespace)
    scratch.persons = _Persons(engine.persons, hidden)
    scratch.index = _Lookup(engine.index, hidden, hide_keys=False)
    scratch.aliases = _Lookup(engine.aliases, hidden, hide_keys=True)
    own = [p for p in checkpointed if p.person_id in suspects]
    scratch.load(own)
    scratch.live.load_state(live_state or {}, scratch.persons, now)
    for rec in tail:
        if rec.kind == "events":
            assert rec.events is not None and rec.person_ids is not None
            mine = [
                ev
                for ev, pid in zip(rec.events, rec.person_ids, strict=True)
                if pid in suspects and ev.message_id not in refused
            ]
            for ev in mine:
                scratch.apply([ev])
        elif rec.kind in ("define", "undefine"):
            return False
        elif rec.kind == "backfill":
            body = rec.body or {}
            rows = [tuple(r) for r in body["rows"] if r[0] in suspects]
            scratch.apply_backfill(body["id"], rows, body["cursor"], body["done"], body["now"])
        elif rec.kind == "tick":
            scratch.tick((rec.body or {})["now"])
        elif rec.kind == "forget":
            for pid in (rec.body or {})["person_ids"]:
                scratch.forget(pid)
    _copy_back(engine, scratch, suspects)
    return True


def _copy_back(engine: Engine, scratch: Engine, suspects: set[str]) -> None:
    rebuilt: dict[str, Person] = dict(dict.items(scratch.persons))
    engine.members_moved(*suspects, *rebuilt)
    for pid in suspects:
        gone = engine.persons.pop(pid, None)
        if gone is not None:
            engine.live.joined(gone.segments, -1)
        engine.aliases.pop(pid, None)
        engine.live.unschedule(pid)
    # Keys can point at a person without being among its identifiers (a merge past the
    # identifier cap; an attach cut short), so the whole index is looked at: this is the
    # failure path, and it runs in milliseconds per hundred thousand identifiers.
    for key in [k for k, v in engine.index.items() if v in suspects]:
        del engine.index[key]
    for alias in [a for a, v in engine.aliases.items() if v in suspects]:
        del engine.aliases[alias]
    for key, pid in dict.items(scratch.index):
        if pid in rebuilt:
            engine.index[key] = pid
    for pid, p in rebuilt.items():
        engine.persons[pid] = p
        engine.live.joined(p.segments, +1)
        for old in p.merged_ids:
            engine.aliases[old] = pid
        engine.dirty.add(pid)
        engine.removed.discard(pid)
        day = scratch.live.next_check.get(pid)
        if day is not None:
            engine.live._schedule(pid, day)
    for pid in suspects - rebuilt.keys():
        engine.dirty.discard(pid)
        engine.dirty_state.discard(pid)
        engine.removed.add(pid)
