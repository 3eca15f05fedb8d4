"""Fixtures for the fastmcp integration's tests: the shim on (or off) for one test, a started server."""

from __future__ import annotations

from collections.abc import Iterator

import mcp_hooks_fastmcp
import pytest

import mcp_hooks
from mcp_hooks.testing import FaultServer

pytest.importorskip("fastmcp")


@pytest.fixture
def shim() -> Iterator[mcp_hooks_fastmcp.FastMCPIntegration]:
    """The fastmcp integration turned on for one test (and off again)."""
    integration = mcp_hooks_fastmcp.mcp_hooks_integration
    assert integration.instrument() is True
    try:
        yield integration
    finally:
        integration.uninstrument()


@pytest.fixture
def no_shim() -> None:
    """Make sure the integration is off (what a user without mcp-hooks has)."""
    mcp_hooks_fastmcp.mcp_hooks_integration.uninstrument()


@pytest.fixture(scope="module")
def shared_server() -> Iterator[FaultServer]:
    """One fault server per test module (starting one takes seconds); tests restart and kill it."""
    with FaultServer() as server:
        yield server


@pytest.fixture
def srv(shared_server: FaultServer) -> FaultServer:
    """The module's fault server, running and disarmed. Counts carry over between tests: compare
    differences, and use a counter key of the test's own."""
    if not shared_server.running:
        shared_server.start()
    shared_server.clear_controls()
    return shared_server


@pytest.fixture(autouse=True)
def _isolated_plugin_manager() -> Iterator[None]:
    """Each test sees the entry-point plugins freshly loaded (the shim included)."""
    mcp_hooks.reset_plugin_manager()
    yield
    mcp_hooks.reset_plugin_manager()
