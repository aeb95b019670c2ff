"""A defect in the admin app: the one error shape, `Connection: close`, one log entry, and the
process goes on serving on a real server (`faulty_server.py` injects the defects).

Before: FastAPI's `exception_handler(Exception)` answered from Starlette's
ServerErrorMiddleware, which re-raised; uvicorn logged it a second time and reset the
keep-alive connection, with no `Connection: close` said.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .error_shape import assert_one_error_shape

HERE = Path(__file__).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Faulty:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.url = f"http://127.0.0.1:{_free_port()}"
        self.log = data_dir / "server.log"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faulty]:
    srv = Faulty(tmp_path_factory.mktemp("faulty"))
    port = srv.url.rsplit(":", 1)[1]
    with open(srv.log, "ab") as log:
        proc = subprocess.Popen([sys.executable, str(HERE / "faulty_server.py"), str(srv.data_dir), port],
                                stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, srv.log_text()[-3000:]
            assert time.monotonic() < deadline, srv.log_text()[-3000:]
            try:
                if httpx.get(f"{srv.url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        yield srv
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_a_defect_answers_the_error_shape_closes_the_connection_and_the_server_goes_on(faulty: Faulty) -> None:
    with httpx.Client(base_url=faulty.url, timeout=30) as client:
        assert client.get("/health").status_code == 200
        r = client.get("/api/v1/faults/before")
        assert r.status_code == 500
        assert r.headers["connection"] == "close"
        assert r.headers["content-type"] == "application/json"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert assert_one_error_shape(r, 500) == {
            "status": 500,
            "code": "internal_error",
            "message": "internal error; see the server log",
        }
        # the same client goes on: the server closed the connection cleanly, as it said
        for _ in range(3):
            assert client.get("/health").status_code == 200
    log = faulty.log_text()
    assert log.count("injected defect before") == 1, log  # logged once, with its traceback
    assert "Traceback" in log and "GET /api/v1/faults/before failed" in log
    assert "Exception in ASGI application" not in log


def test_a_defect_after_the_response_was_sent_whole_is_logged_once_and_the_connection_kept(faulty: Faulty) -> None:
    with httpx.Client(base_url=faulty.url, timeout=30) as client:
        r = client.get("/api/v1/faults/after")
        assert r.status_code == 200 and r.json() == {"sent": "whole"}
        assert r.headers.get("connection") != "close"
        assert client.get("/health").status_code == 200
    deadline = time.monotonic() + 10
    while "injected defect after" not in faulty.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = faulty.log_text()
    assert log.count("injected defect after") == 1, log
    assert "Exception in ASGI application" not in log


def test_a_defect_midway_through_a_streamed_body_cuts_the_connection_so_the_client_knows(faulty: Faulty) -> None:
    with httpx.Client(base_url=faulty.url, timeout=30) as client:
        with pytest.raises(httpx.RemoteProtocolError):  # the chunked body never ends: not a whole CSV
            client.get("/api/v1/faults/midway")
        assert client.get("/health").status_code == 200
    deadline = time.monotonic() + 10
    while "injected defect midway" not in faulty.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert faulty.log_text().count("injected defect midway") == 1  # by the server, once
    assert httpx.get(f"{faulty.url}/health", timeout=10).status_code == 200
