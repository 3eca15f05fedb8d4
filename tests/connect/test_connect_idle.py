"""Idle expiry with a short server TTL: ``connect()`` left idle past it still answers the next call.

The SDK's own ``session_idle_timeout`` never expires a session whose client holds the standing GET
stream, and ``connect()`` holds one; a gateway's idle TTL does. The kit's ``post_idle_ttl`` is that:
a session is expired once no POST came for it for that long, and answered in the configured stale
style afterwards. ``legacy_only`` gives mcp 2.x clients in their default mode a session to expire.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from connect_helpers import text, value

import mcp_hooks

TTL = 1.0
#: Comfortably past the TTL: the session's last POST ended before this sleep began.
IDLE = TTL + 0.8


@pytest.mark.timeout(60)
@pytest.mark.parametrize("style", ["python", "gone-410"])
async def test_idle_past_the_ttl_then_a_write_runs_exactly_once(
    mcp_fault_server_factory: Callable[..., Any], style: str
) -> None:
    srv = mcp_fault_server_factory(post_idle_ttl=TTL, legacy_only=True, stale_style=style)
    async with mcp_hooks.connect(srv.url) as s:  # the default mode; it holds the GET stream
        assert value(await s.call_tool("echo", {"text": "a"})) == "a"
        first = s.session_id
        assert first is not None
        assert s.reconnects == 0
        assert srv.health()["stale_answers"] == 0
        ran = srv.executions_from_now()

        await asyncio.sleep(IDLE)  # idle: no POST; the standing GET stream does not keep it alive

        # incr is not safe to repeat: it may run only because the expired session refused it unrun
        assert text(await s.call_tool("incr", {"key": "idle"})) == "1"
        assert s.reconnects == 1
        assert s.session_id not in (None, first)
        health = srv.health()
        assert health["stale_answers"] >= 1  # the first attempt was refused by the expired session
        assert health["pid"] == srv.pid  # expired, not restarted
        assert ran("incr") == 1
        assert srv.counter("idle") == 1

        assert value(await s.call_tool("echo", {"text": "b"})) == "b"
    assert ran() == 2  # incr once, echo once: nothing ran on the expired session
