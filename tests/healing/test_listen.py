"""The 2026-07-28 protocol's ``subscriptions/listen`` under ``instrument("mcp")``: the mcp 2.x ``Client``'s
own ``listen()`` stream outlives server restarts. Alone, the SDK's stream is lost for good
(``SubscriptionLost``, tests/connect/test_connect_listen.py shows it). Healed, the listen request is sent
again to the new process under its own id, and the subscription, which the protocol never replays, then
yields one event per honoured kind for what may have been missed. Real fault server, session-less."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import pytest
from healing_helpers import Events

from mcp_hooks.healing.messages import MCP_MAJOR
from mcp_hooks.healing.relay import MAX_RESENDS

pytestmark = [
    pytest.mark.usefixtures("healing"),
    pytest.mark.timeout(120),
    pytest.mark.skipif(MCP_MAJOR < 2, reason="subscriptions/listen is the 2026-07-28 protocol (mcp 2.x)"),
]


async def test_a_lost_stream_goes_on_and_says_what_may_have_been_missed(session_less: Any, events: Events) -> None:
    import mcp
    from mcp.shared.subscriptions import ToolsListChanged

    server = session_less
    async with mcp.Client(server.url) as client, client.listen(tools_list_changed=True) as sub:  # type: ignore[attr-defined]
        assert sub.honored.tools_list_changed
        assert server.health()["listens"] == 1
        await asyncio.to_thread(server.restart, signal.SIGKILL)
        assert await asyncio.wait_for(sub.__anext__(), 30) == ToolsListChanged()
        assert server.health()["listens"] == 1  # listening on the new process
        with pytest.raises(asyncio.TimeoutError):  # nothing else made up
            await asyncio.wait_for(sub.__anext__(), 1.0)
        listed = await asyncio.wait_for(client.list_tools(), 20)
        assert "echo" in {tool.name for tool in listed.tools}
    assert len(events.reconnects) == 1
    assert [call for call in events.recovered if call.tool is None]  # the listen, seen recovered by the hooks
    assert events.giveups == []


async def test_a_stream_outlives_more_restarts_than_one_request_may_be_resent(session_less: Any) -> None:
    """A subscription lives for hours: each loss answered by a new server is a first loss again, so it is
    never given up for the resend limit of a single request."""
    import mcp
    from mcp.shared.subscriptions import ToolsListChanged

    server = session_less
    async with mcp.Client(server.url) as client, client.listen(tools_list_changed=True) as sub:  # type: ignore[attr-defined]
        for _ in range(MAX_RESENDS + 1):
            await asyncio.to_thread(server.restart, signal.SIGKILL)
            assert await asyncio.wait_for(sub.__anext__(), 30) == ToolsListChanged()
        assert server.health()["listens"] == 1
