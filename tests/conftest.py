"""Shared fixtures: a real `tsunagu serve` process on 127.0.0.1 with a real data directory.

`server` is one process per test module (start-up costs a second); each test gets its
own workspace from `workspace`, so tests never see each other's data.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Workspace:
    name: str
    write_key: str
    api_token: str
    url: str

    def client(self) -> httpx.Client:
        """An admin API client (Bearer token)."""
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.api_token}"}, timeout=30)

    def ingest(self, path: str, body: Any, **kwargs: Any) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", json=body, auth=(self.write_key, ""), timeout=30, **kwargs)

    def person(self, typ: str, value: str) -> dict[str, Any]:
        with self.client() as c:
            r = c.get("/api/v1/people/lookup", params={"type": typ, "value": value})
            assert r.status_code == 200, r.text
            return r.json()

    def timeline(self, person_id: str, **params: Any) -> list[dict[str, Any]]:
        with self.client() as c:
            r = c.get(f"/api/v1/people/{person_id}/events", params={"limit": 1000, **params})
            assert r.status_code == 200, r.text
            return r.json()["events"]


@dataclass
class Server:
    data_dir: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.data_dir / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 (kept open for the child)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tsunagu", "serve", "--data-dir", str(self.data_dir), "--port", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not start: {self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def create_workspace(self, name: str | None = None, *extra: str) -> Workspace:
        name = name or "ws-" + uuid.uuid4().hex[:10]
        out = subprocess.run(
            [sys.executable, "-m", "tsunagu", "workspace", "create", name, "--data-dir", str(self.data_dir), "--json",
             *extra],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        creds = json.loads(out.stdout)
        return Workspace(creds["workspace"], creds["write_key"], creds["api_token"], self.url)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("data"), free_port())
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def workspace(server: Server) -> Workspace:
    return server.create_workspace()
