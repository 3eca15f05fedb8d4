"""The 2026-07-28 protocol's refusals before dispatch, ``-32022`` UnsupportedProtocolVersion (a rolling
upgrade or rollback: the replica no longer speaks the version the client negotiated) and ``-32020``
HeaderMismatch (routing headers from a stale tool list): the request never ran, a new session negotiates
the version and lists the tools again, then the request is sent again, a write included. Under a session
healed by ``instrument("mcp")`` and under ``connect()``, mcp 1.x and 2.x, against the kit's real server
(``FaultServer.reject_calls``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from healing_helpers import outcome, raw_session, text

import mcp_hooks
from mcp_hooks.connection import MCP_MAJOR

pytestmark = [pytest.mark.usefixtures("healing"), pytest.mark.timeout(90)]

REFUSALS = pytest.mark.parametrize(
    ("code", "message", "data"),
    [
        (-32022, "Unsupported protocol version", {"supported": ["2025-11-25"], "requested": "2025-06-18"}),
        (-32020, "Mcp-Name header does not match the request body's 'name' parameter", None),
    ],
    ids=["unsupported-version", "header-mismatch"],
)

#: how the session is opened: healed beneath the SDK, connect() on the session protocol and, on mcp 2.x,
#: connect() on the session-less one (where the Client above answers -32020 itself and connect() re-probes)
HOW = ["healed", "connect"] + (["connect-session-less"] if MCP_MAJOR >= 2 else [])


@contextlib.asynccontextmanager
async def opened(how: str, url: str) -> AsyncIterator[Any]:
    if how == "healed":
        async with raw_session(url) as session:
            yield session
    else:
        mode = {"mode": "auto" if how == "connect-session-less" else "legacy"} if MCP_MAJOR >= 2 else {}
        async with mcp_hooks.connect(url, deadline=20.0, **mode) as session:
            yield session


@pytest.mark.parametrize("how", HOW)
@REFUSALS
async def test_a_write_refused_before_dispatch_is_sent_again_on_a_new_session_and_runs_once(
    server: Any, how: str, code: int, message: str, data: Any
) -> None:
    async with opened(how, server.url) as session:
        text(await session.call_tool("echo", {"text": "warm"}))
        server.reject_calls(code, message, data)
        answer = await asyncio.wait_for(session.call_tool("incr", {"key": "w"}), 20)
        assert text(answer) == "1"
        assert server.health()["rejected_calls"] == 1
        assert server.executions("incr") == 1
        assert server.counter("w") == 1
        if how == "connect":
            assert session.reconnects == 1  # a new session negotiated again
        # and the session goes on
        assert text(await asyncio.wait_for(session.call_tool("echo", {"text": "next"}), 20)).startswith("next")


@pytest.mark.parametrize("how", ["healed", "connect"])
async def test_a_refusal_that_persists_is_given_back_not_looped(server: Any, how: str) -> None:
    """Refused every time, before running: given up after max_reconnects, in words that carry the server's."""
    async with opened(how, server.url) as session:
        text(await session.call_tool("echo", {"text": "warm"}))
        server.reject_calls(-32022, "Unsupported protocol version", {"supported": []}, count=100)
        with pytest.raises(Exception) as caught:
            await asyncio.wait_for(session.call_tool("incr", {}), 30)
        assert "Unsupported protocol version" in str(caught.value) or "-32022" in repr(caught.value)
        refused = server.health()["rejected_calls"]
        assert 1 < refused <= 4, refused  # bounded by max_reconnects (3): sent at most 4 times
        assert server.executions("incr") == 0
        if how == "healed":
            assert outcome(caught.value) == ("not-run", "max-reconnects"), repr(caught.value)
