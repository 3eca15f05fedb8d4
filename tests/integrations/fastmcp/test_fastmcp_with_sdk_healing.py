"""The fastmcp shim and ``mcp_hooks.instrument("mcp")`` on together (what ``mcp_hooks.instrument()`` and
``mcp-hooks run`` turn on): the client's session is the shim's to heal, so one loss is rebuilt once, by
the shim, and the SDK healing beneath stays out of it (its transport is opened under ``bypass()``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from fastmcp_helpers import rebuilds, session_client, text_of

import mcp_hooks
from mcp_hooks import OutcomeUncertain, ToolCall
from mcp_hooks.testing import FaultServer

pytestmark = pytest.mark.timeout(90)


class Reconnects:
    """Every ``on_reconnect`` event, whoever leads the rebuild (the shim or the SDK healing)."""

    def __init__(self) -> None:
        self.calls: list[ToolCall] = []

    @mcp_hooks.hookimpl
    def on_reconnect(self, call: ToolCall, error: BaseException) -> None:
        self.calls.append(call)


@pytest.fixture
def sdk_healing() -> Iterator[None]:
    """``instrument("mcp")`` on for the test (the shim is on already), off again afterwards."""
    assert mcp_hooks.instrument("mcp") == {"mcp": True}
    try:
        yield
    finally:
        mcp_hooks.uninstrument("mcp")


@pytest.fixture
def reconnects() -> Iterator[Reconnects]:
    recorder = Reconnects()
    pm = mcp_hooks.plugin_manager()
    pm.register(recorder, name="test-fastmcp-sdk-healing-reconnects")
    try:
        yield recorder
    finally:
        pm.unregister(recorder)


async def test_a_restart_is_rebuilt_once_by_the_shim(
    shim: object, sdk_healing: None, reconnects: Reconnects, srv: FaultServer
) -> None:
    client = session_client(srv.url)
    async with client:
        assert text_of(await client.call_tool("echo", {"text": "one"})).startswith("one")
        srv.restart()
        answer = text_of(await client.call_tool("echo", {"text": "two"}))
        assert answer == f"two (pid {srv.pid})"
        await asyncio.sleep(0.5)  # a rebuild beneath the session would have started by now
        assert text_of(await client.call_tool("echo", {"text": "three"})).startswith("three")
        assert rebuilds(client) == 1
    assert [call.framework for call in reconnects.calls] == ["fastmcp"]


async def test_a_write_killed_in_flight_runs_once(
    shim: object, sdk_healing: None, reconnects: Reconnects, srv: FaultServer
) -> None:
    ran = srv.executions_from_now()
    client = session_client(srv.url)
    async with client:
        await client.call_tool("echo", {"text": "warm"})
        srv.kill_during_next_call("incr", when="after")
        restarter = srv.revive_when_dead()
        try:
            with pytest.raises(OutcomeUncertain) as caught:  # the shim's verdict, not the SDK healing's
                await client.call_tool("incr", {"key": "sdk-healing-lost-write"})
        finally:
            restarter.join(30)
        assert caught.value.tool == "incr"
        assert ran("incr") == 1
        assert text_of(await client.call_tool("echo", {"text": "next"})).startswith("next")
    assert ran("incr") == 1
    assert srv.counter("sdk-healing-lost-write") == 1
    assert {call.framework for call in reconnects.calls} == {"fastmcp"}
