"""The workspace's vocabulary, kept current, and the warnings of the rules the API takes.

Every place that takes a rule or a definition (`POST /api/v1/segments/preview`,
`PUT /api/v1/segments/{name}`, `PUT /api/v1/computed-traits/{name}`, `POST /api/v1/apply`,
the builder) answers `warnings`: the names in it the workspace has never seen, with the
nearest it has (`tsunagu.core.rulecheck`). Warnings never block a save; when the
vocabulary cannot be read (the analytics store is unavailable) the answer is `null`.

One vocabulary a workspace is kept here. It is read in full once (about a second over
50M events, docs/segments.md#warnings) and again every `REBUILD_S` (forgotten people's
events leave the counts); in between, each request adds only the events after the seq it
covers (milliseconds). Traits are read again at most every `TRAITS_S`, or after
`TRAITS_MISS_S` when a rule names one not seen. Reads run in a thread; what they return
is swapped in or merged on the event loop, where the checks read it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from ..core import kinds
from ..core.rulecheck import KINDS, RuleWarning, check_rule
from ..core.vocabulary import Vocabulary
from ..pipeline import WorkspacePipeline
from ..sql import vocabulary as reads

__all__ = [
    "FLUSH_WAIT_S", "REBUILD_S", "TRAITS_MISS_S", "TRAITS_S", "WARNINGS_DOC", "RuleWarningOut", "apply_check",
    "definition_check", "rule_check", "vocabulary", "warnings_of",
]  # fmt: skip

log = logging.getLogger("tsunagu.vocabulary")

REBUILD_S = 900.0
TRAITS_S = 30.0
TRAITS_MISS_S = 2.0
#: how long a check waits for the analytics store to hold the events applied so far
FLUSH_WAIT_S = 2.0
_TRAIT_KINDS = ("unknown_trait", "unknown_value")
WARNINGS_DOC = (
    "names in it the workspace has never seen, with the nearest it has (docs/segments.md#warnings); they never"
    " block a save; null when the workspace's vocabulary could not be read"
)


class RuleWarningOut(BaseModel):
    """A name in a rule or definition that nothing in the workspace carries."""

    path: str = Field(description="where it is, as errors name fields", examples=["rule.all[1].did"])
    kind: str = Field(description=" | ".join(KINDS), examples=["unknown_event"])
    name: str = Field(description="the name (or value) never seen", examples=["page"])
    event: str | None = Field(description="the event a channel, store, property or value was looked for on")
    suggestions: list[str] = Field(description="the nearest names the workspace has seen", examples=[["$page"]])
    message: str = Field(description="in English; the admin UI words each kind in its language")
    index: int | None = Field(description="in an apply: the definition's position in `definitions`")


@dataclass
class _Cache:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    vocab: Vocabulary | None = None
    built: float = 0.0
    traits_read: float = 0.0


_caches: weakref.WeakKeyDictionary[WorkspacePipeline, _Cache] = weakref.WeakKeyDictionary()


def _cache(pipe: WorkspacePipeline) -> _Cache:
    cache = _caches.get(pipe)
    if cache is None:
        cache = _caches[pipe] = _Cache()
    return cache


def _read(pipe: WorkspacePipeline, upto: int) -> Vocabulary:
    with pipe.analytics.reader() as cur:
        return reads.read(cur, upto)


def _increment(pipe: WorkspacePipeline, after: int, upto: int) -> reads.Increment:
    with pipe.analytics.reader() as cur:
        return reads.increment(cur, after, upto)


def _traits(pipe: WorkspacePipeline) -> Vocabulary:
    fresh = Vocabulary()
    with pipe.analytics.reader() as cur:
        reads.read_traits(cur, fresh)
    return fresh


async def _refresh_traits(pipe: WorkspacePipeline, cache: _Cache, older_than: float) -> bool:
    """Read the traits again if the ones held are older than `older_than` seconds."""
    if cache.vocab is None or time.monotonic() - cache.traits_read <= older_than:
        return False
    fresh = await asyncio.to_thread(_traits, pipe)
    vocab = cache.vocab
    vocab.traits, vocab.people = fresh.traits, fresh.people
    vocab.trait_values, vocab.people_sampled = fresh.trait_values, fresh.people_sampled
    cache.traits_read = time.monotonic()
    return True


async def vocabulary(pipe: WorkspacePipeline) -> Vocabulary:
    """What the workspace has seen, up to what the analytics store holds now, with its definitions."""
    cache = _cache(pipe)
    async with cache.lock:
        upto = pipe.analytics.applied_seq()
        now = time.monotonic()
        if cache.vocab is None or now - cache.built > REBUILD_S:
            cache.vocab = await asyncio.to_thread(_read, pipe, upto)
            cache.built = cache.traits_read = time.monotonic()
        else:
            if upto > cache.vocab.seq:
                reads.merge(cache.vocab, await asyncio.to_thread(_increment, pipe, cache.vocab.seq, upto))
            await _refresh_traits(pipe, cache, TRAITS_S)
        vocab = cache.vocab
    live = pipe.engine.live
    return vocab.with_definitions(live.computed, live.segments)


async def warnings_of(
    pipe: WorkspacePipeline, check: Callable[[Vocabulary], list[RuleWarning]], *, flush: bool = True
) -> list[dict[str, Any]] | None:
    """`check`'s warnings against the workspace's vocabulary, as JSON; None when it cannot be read."""
    try:
        if flush:  # the events applied so far, so that what was just sent counts as seen
            with contextlib.suppress(Exception):  # a slow store: check against what it holds
                await pipe.flush(timeout=FLUSH_WAIT_S)
        found = check(await vocabulary(pipe))
        if any(w.kind in _TRAIT_KINDS for w in found) and await _refresh_traits(pipe, _cache(pipe), TRAITS_MISS_S):
            found = check(await vocabulary(pipe))
    except Exception:  # warnings help; they never stop a save or a preview
        log.warning("%s: no rule warnings: the vocabulary could not be read", pipe.workspace, exc_info=True)
        return None
    return [w.to_dict() for w in found]


def rule_check(rule: Any) -> Callable[[Vocabulary], list[RuleWarning]]:
    return lambda vocab: check_rule(rule, vocab)


def definition_check(kind: str, body: dict[str, Any]) -> Callable[[Vocabulary], list[RuleWarning]]:
    """A PUT body's check: paths relative to the body (`rule.all[0].did`, `event`)."""
    return lambda vocab: kinds.kind(kind).warnings(body, vocab, "")


def apply_check(items: list[Any], defined: Iterable[tuple[str, str]]) -> Callable[[Vocabulary], list[RuleWarning]]:
    """An apply's check, naming the definitions it will hold as well as the workspace's."""
    names = list(defined)

    def check(vocab: Vocabulary) -> list[RuleWarning]:
        computed = {n for k, n in names if k == "computed_trait"} | vocab.computed
        segments = {n for k, n in names if k == "segment"} | vocab.segments
        return kinds.check_definitions(items, vocab.with_definitions(computed, segments))

    return check
