"""The `Deduper` port on every backend: messageId de-duplication over a window, exact.

An id added at `t` is known while `t >= now - window`, `now` being the latest time given
to `advance` or `add`; `discard` takes back the ids of a request that were refused; an
id survives a restart once the log record holding it is committed (core/ports.py,
docs/storage.md#message-id-de-duplication, docs/decisions/0002-dedupe.md). Each backend
comes with the log its ids become durable in (`LoggedDeduper`); a restart closes both
(after a checkpoint, as a clean stop does, or without one, as kill -9 leaves them) and
opens them again. The property test at the end checks every backend against the plain
answer, and against `core/dedupe.py`, the reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tsunagu.core.dedupe import MemoryDeduper
from tsunagu.core.ports import Deduper

from .conftest import DEDUPE_WINDOW_MS, Factory, LoggedDeduper, Opened, unlike_port

WINDOW = DEDUPE_WINDOW_MS
NOW = 1_790_000_000_000


def _request(pair: LoggedDeduper, ids: list[str], now: int) -> None:
    """A request the pipeline takes: ids added, then logged, then the commit taken in."""
    pair.deduper.add(ids, now)
    pair.commit(ids, now)
    pair.deduper.advance(now)


def _restart(opened: Opened[LoggedDeduper], now: int, *, clean: bool) -> Deduper:
    if clean:
        opened.store.deduper.checkpoint()
    opened.reopen()
    opened.store.deduper.open(now)
    return opened.store.deduper


def test_the_backend_has_every_method_of_the_deduper_port(deduper: Opened[LoggedDeduper]) -> None:
    assert unlike_port(deduper.store.deduper, Deduper) == []


def test_an_added_id_is_seen_before_its_record_is_logged(deduper: Opened[LoggedDeduper]) -> None:
    d = deduper.store.deduper
    d.open(NOW)
    assert not d.seen("m1")
    d.add(["m1", "m2"], NOW)  # a concurrent retry of this request is caught before the commit
    assert d.seen("m1") and d.seen("m2") and not d.seen("m3")


def test_discard_takes_back_only_the_refused_ids_of_a_request(deduper: Opened[LoggedDeduper]) -> None:
    d = deduper.store.deduper
    d.open(NOW)
    d.add(["good", "refused"], NOW)
    d.discard(["refused"])  # refused: never logged, so a fixed retry is welcome
    assert d.seen("good") and not d.seen("refused")
    deduper.store.commit(["good"], NOW)
    d.advance(NOW + 1)
    assert d.seen("good") and not d.seen("refused")


def test_a_committed_id_is_seen_to_the_end_of_the_window_and_forgotten_after(
    deduper: Opened[LoggedDeduper],
) -> None:
    d = deduper.store.deduper
    d.open(NOW)
    _request(deduper.store, ["old"], NOW)
    _request(deduper.store, [f"later{i}" for i in range(10)], NOW + 1)  # more than memory holds
    d.advance(NOW + WINDOW // 2)
    assert d.seen("old")
    d.advance(NOW + WINDOW)  # still `NOW >= now - window`
    assert d.seen("old") and d.seen("later9")
    d.advance(NOW + WINDOW + 1)
    assert not d.seen("old") and d.seen("later0")
    d.advance(NOW + WINDOW + 2)
    assert not d.seen("later0")


def test_the_window_follows_the_latest_time_so_a_clock_going_back_revives_nothing(
    deduper: Opened[LoggedDeduper],
) -> None:
    d = deduper.store.deduper
    d.open(NOW)
    _request(deduper.store, ["m1"], NOW)
    d.advance(NOW + WINDOW + 1)
    assert not d.seen("m1")
    d.advance(NOW)  # an earlier time: the window stays where it was
    assert not d.seen("m1")
    d.add(["m2"], NOW)  # so does an add with an earlier time
    assert not d.seen("m1") and d.seen("m2")


def test_an_id_added_again_after_its_window_is_seen_again(deduper: Opened[LoggedDeduper]) -> None:
    d = deduper.store.deduper
    d.open(NOW)
    _request(deduper.store, ["m1"], NOW)
    later = NOW + WINDOW + 1
    d.advance(later)
    assert not d.seen("m1")
    _request(deduper.store, ["m1"], later)  # a new event with an old id: welcome, and known again
    assert d.seen("m1")
    d.advance(later + WINDOW)
    assert d.seen("m1")


def test_a_committed_id_survives_a_restart_after_a_checkpoint(deduper: Opened[LoggedDeduper]) -> None:
    d = deduper.store.deduper
    d.open(NOW)
    for i in range(5):
        _request(deduper.store, [f"a{i}", f"b{i}"], NOW + i)
    d = _restart(deduper, NOW + 10, clean=True)
    assert all(d.seen(f"a{i}") and d.seen(f"b{i}") for i in range(5))
    assert not d.seen("new")


def test_a_committed_id_survives_a_restart_without_a_checkpoint(deduper: Opened[LoggedDeduper]) -> None:
    d = deduper.store.deduper
    d.open(NOW)
    _request(deduper.store, ["before"], NOW)
    d.checkpoint()
    _request(deduper.store, ["after"], NOW + 1)  # committed, but after the last checkpoint
    d = _restart(deduper, NOW + 2, clean=False)  # as kill -9 leaves it
    assert d.seen("before") and d.seen("after") and not d.seen("new")
    d = _restart(deduper, NOW + 3, clean=False)  # and again, with no checkpoint at all since
    assert d.seen("before") and d.seen("after")


def test_an_id_added_but_never_logged_is_welcome_after_a_restart(deduper: Opened[LoggedDeduper]) -> None:
    d = deduper.store.deduper
    d.open(NOW)
    _request(deduper.store, ["logged"], NOW)
    d.add(["in-flight"], NOW)  # the process dies before its record commits: never acknowledged
    d = _restart(deduper, NOW + 1, clean=False)
    assert d.seen("logged")
    assert not d.seen("in-flight")  # the client's retry is a new event, not a duplicate


def test_a_restart_past_the_window_forgets_what_expired_and_keeps_the_rest(
    deduper: Opened[LoggedDeduper],
) -> None:
    d = deduper.store.deduper
    d.open(NOW)
    _request(deduper.store, ["old"], NOW)
    _request(deduper.store, ["new"], NOW + WINDOW // 2)
    for clean in (True, False):
        d = _restart(deduper, NOW + WINDOW + 1, clean=clean)
        assert not d.seen("old") and d.seen("new"), clean
    d = _restart(deduper, NOW + WINDOW // 2 + WINDOW + 1, clean=True)
    assert not d.seen("new")


# -- every backend answers like a plain set with a window --------------------------------------


class _Model:
    """The plain answer: committed ids with their time, and ids added but not yet logged."""

    def __init__(self) -> None:
        self.now = NOW
        self.committed: dict[str, int] = {}
        self.pending: dict[str, int] = {}

    def seen(self, mid: str) -> bool:
        at = self.committed.get(mid)
        return mid in self.pending or (at is not None and at >= self.now - WINDOW)


_ids = st.sampled_from([f"m{i}" for i in range(12)]) | st.text("abc", min_size=1, max_size=4)
_request_step = st.tuples(
    st.just("request"),
    st.lists(_ids, min_size=1, max_size=6),
    st.sets(st.integers(0, 5), max_size=2),  # positions the engine refuses
    st.booleans(),  # logged at once, or held (a concurrent retry comes before the commit)
    st.integers(0, 200_000),  # time since the previous step
)
_step = st.one_of(
    _request_step,
    _request_step,
    _request_step,
    st.tuples(st.just("commit_held")),
    st.tuples(st.just("advance"), st.integers(0, 400_000)),
    st.tuples(st.just("seen"), _ids),
    st.tuples(st.just("restart"), st.booleans()),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(_step, max_size=40))
@example(
    steps=[
        ("request", ["m0"], set(), False, 0),
        ("advance", 200_001),
        ("advance", 400_000),
        ("request", ["m0"], set(), False, 0),
    ]
)
def test_the_deduper_answers_like_a_plain_set_with_a_window(
    deduper_factory: Factory[LoggedDeduper], tmp_path_factory: Any, steps: list[Any]
) -> None:
    opened = Opened(deduper_factory, Path(tmp_path_factory.mktemp("dedupe")))
    opened.store.deduper.open(NOW)
    model = _Model()
    reference = MemoryDeduper(WINDOW)
    held: list[tuple[list[str], int]] = []

    def commit_held() -> None:
        for kept, at in held:
            opened.store.commit(kept, at)
            for mid in kept:
                model.committed[mid] = model.pending.pop(mid)
        held.clear()

    def tick(dt: int) -> None:
        # the log commits a request within a flush, far inside the window: a request held
        # past its window (seen as pending here, forgotten by the reference) cannot happen
        if held and model.now + dt - held[0][1] > WINDOW:
            commit_held()
        model.now += dt

    try:
        for step in steps:
            d = opened.store.deduper
            if step[0] == "request":
                _, ids, refused, log_now, dt = step
                tick(dt)
                d.advance(model.now)
                reference.advance(model.now)
                fresh: list[str] = []
                for mid in ids:  # as WorkspacePipeline.submit does
                    expected = model.seen(mid)
                    assert d.seen(mid) == expected, (mid, step)
                    assert reference.seen(mid) == expected, (mid, step)
                    if mid not in fresh and not expected:
                        fresh.append(mid)
                d.add(fresh, model.now)
                reference.add(fresh, model.now)
                model.pending.update(dict.fromkeys(fresh, model.now))
                gone = [mid for i, mid in enumerate(fresh) if i in refused]
                d.discard(gone)
                reference.discard(gone)
                for mid in gone:
                    del model.pending[mid]
                kept = [mid for mid in fresh if mid not in gone]
                if kept:
                    held.append((kept, model.now))
                if log_now:
                    step = ("commit_held",)
            if step[0] == "commit_held":
                commit_held()
            elif step[0] == "advance":
                tick(step[1])
                d.advance(model.now)
                reference.advance(model.now)
            elif step[0] == "seen":
                assert d.seen(step[1]) == model.seen(step[1]), step
            elif step[0] == "restart":
                # what was not logged was never acknowledged: it is gone with the process
                held.clear()
                model.pending.clear()
                _restart(opened, model.now, clean=step[1])
                reference = MemoryDeduper(WINDOW)
                for mid, at in sorted(model.committed.items(), key=lambda kv: kv[1]):
                    reference.add([mid], at)
                reference.advance(model.now)
            opened.store.deduper.advance(model.now)  # takes in what the log committed
        for mid in {*model.committed, "m0", "never"}:
            assert opened.store.deduper.seen(mid) == model.seen(mid), mid
    finally:
        opened.close()
