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
