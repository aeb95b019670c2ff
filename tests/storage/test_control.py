"""The control database: keys and passwords are never stored in the clear."""

from __future__ import annotations

from pathlib import Path

import pytest

from tsunagu.core.errors import InvalidInput
from tsunagu.storage.control import ControlStore


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
