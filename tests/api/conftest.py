"""Fixtures for the HTTP API tests.

`workspace` is redefined here to create the workspace in the control database directly
(the same `ControlStore.create_workspace` the `tsunagu workspace create` CLI calls, and
the running server reads it without a restart) instead of spawning the CLI: that costs
about 2 ms instead of 0.8 s, which keeps this directory's hundred-odd tests fast. The
CLI path itself is covered by tests/test_smoke.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tsunagu.storage.control import ControlStore


def _workspace_class(server: Any) -> type:
    # The Workspace dataclass lives next to Server in tests/conftest.py (whose module name
    # depends on how pytest imported it: take it from the method's globals).
    return type(server).create_workspace.__globals__["Workspace"]


def new_workspace(server: Any) -> Any:
    """A fresh workspace on `server`, made in its control database directly."""
    store = ControlStore(server.data_dir / "control.sqlite")
    try:
        creds = store.create_workspace("ws-" + uuid.uuid4().hex[:12])
    finally:
        store.close()
    return _workspace_class(server)(creds.workspace, creds.write_key, creds.api_token, server.url)


@pytest.fixture(scope="module")
def make_workspace(server: Any) -> Callable[[], Any]:
    """A factory of fresh workspaces on the module's server."""
    return lambda: new_workspace(server)


@pytest.fixture
def workspace(make_workspace: Callable[[], Any]) -> Any:
    """A fresh workspace for one test."""
    return make_workspace()


@pytest.fixture(scope="module")
def shared_workspace(make_workspace: Callable[[], Any]) -> Any:
    """One workspace for a whole module, for tests that keep apart by their own user ids.

    Opening a workspace's stores costs the server about 0.2 s; tests that only ever look
    at their own (uuid) people do not need a workspace each.
    """
    return make_workspace()
