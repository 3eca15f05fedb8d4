"""The fastmcp shim and ``mcp_hooks.instrument("mcp")`` on together (what ``mcp_hooks.instrument()`` and
``mcp-hooks run`` turn on): the client's session is the shim's to heal, so one loss is rebuilt once, by
the shim, and the SDK healing beneath stays out of it (its transport is opened under ``bypass()``).
"""

from __future__ import annotations

import asyncio

import pytest
from fastmcp_helpers import rebuilds, session_client, text_of

from mcp_hooks import OutcomeUncertain
from mcp_hooks.testing import FaultServer
from mcp_hooks.testing.events import RecoveryEvents

pytestmark = pytest.mark.timeout(90)


async def test_a_restart_is_rebuilt_once_by_the_shim(
    shim: object, sdk_healing: None, mcp_recovery_events: RecoveryEvents, srv: FaultServer
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
    assert [call.framework for call in mcp_recovery_events.reconnects] == ["fastmcp"]


async def test_a_write_killed_in_flight_runs_once(
    shim: object, sdk_healing: None, mcp_recovery_events: RecoveryEvents, srv: FaultServer
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
    assert {call.framework for call in mcp_recovery_events.reconnects} == {"fastmcp"}
