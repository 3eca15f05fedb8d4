"""Fixtures for the healing tests: ``instrument("mcp")`` on for the test, and the hooks' events recorded."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from healing_helpers import Events

import mcp_hooks


@pytest.fixture
def healing() -> Iterator[None]:
    """Every SDK session opened during the test is healed; the SDK is its own again afterwards."""
    assert mcp_hooks.instrument("mcp") == {"mcp": True}
    try:
        yield
    finally:
        mcp_hooks.uninstrument("mcp")


@pytest.fixture
def events(mcp_recovery_events: Events) -> Events:
    """What the observer hooks heard during the test (the kit's recorder)."""
    return mcp_recovery_events


@pytest.fixture
def server(mcp_fault_server_factory: Any) -> Any:
    """A started streamable-HTTP fault server that keeps sessions under either mcp major."""
    return mcp_fault_server_factory(legacy_only=True)


@pytest.fixture
def session_less(mcp_fault_server_factory: Any) -> Any:
    """A started fault server that negotiates the session-less 2026-07-28 protocol with mcp 2.x clients."""
    return mcp_fault_server_factory()
