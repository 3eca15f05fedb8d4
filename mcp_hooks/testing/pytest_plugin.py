"""pytest fixtures for the fault-injecting MCP server (loaded through the ``pytest11`` entry point).

A test then reads::

    async def test_survives_restart(mcp_fault_server):
        async with mcp_hooks.connect(mcp_fault_server.url) as session:
            await session.call_tool("incr", {})
            mcp_fault_server.restart()
            await session.call_tool("echo", {"text": "hi"})
        assert mcp_fault_server.executions("incr") == 1

This module is imported by every pytest run where mcp-hooks is installed, so it imports nothing
heavy: the controller (stdlib only) is imported when a fixture is first used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from mcp_hooks.testing.controller import FaultServer

__all__ = ["mcp_fault_server", "mcp_fault_server_factory", "mcp_stdio_fault_server"]


@pytest.fixture
def mcp_fault_server_factory() -> Iterator[Callable[..., FaultServer]]:
    """A callable taking ``FaultServer`` keyword arguments and returning a started server.

    Every server it made is stopped (and its temporary state directory removed) at teardown.
    """
    from mcp_hooks.testing.controller import FaultServer

    servers: list[FaultServer] = []

    def make(**kwargs: Any) -> FaultServer:
        server = FaultServer(**kwargs)
        servers.append(server)
        if server.transport == "http":
            server.start()
        return server

    try:
        yield make
    finally:
        errors: list[BaseException] = []
        for server in reversed(servers):
            try:
                server.kill()  # nothing to wait for: SIGKILL is as good as a graceful stop here
                server.close()
            except Exception as exc:  # close the others, then report
                errors.append(exc)
        if errors:
            raise errors[0]


@pytest.fixture
def mcp_fault_server(mcp_fault_server_factory: Callable[..., FaultServer]) -> FaultServer:
    """A started streamable-HTTP fault server (``.url``), stopped after the test."""
    return mcp_fault_server_factory()


@pytest.fixture
def mcp_stdio_fault_server(mcp_fault_server_factory: Callable[..., FaultServer]) -> FaultServer:
    """A stdio fault server: spawn it with ``.stdio_server_parameters()``; its state dir is ready."""
    return mcp_fault_server_factory(transport="stdio")
