"""Sessions expire and the login throttle waits, on a real server whose clock the test sets
(uvicorn in-process, real HTTP; other client addresses are real too: 127.0.0.2, .3)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from tsunagu.storage.control import ACCOUNT_LIMIT, ADDRESS_LIMIT, FIRST_DELAY_MS

from ..clocked import ClockedServer, jst
from ..conftest import Workspace

PASSWORD = "correct horse battery"
HOUR = 3600_000


@pytest.fixture(scope="module")
def clocked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClockedServer]:
    srv = ClockedServer(tmp_path_factory.mktemp("clocked-sessions"), jst(2026, 3, 1, 9, 0)).start()
    yield srv
    srv.stop()


@contextmanager
def _client(clocked: ClockedServer, address: str = "127.0.0.1", **kw: object) -> Iterator[httpx.Client]:
    """A client whose connections come from `address` (any 127.x address is this machine)."""
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(base_url=clocked.url, transport=transport, **kw) as c:  # type: ignore[arg-type]
        yield c


def _login(c: httpx.Client, ws: Workspace, email: str, password: str = PASSWORD, **kw: object) -> httpx.Response:
    token = re.search(r'name="csrf" value="([^"]+)"', c.get("/ui/login").text)
    assert token
    form = {"csrf": token.group(1), "workspace": ws.name, "email": email, "password": password}
    return c.post("/ui/login", data=form, **kw)  # type: ignore[arg-type]


def _user(clocked: ClockedServer, email: str = "staff@example.jp") -> tuple[Workspace, str]:
    ws = clocked.create_workspace()
    clocked.create_user(ws, email, PASSWORD)
    return ws, email


def test_a_session_ends_12_hours_after_the_login_however_busy(clocked: ClockedServer) -> None:
    ws, email = _user(clocked)
    start = clocked.now
    with _client(clocked) as c:
        assert _login(c, ws, email).status_code == 303
        for hours in (1, 6, 11.99):  # used all along: still 12 h from the login, not from the last use
            clocked.now = start + int(hours * HOUR)
            assert c.get("/ui/people", follow_redirects=False).status_code == 200
        clocked.now = start + 12 * HOUR
        r = c.get("/ui/people", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/ui/login"
        assert _login(c, ws, email).status_code == 303  # a new login starts a new 12 h
        assert c.get("/ui/people", follow_redirects=False).status_code == 200


def test_five_wrong_passwords_then_even_the_right_one_waits_and_then_works(clocked: ClockedServer) -> None:
    ws, email = _user(clocked)
    other_ws, other = _user(clocked, "other@example.jp")
    with _client(clocked, "127.0.0.1", headers={"Accept-Language": "en"}) as c:
        for _ in range(ACCOUNT_LIMIT):
            r = _login(c, ws, email, "wrong password")
            assert r.status_code == 400 and "Wrong workspace, email or password" in r.text
        r = _login(c, ws, email)  # the right password, refused without being checked
        assert r.status_code == 429 and r.headers["retry-after"] == str(FIRST_DELAY_MS // 1000)
        assert "Too many failed attempts: please try again in 30 seconds" in r.text
        assert "tsg_session" not in c.cookies
    with _client(clocked, "127.0.0.1") as c:  # in Japanese for a Japanese browser
        r = _login(c, ws, email)
        assert r.status_code == 429 and "30秒後にもう一度お試しください" in r.text
    # another account from another address is not slowed down ...
    with _client(clocked, "127.0.0.2") as c:
        assert _login(c, other_ws, other).status_code == 303
        # ... but the account is, from any address: the throttle is per account too
        assert _login(c, ws, email).status_code == 429
    clocked.now += FIRST_DELAY_MS
    with _client(clocked, "127.0.0.1") as c:
        r = _login(c, ws, email)
        assert r.status_code == 303 and c.get("/ui/", follow_redirects=False).status_code == 200
        # the success cleared the account's counter: a typo is just a typo again
        assert _login(c, ws, email, "wrong password").status_code == 400
        assert _login(c, ws, email).status_code == 303


def test_the_wait_doubles_when_the_next_try_fails_too(clocked: ClockedServer) -> None:
    ws, email = _user(clocked)
    with _client(clocked, "127.0.0.3") as c:
        for _ in range(ACCOUNT_LIMIT):
            _login(c, ws, email, "wrong password")
        clocked.now += FIRST_DELAY_MS
        assert _login(c, ws, email, "still wrong").status_code == 400
        r = _login(c, ws, email)
        assert r.status_code == 429 and r.headers["retry-after"] == str(2 * FIRST_DELAY_MS // 1000)
        assert "60秒" in r.text
        clocked.now += 2 * FIRST_DELAY_MS
        assert _login(c, ws, email).status_code == 303


def test_an_address_trying_many_accounts_waits_while_other_addresses_do_not(clocked: ClockedServer) -> None:
    ws, email = _user(clocked)
    with _client(clocked, "127.0.0.4") as sprayer:
        for i in range(ADDRESS_LIMIT):
            assert _login(sprayer, ws, f"guess{i}@example.jp", "Summer2026!").status_code == 400
        r = _login(sprayer, ws, email)
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    with _client(clocked, "127.0.0.5") as c:
        assert _login(c, ws, email).status_code == 303


def test_behind_a_proxy_on_this_machine_the_forwarded_address_counts(clocked: ClockedServer) -> None:
    # uvicorn believes X-Forwarded-For only from FORWARDED_ALLOW_IPS (by default 127.0.0.1
    # and ::1, a proxy on the same machine); from anywhere else the header changes nothing
    ws, email = _user(clocked)
    forwarded = {"X-Forwarded-For": "203.0.113.7"}
    with _client(clocked, "127.0.0.1", headers=forwarded) as proxied:
        for i in range(ADDRESS_LIMIT):
            _login(proxied, ws, f"guess{i}@example.jp", "Summer2026!")
        assert _login(proxied, ws, email).status_code == 429
    with _client(clocked, "127.0.0.1") as direct:
        assert _login(direct, ws, email).status_code == 303
    with _client(clocked, "127.0.0.6") as c:
        for i in range(ADDRESS_LIMIT):
            _login(c, ws, f"guess{i}@example.jp", "Summer2026!", headers={"X-Forwarded-For": f"198.51.100.{i}"})
        assert _login(c, ws, email).status_code == 429  # a made-up header from a stranger is ignored


def test_a_wrong_current_password_on_the_account_page_counts_as_a_failed_login(clocked: ClockedServer) -> None:
    ws, email = _user(clocked)
    with _client(clocked, "127.0.0.7", headers={"Accept-Language": "en"}) as c:
        assert _login(c, ws, email).status_code == 303
        csrf = re.search(r'name="csrf" value="([^"]+)"', c.get("/ui/account").text).group(1)  # type: ignore[union-attr]
        form = {"csrf": csrf, "current": "a guess", "new": "new password 1", "again": "new password 1"}
        for _ in range(ACCOUNT_LIMIT):
            assert c.post("/ui/account/password", data=form).status_code == 400
        r = c.post("/ui/account/password", data=form | {"current": PASSWORD})
        assert r.status_code == 429 and "Retry-After" in r.headers and "Too many failed attempts" in r.text
        assert c.get("/ui/", follow_redirects=False).status_code == 200  # the session itself lives on
