"""The control database: keys, passwords and session ids are never stored in the clear; sessions end; logins are
throttled."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tsunagu.core.errors import InvalidInput, NotFound
from tsunagu.storage.control import (
    ACCOUNT_LIMIT,
    ADDRESS_LIMIT,
    FIRST_DELAY_MS,
    FORGET_AFTER_MS,
    MAX_DELAY_MS,
    ControlStore,
    LoginAttempt,
    login_delay_ms,
)


def test_keys_open_only_their_own_kind_and_are_stored_hashed(tmp_path: Path) -> None:
    store = ControlStore(tmp_path / "control.sqlite")
    a = store.create_workspace("a")
    b = store.create_workspace("b")
    assert store.authenticate(a.write_key, "write") == "a"
    assert store.authenticate(a.api_token, "admin") == "a"
    assert store.authenticate(b.api_token, "admin") == "b"
    assert store.authenticate(a.write_key, "admin") is None  # a write key opens no admin endpoint
    assert store.authenticate(a.api_token, "write") is None
    assert store.authenticate("wk_guess", "write") is None
    raw = (tmp_path / "control.sqlite").read_bytes() + (tmp_path / "control.sqlite-wal").read_bytes()
    for secret in (a.write_key, a.api_token, b.write_key, b.api_token):
        assert secret.encode() not in raw


def test_user_passwords_are_argon2_hashes_and_checked(tmp_path: Path) -> None:
    store = ControlStore(tmp_path / "control.sqlite")
    store.create_workspace("a")
    store.create_workspace("b")
    store.create_user("a", "Staff@Example.jp", "correct horse")
    assert store.verify_user("a", "staff@example.jp", "correct horse")
    assert not store.verify_user("a", "staff@example.jp", "wrong horse")
    assert not store.verify_user("b", "staff@example.jp", "correct horse")  # workspaces are apart
    raw = (tmp_path / "control.sqlite").read_bytes() + (tmp_path / "control.sqlite-wal").read_bytes()
    assert b"correct horse" not in raw and b"$argon2id$" in raw


@pytest.mark.parametrize(
    ("name", "reason"),
    [("Has Space", "is not a workspace name"), ("", "is not a workspace name"), ("UPPER", "is not a workspace name")],
)
def test_bad_workspace_names_are_refused_with_the_reason(tmp_path: Path, name: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as err:
        ControlStore(tmp_path / "control.sqlite").create_workspace(name)
    assert err.value.errors[0].field == "name" and reason in err.value.errors[0].reason


def test_a_workspace_name_is_taken_once(tmp_path: Path) -> None:
    store = ControlStore(tmp_path / "control.sqlite")
    store.create_workspace("shop")
    with pytest.raises(InvalidInput, match="already exists"):
        store.create_workspace("shop")


# -- sessions ---------------------------------------------------------------------------

HOUR = 3600_000
T0 = 1_800_000_000_000


def _store_with_user(tmp_path: Path, *emails: str) -> ControlStore:
    store = ControlStore(tmp_path / "control.sqlite")
    store.create_workspace("a")
    for email in emails or ("staff@example.jp",):
        store.create_user("a", email, "correct horse")
    return store


def test_a_session_id_is_random_stored_hashed_and_opens_its_own_session(tmp_path: Path) -> None:
    store = _store_with_user(tmp_path)
    sid, session = store.create_session("a", "Staff@Example.jp", T0, T0 + 12 * HOUR)
    other, _ = store.create_session("a", "staff@example.jp", T0, T0 + 12 * HOUR)
    assert len(sid) >= 43 and sid != other  # 32 random bytes, base64url
    assert store.session(sid, T0) == session and session.email == "staff@example.jp"
    assert store.session(sid + "x", T0) is None and store.session("", T0) is None
    raw = (tmp_path / "control.sqlite").read_bytes() + (tmp_path / "control.sqlite-wal").read_bytes()
    assert sid.encode() not in raw and other.encode() not in raw


def test_a_session_expires_at_its_time_and_expired_rows_are_removed(tmp_path: Path) -> None:
    store = _store_with_user(tmp_path)
    old, _ = store.create_session("a", "staff@example.jp", T0, T0 + 12 * HOUR)
    assert store.session(old, T0 + 12 * HOUR - 1) is not None
    assert store.session(old, T0 + 12 * HOUR) is None
    store.create_session("a", "staff@example.jp", T0 + 13 * HOUR, T0 + 25 * HOUR)  # cleans up
    assert store._con.execute("SELECT count(*) FROM sessions").fetchone() == (1,)


def test_last_used_is_kept_without_a_write_per_request(tmp_path: Path) -> None:
    store = _store_with_user(tmp_path)
    sid, _ = store.create_session("a", "staff@example.jp", T0, T0 + 12 * HOUR)
    store.session(sid, T0 + 1000)
    assert store.sessions("a", "staff@example.jp", T0 + 1000)[0].last_used == T0
    store.session(sid, T0 + 2 * 60_000)
    assert store.sessions("a", "staff@example.jp", T0)[0].last_used == T0 + 2 * 60_000


def test_ending_a_session_a_password_change_a_reset_and_a_deletion_end_sessions(tmp_path: Path) -> None:
    store = _store_with_user(tmp_path, "staff@example.jp", "other@example.jp")
    one, two, three = (store.create_session("a", "staff@example.jp", T0, T0 + HOUR)[0] for _ in range(3))
    theirs, _ = store.create_session("a", "other@example.jp", T0, T0 + HOUR)
    store.end_session(one)
    assert store.session(one, T0) is None and store.session(two, T0) is not None
    # a change of password keeps the session it was made from, and only the user's own
    assert store.set_password("a", "Staff@example.jp", "new password!", keep_session=two) == 1
    assert store.session(two, T0) is not None and store.session(three, T0) is None
    assert store.session(theirs, T0) is not None
    assert store.verify_user("a", "staff@example.jp", "new password!")
    assert not store.verify_user("a", "staff@example.jp", "correct horse")
    # a reset (create_user again) ends every session of the user
    assert store.create_user("a", "staff@example.jp", "third password") == 1
    assert store.session(two, T0) is None
    assert store.delete_user("a", "other@example.jp") and store.session(theirs, T0) is None
    assert not store.delete_user("a", "other@example.jp")
    assert not store.verify_user("a", "other@example.jp", "correct horse")


def test_a_session_of_a_user_deleted_behind_the_stores_back_opens_nothing(tmp_path: Path) -> None:
    store = _store_with_user(tmp_path)
    sid, _ = store.create_session("a", "staff@example.jp", T0, T0 + HOUR)
    store._con.execute("DELETE FROM users")  # e.g. by an older tsunagu that knew no sessions
    assert store.session(sid, T0) is None


def test_a_password_change_is_checked_like_a_new_password(tmp_path: Path) -> None:
    store = _store_with_user(tmp_path)
    with pytest.raises(InvalidInput, match="at least 8"):
        store.set_password("a", "staff@example.jp", "short")
    with pytest.raises(NotFound):
        store.set_password("a", "nobody@example.jp", "long enough")


# -- the login throttle -----------------------------------------------------------------


def test_the_wait_doubles_from_the_limit_and_is_capped() -> None:
    assert [login_delay_ms(n, 5) // 1000 for n in range(4, 12)] == [0, 30, 60, 120, 240, 480, 900, 900]
    assert login_delay_ms(10_000, 5) == MAX_DELAY_MS


def test_an_account_is_refused_after_the_limit_even_with_the_right_password(tmp_path: Path) -> None:
    store = _store_with_user(tmp_path)
    for i in range(ACCOUNT_LIMIT):
        assert store.attempt_login("a", "staff@example.jp", "wrong", "10.0.0.1", T0 + i) == LoginAttempt(False)
    refused = store.attempt_login("a", "STAFF@example.jp", "correct horse", "10.0.0.2", T0 + 10)
    assert not refused.ok and refused.retry_after_ms == FIRST_DELAY_MS - 6
    # the wait passes: one more try; a failure now waits twice as long
    later = T0 + 4 + FIRST_DELAY_MS
    assert store.attempt_login("a", "staff@example.jp", "wrong", "10.0.0.2", later) == LoginAttempt(False)
    assert store.attempt_login("a", "staff@example.jp", "correct horse", "10.0.0.2", later + 1).retry_after_ms == (
        2 * FIRST_DELAY_MS - 1
    )
    assert store.attempt_login("a", "staff@example.jp", "correct horse", "10.0.0.2", later + 2 * FIRST_DELAY_MS).ok
    # a success clears the account's counter
    assert store.attempt_login("a", "staff@example.jp", "wrong", "10.0.0.3", later + 3 * FIRST_DELAY_MS) == (
        LoginAttempt(False)
    )
    assert store.attempt_login("a", "staff@example.jp", "correct horse", "10.0.0.3", later + 3 * FIRST_DELAY_MS).ok


def test_an_address_spraying_many_accounts_is_refused_after_its_limit(tmp_path: Path) -> None:
    store = _store_with_user(tmp_path)
    for i in range(ADDRESS_LIMIT):
        assert not store.attempt_login("a", f"guess{i}@example.jp", "wrong", "10.0.0.9", T0).ok
    assert store.attempt_login("a", "staff@example.jp", "correct horse", "10.0.0.9", T0).retry_after_ms > 0
    assert store.attempt_login("a", "staff@example.jp", "correct horse", "10.0.0.8", T0).ok


def test_a_successful_login_takes_its_attempt_back_from_the_address(tmp_path: Path) -> None:
    store = _store_with_user(tmp_path)
    for _ in range(ADDRESS_LIMIT - 1):
        assert store.attempt_login("a", "staff@example.jp", "correct horse", "10.0.0.9", T0).ok
    for i in range(ADDRESS_LIMIT - 1):
        assert not store.attempt_login("a", f"guess{i}@example.jp", "wrong", "10.0.0.9", T0).ok
    assert store.attempt_login("a", "staff@example.jp", "correct horse", "10.0.0.9", T0).ok


def test_failures_are_forgotten_after_a_quiet_period_and_a_reset_clears_the_account(tmp_path: Path) -> None:
    store = _store_with_user(tmp_path)
    for _ in range(ACCOUNT_LIMIT - 1):
        store.attempt_login("a", "staff@example.jp", "wrong", "10.0.0.1", T0)
    quiet = T0 + FORGET_AFTER_MS
    for _ in range(ACCOUNT_LIMIT - 1):  # the first four are forgotten: four more are allowed
        assert not store.attempt_login("a", "staff@example.jp", "wrong", "10.0.0.1", quiet).ok
    assert store.attempt_login("a", "staff@example.jp", "wrong", "10.0.0.1", quiet).retry_after_ms == 0
    assert store.attempt_login("a", "staff@example.jp", "correct horse", "10.0.0.1", quiet).retry_after_ms > 0
    store.create_user("a", "staff@example.jp", "reset by the admin")  # the CLI's reset
    assert store.attempt_login("a", "staff@example.jp", "reset by the admin", "10.0.0.2", quiet).ok
    # rows long past their wait are removed by the next attempt
    store.attempt_login("a", "x@example.jp", "wrong", "10.0.0.3", quiet + FORGET_AFTER_MS + MAX_DELAY_MS + 1)
    assert store._con.execute("SELECT count(*) FROM login_failures").fetchone() == (2,)


def test_parallel_guesses_cannot_slip_past_the_limit(tmp_path: Path) -> None:
    store = _store_with_user(tmp_path)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: store.attempt_login("a", "staff@example.jp", "wrong", "10.0.0.1", T0),
                                range(16)))  # fmt: skip
    assert sum(r.retry_after_ms == 0 for r in results) == ACCOUNT_LIMIT  # checked; the rest refused
