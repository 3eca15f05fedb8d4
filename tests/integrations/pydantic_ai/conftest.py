"""Fixtures for the pydantic-ai integration's tests: the shim on (or off) for one test, a started server."""

from __future__ import annotations

from collections.abc import Iterator

import mcp_hooks_fastmcp
import mcp_hooks_pydantic_ai
import pytest

import mcp_hooks
from mcp_hooks.testing import FaultServer

pytest.importorskip("pydantic_ai.mcp")


@pytest.fixture
def shim() -> Iterator[mcp_hooks_pydantic_ai.PydanticAIIntegration]:
    """The pydantic-ai integration turned on for one test (it turns the fastmcp one on), then off."""
    assert mcp_hooks.instrument("pydantic-ai") == {"pydantic-ai": True}
    try:
        yield mcp_hooks_pydantic_ai.mcp_hooks_integration
    finally:
        mcp_hooks.uninstrument("pydantic-ai")


@pytest.fixture
def no_shim() -> None:
    """Both integrations off: what a pydantic-ai user without mcp-hooks has."""
    mcp_hooks_pydantic_ai.mcp_hooks_integration.uninstrument()
    mcp_hooks_fastmcp.mcp_hooks_integration.uninstrument()


@pytest.fixture
def srv(mcp_shared_fault_server: FaultServer) -> FaultServer:
    """The testing kit's module-shared fault server (starting one takes seconds), running and disarmed."""
    return mcp_shared_fault_server
