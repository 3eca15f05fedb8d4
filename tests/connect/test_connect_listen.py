"""``ResilientSession.listen()``: the 2026-07-28 ``subscriptions/listen`` stream, opened again after the server
restarts (the protocol replays nothing: listen again, refetch), with one event per honoured kind for what may
have been missed; given up once it cannot listen again for the deadline. Real fault server, mcp 2.x."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import pytest
from connect_helpers import MCP_MAJOR, SESSIONS

import mcp_hooks

pytestmark = pytest.mark.timeout(90)
needs_2x = pytest.mark.skipif(MCP_MAJOR < 2, reason="subscriptions/listen is the 2026-07-28 protocol (mcp 2.x)")


@needs_2x
async def test_baseline_the_sdk_stream_is_lost_for_good(server: Any) -> None:
    import mcp
    from mcp.client.subscriptions import SubscriptionLost

    async with mcp.Client(server.url) as client, client.listen(tools_list_changed=True) as sub:
        server.restart(signal.SIGKILL)
        with pytest.raises(SubscriptionLost):
            await asyncio.wait_for(sub.__anext__(), 20)


@needs_2x
async def test_a_lost_stream_is_opened_again_and_says_what_may_have_been_missed(server: Any) -> None:
    from mcp.shared.subscriptions import ToolsListChanged

    async with mcp_hooks.connect(server.url, mode="auto") as s, s.listen(tools_list_changed=True) as sub:
        assert sub.honored.tools_list_changed
        assert server.health()["listens"] == 1
        server.restart(signal.SIGKILL)
        event = await asyncio.wait_for(sub.__anext__(), 30)
        assert event == ToolsListChanged()  # refetch: events sent while it was down are lost
        assert sub.reopened == 1
        assert server.health()["listens"] == 1  # listening on the new process
        with pytest.raises(asyncio.TimeoutError):  # nothing else made up
            await asyncio.wait_for(sub.__anext__(), 1.0)
        listed = await asyncio.wait_for(s.list_tools(), 20)
        assert "echo" in {tool.name for tool in listed.tools}


@needs_2x
async def test_each_stream_of_a_session_counts_its_own_reopenings(server: Any) -> None:
    from mcp.shared.subscriptions import ToolsListChanged

    async with (
        mcp_hooks.connect(server.url, mode="auto") as s,
        s.listen(tools_list_changed=True) as first,
        s.listen(tools_list_changed=True) as second,
    ):
        assert server.health()["listens"] == 2
        server.restart(signal.SIGKILL)
        for sub in (first, second):
            assert await asyncio.wait_for(sub.__anext__(), 30) == ToolsListChanged()
        assert (first.reopened, second.reopened) == (1, 1)  # one loss each, not the session's two
        assert server.health()["listens"] == 2


@needs_2x
async def test_a_server_that_stays_down_ends_the_stream_with_an_error(server: Any) -> None:
    async with (
        mcp_hooks.connect(server.url, mode="auto", deadline=3.0, breaker_after=None) as s,
        s.listen(tools_list_changed=True) as sub,
    ):
        server.kill()
        waiting = asyncio.ensure_future(sub.__anext__())
        await asyncio.wait({waiting}, timeout=45)
        assert waiting.done(), "still waiting for a server that stays down"
        assert isinstance(waiting.exception(), Exception)
        assert sub.reopened == 0


async def test_listen_needs_the_session_less_protocol(server: Any) -> None:
    async with mcp_hooks.connect(server.url, **SESSIONS) as s:
        if MCP_MAJOR < 2:
            with pytest.raises(RuntimeError, match=r"mcp 2\.x"):
                s.listen(tools_list_changed=True)
        else:  # a session (legacy) connection: the SDK's own error, at once
            with pytest.raises(RuntimeError, match="requires 2026-07-28"):
                async with s.listen(tools_list_changed=True):
                    pass
        with pytest.raises(TypeError, match="resource_subscriptions"):
            s.listen(resource_subscriptions="kit://counter")
