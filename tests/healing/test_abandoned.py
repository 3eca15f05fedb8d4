"""A request its caller gave up (a cancelled task, ``asyncio.wait_for``) under ``instrument("mcp")``: it is
never sent later, and a server that runs it is told. mcp 1.x tells nobody when a caller gives up, so
without the healing layer's own note a write queued during an outage would run once the server is back,
after its caller saw it fail; mcp 2.x sends ``notifications/cancelled`` itself. Both majors, real fault
server, the SDK's own session."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import pytest
from healing_helpers import Events, raw_session, text, wait_for

pytestmark = [pytest.mark.usefixtures("healing"), pytest.mark.timeout(90)]


async def test_a_write_given_up_during_an_outage_never_runs_later(server: Any, events: Events) -> None:
    async with raw_session(server.url) as session:
        text(await session.call_tool("echo", {"text": "warm"}))
        server.kill()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(session.call_tool("incr", {"key": "w"}), 2.0)
        await asyncio.to_thread(server.start)
        assert text(await asyncio.wait_for(session.call_tool("echo", {"text": "back"}), 20)).startswith("back")
        await asyncio.sleep(0.5)  # time enough for anything still queued to reach the server
    assert server.executions("incr") == 0
    assert server.counter("w") == 0
    assert len(events.reconnects) == 1


async def test_a_call_given_up_while_it_runs_is_cancelled_on_the_server_and_never_replayed(
    server: Any, events: Events
) -> None:
    async with raw_session(server.url) as session:
        text(await session.call_tool("echo", {"text": "warm"}))
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(session.call_tool("slow", {"seconds": 30}), 1.0)
        assert await wait_for(lambda: server.health()["cancelled"] == 1, 10), server.health()
        # a loss now has nothing of it left to send again (slow is read-only: it would be replayed)
        await asyncio.to_thread(server.restart, signal.SIGKILL)
        assert text(await asyncio.wait_for(session.call_tool("echo", {"text": "after"}), 20)).startswith("after")
        await asyncio.sleep(0.5)
    assert server.executions("slow") == 1
    assert [call for call in events.recovered if call.tool == "slow"] == []
