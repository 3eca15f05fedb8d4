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


@pytest.fixture
def srv(mcp_shared_fault_server: FaultServer) -> FaultServer:
    """The testing kit's module-shared fault server (starting one takes seconds), running and disarmed."""
    return mcp_shared_fault_server


@pytest.fixture(autouse=True)
def _isolated_plugin_manager() -> Iterator[None]:
    """Each test sees the entry-point plugins freshly loaded (the shim included)."""
    mcp_hooks.reset_plugin_manager()
    yield
    mcp_hooks.reset_plugin_manager()
