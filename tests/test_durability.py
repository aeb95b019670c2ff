"""An answer of 200 means durable: kill -9 the server under load, restart, count."""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx

from .conftest import Server, Workspace, free_port


def _all_message_ids(ws: Workspace, user_id: str) -> list[str]:
    person = ws.person("user_id", user_id)
    ids: list[str] = []
    cursor = None
    with ws.client() as c:
        while True:
            params = {"limit": 1000, "type": "track", **({"cursor": cursor} if cursor else {})}
            page = c.get(f"/api/v1/people/{person['person_id']}/events", params=params).json()
            ids += [e["message_id"] for e in page["events"]]
            cursor = page["next_cursor"]
            if not cursor:
                return ids


def test_kill_9_under_load_loses_no_acknowledged_event_and_duplicates_none(tmp_path) -> None:
    server = Server(tmp_path, free_port())
    ws = server.create_workspace("durable")
    server.start()
    acked: dict[str, list[str]] = {}  # user -> message ids answered 200
    unacked: dict[str, list[list[str]]] = {}  # user -> batches that got no answer
    stop = threading.Event()

    def client(n: int) -> None:
        user = f"U{n}"
        acked[user], unacked[user] = [], []
        with httpx.Client(auth=(ws.write_key, ""), timeout=5) as http:
            i = 0
            while not stop.is_set():
                ids = [f"{user}-{i}-{j}" for j in range(20)]
                i += 1
                batch = [{"type": "track", "event": "view", "userId": user, "messageId": m} for m in ids]
                try:
                    r = http.post(f"{server.url}/v1/batch", json={"batch": batch})
                except httpx.HTTPError:
                    unacked[user].append(ids)
                    if stop.is_set() or server.proc is None:
                        return
                    time.sleep(0.01)
                    continue
                if r.status_code == 200:
                    acked[user].extend(ids)
                else:
                    unacked[user].append(ids)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    time.sleep(2.5)
    server.kill9()  # in the middle of the load: requests are in flight
    stop.set()
    for t in threads:
        t.join(10)
    total_acked = sum(len(v) for v in acked.values())
    assert total_acked > 1000, "the load did not get going"

    server.start()
    try:
        for user, ids in acked.items():
            stored = Counter(_all_message_ids(ws, user))
            missing = [m for m in ids if stored[m] == 0]
            assert not missing, f"{len(missing)} acknowledged events of {user} lost, e.g. {missing[:3]}"
            assert max(stored.values()) == 1, "an event was stored twice"

        # A retry of what was acknowledged before the kill is dropped (its ids are in the
        # de-dup index, committed with the log): the count below finds one copy of each.
        with httpx.Client(auth=(ws.write_key, ""), timeout=10) as http:
            for user, ids in acked.items():
                again = ids[:40] + ids[-40:]  # the oldest and the last acknowledged before the kill
                batch = [{"type": "track", "event": "view", "userId": user, "messageId": m} for m in again]
                r = http.post(f"{server.url}/v1/batch", json={"batch": batch})
                assert r.status_code == 200, r.text

        # Clients retry what got no answer; de-duplication (from its index) keeps one copy.
        with httpx.Client(auth=(ws.write_key, ""), timeout=10) as http:
            for user, batches in unacked.items():
                for ids in batches:
                    batch = [{"type": "track", "event": "view", "userId": user, "messageId": m} for m in ids]
                    assert http.post(f"{server.url}/v1/batch", json={"batch": batch}).status_code == 200
        for user in acked:
            stored = Counter(_all_message_ids(ws, user))
            expected = set(acked[user]) | {m for ids in unacked[user] for m in ids}
            assert set(stored) == expected
            assert max(stored.values()) == 1
    finally:
        server.stop()
    log = server.log_text()
    assert "Traceback" not in log, log[-4000:]


def test_restart_after_a_clean_stop_keeps_people_and_merges(tmp_path) -> None:
    server = Server(tmp_path, free_port())
    ws = server.create_workspace("restart")
    server.start()
    try:
        assert ws.ingest("/v1/page", {"anonymousId": "A", "name": "top"}).status_code == 200
        assert (
            ws.ingest("/v1/identify", {"anonymousId": "A", "userId": "M1", "traits": {"rank": "gold"}}).status_code
            == 200
        )
        before = ws.person("user_id", "M1")
        server.stop()
        server.start()
        after = ws.person("anonymous_id", "A")
        assert after == before
        assert [e["type"] for e in ws.timeline(after["person_id"], type=["page", "identify"])] == ["identify", "page"]
    finally:
        server.stop()
