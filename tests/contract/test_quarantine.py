"""The `Quarantine` port on every backend: what a workspace set aside, for admins.

Entries come back newest first, by source, in pages; counts are per source; forgetting
a person deletes their entries, found by person or by message (docs/storage.md#the-quarantine).
The engine's event loop and the analytics writer's thread both add entries.
"""

from __future__ import annotations

import threading
from typing import Any

from tsunagu.core.ports import QUARANTINE_SOURCES, Quarantine

from .conftest import Opened, unlike_port

NOW = 1_790_000_000_000


def _refs(entries: list[dict[str, Any]]) -> list[str]:
    return [e["ref"] for e in entries]


def test_the_backend_has_every_method_of_the_quarantine_port(quarantine: Opened[Quarantine]) -> None:
    assert unlike_port(quarantine.store, Quarantine) == []


def test_a_new_quarantine_is_empty(quarantine: Opened[Quarantine]) -> None:
    assert quarantine.store.entries() == [] and quarantine.store.counts() == {}
    assert quarantine.store.forget(["p1"], ["m1"]) == 0


def test_an_entry_comes_back_with_every_field_it_was_given(quarantine: Opened[Quarantine]) -> None:
    q = quarantine.store
    body = b'{"properties": "\xff not UTF-8"}'
    q.add("analytics", "q-1", reason="events: Conversion Error", at=NOW, seq=7, message_id="m1", person_id="p1",
          body=body)  # fmt: skip
    q.add("definition", "q-2", reason="segment vip: unknown field", at=NOW + 1)
    newest, oldest = q.entries()
    assert isinstance(oldest["id"], int) and newest["id"] > oldest["id"]
    assert {k: v for k, v in oldest.items() if k != "id"} == {
        "at": NOW, "source": "analytics", "ref": "q-1", "reason": "events: Conversion Error", "seq": 7,
        "message_id": "m1", "person_id": "p1", "body": body,
    }  # fmt: skip
    assert {k: v for k, v in newest.items() if k != "id"} == {
        "at": NOW + 1, "source": "definition", "ref": "q-2", "reason": "segment vip: unknown field", "seq": None,
        "message_id": None, "person_id": None, "body": b"",
    }  # fmt: skip


def test_entries_are_newest_first_by_source_and_in_pages(quarantine: Opened[Quarantine]) -> None:
    q = quarantine.store
    for i in range(10):
        q.add(QUARANTINE_SOURCES[i % len(QUARANTINE_SOURCES)], f"q-{i}", reason="r", at=NOW + i)
    every = q.entries()
    assert _refs(every) == [f"q-{i}" for i in reversed(range(10))]
    assert _refs(q.entries(limit=3)) == ["q-9", "q-8", "q-7"]
    pages, before = [], None
    while page := q.entries(limit=4, before=before):
        pages.append(_refs(page))
        before = page[-1]["id"]
    assert pages == [["q-9", "q-8", "q-7", "q-6"], ["q-5", "q-4", "q-3", "q-2"], ["q-1", "q-0"]]
    assert _refs(q.entries(source="engine")) == ["q-8", "q-4", "q-0"]
    second = q.entries(source="engine", limit=1, before=q.entries(source="engine", limit=1)[0]["id"])
    assert _refs(second) == ["q-4"]
    assert q.entries(source="nowhere") == []


def test_counts_are_per_source_and_leave_out_sources_with_none(quarantine: Opened[Quarantine]) -> None:
    q = quarantine.store
    for i, source in enumerate(["engine", "analytics", "analytics", "checkpoint", "analytics"]):
        q.add(source, f"q-{i}", reason="r", at=NOW)
    assert q.counts() == {"engine": 1, "analytics": 3, "checkpoint": 1}


def test_forget_deletes_the_entries_of_persons_or_messages_and_counts_each_once(
    quarantine: Opened[Quarantine],
) -> None:
    q = quarantine.store
    q.add("engine", "q-1", reason="r", at=NOW, message_id="m1", person_id="p1")  # named twice
    q.add("checkpoint", "q-2", reason="r", at=NOW, person_id="p1")
    q.add("analytics", "q-3", reason="r", at=NOW, seq=3, message_id="m3")  # no person known
    q.add("engine", "q-4", reason="r", at=NOW, message_id="m4", person_id="p2")
    q.add("definition", "q-5", reason="r", at=NOW)
    assert q.forget(["p1"], ["m1", "m3"]) == 3
    assert _refs(q.entries()) == ["q-5", "q-4"]
    assert q.counts() == {"engine": 1, "definition": 1}
    assert q.forget(["p9"]) == 0 and q.forget([], []) == 0
    assert q.forget([], ["m4"]) == 1
    assert _refs(q.entries()) == ["q-5"]


def test_forget_takes_thousands_of_persons_at_once(quarantine: Opened[Quarantine]) -> None:
    q = quarantine.store
    for i in range(1500):
        q.add("engine", f"q-{i}", reason="r", at=NOW, message_id=f"m{i}", person_id=f"p{i}")
    assert q.forget([f"p{i}" for i in range(0, 1500, 2)], [f"m{i}" for i in range(1, 1200, 2)]) == 1350
    assert sorted(_refs(q.entries(limit=1000))) == sorted(f"q-{i}" for i in range(1201, 1500, 2))


def test_entries_added_from_several_threads_are_all_kept(quarantine: Opened[Quarantine]) -> None:
    q = quarantine.store
    failures: list[BaseException] = []

    def add(source: str) -> None:
        try:
            for i in range(200):
                q.add(source, f"{source}-{i}", reason="r", at=NOW + i)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=add, args=(source,)) for source in QUARANTINE_SOURCES]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert q.counts() == dict.fromkeys(QUARANTINE_SOURCES, 200)
    assert len({e["id"] for e in q.entries(limit=10_000)}) == 200 * len(QUARANTINE_SOURCES)


def test_a_reopened_quarantine_keeps_its_entries(quarantine: Opened[Quarantine]) -> None:
    q = quarantine.store
    q.add("engine", "q-1", reason="ZeroDivisionError()", at=NOW, message_id="m1", person_id="p1", body=b"{}")
    q.add("analytics", "q-2", reason="events: Conversion Error", at=NOW + 1, seq=4)
    before = q.entries()
    q = quarantine.reopen()
    assert q.entries() == before and q.counts() == {"engine": 1, "analytics": 1}
    q.add("checkpoint", "q-3", reason="r", at=NOW + 2)
    assert _refs(q.entries()) == ["q-3", "q-2", "q-1"]  # new entries still come first
