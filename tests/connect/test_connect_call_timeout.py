"""``connect(call_timeout=...)``: a tool call that stays silent (no answer, no progress notification) that
long is given up with ``CallTimeout``; every progress notification starts the count again, so a slow tool
that reports progress is never cut short. A timeout is not session loss: the session is kept, nothing is
sent again, the server is not taken for dead. Real fault server (its ``slow`` tool reports progress every
``progress_every`` seconds when asked), under both SDK majors and, on mcp 2.x, both protocol eras."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from connect_helpers import MCP_MAJOR, SESSIONS, value

import mcp_hooks
from mcp_hooks import CallTimeout, hookimpl

pytestmark = pytest.mark.timeout(90)

#: mcp 2.x: the legacy (session) protocol and the session-less 2026-07-28 one (the kit speaks both)
ERAS = [pytest.param(SESSIONS, id="sessions")]
if MCP_MAJOR >= 2:
    ERAS.append(pytest.param({"mode": "auto"}, id="session-less"))


@pytest.mark.parametrize("era", ERAS)
async def test_a_slow_tool_that_reports_progress_outlives_a_short_timeout(server: Any, era: dict[str, Any]) -> None:
    heard: list[tuple[float, float | None]] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        heard.append((done, total))

    async with mcp_hooks.connect(server.url, call_timeout=0.6, **era) as s:
        result = await asyncio.wait_for(
            s.call_tool("slow", {"seconds": 2.0, "progress_every": 0.2}, progress_callback=progress), 20
        )
        assert value(result) == "slept 2.0 s"
        assert len(heard) >= 5, heard  # the user's own callback still hears every notification
        assert heard[-1] == (2.0, 2.0)
        assert s.reconnects == 0
    assert server.executions("slow") == 1


@pytest.mark.parametrize("era", ERAS)
async def test_a_silent_tool_is_given_up_and_the_session_is_kept(server: Any, era: dict[str, Any]) -> None:
    async with mcp_hooks.connect(server.url, call_timeout=0.5, **era) as s:
        await s.call_tool("echo", {"text": "warm"})
        session_id = s.session_id
        with pytest.raises(CallTimeout) as caught:
            await asyncio.wait_for(s.call_tool("slow", {"seconds": 5.0}), 20)
        error = caught.value
        assert isinstance(error, TimeoutError)
        assert (error.tool, error.seconds, error.server) == ("slow", 0.5, server.url)
        assert error.outcome_uncertain is False  # ``slow`` is read-only: safe to try again
        assert "sent no answer and no progress for 0.5 s" in str(error) and "safe to try again" in str(error)
        # not session loss, not a dead server: the same session answers the next call, nothing was resent
        assert value(await asyncio.wait_for(s.call_tool("echo", {"text": "after"}), 20)) == "after"
        assert (s.session_id, s.reconnects) == (session_id, 0)
    assert server.executions("slow") == 1


@pytest.mark.parametrize("era", ERAS)
async def test_the_server_is_told_that_a_call_given_up_is_no_longer_awaited(server: Any, era: dict[str, Any]) -> None:
    """``notifications/cancelled`` for the silent call (sent by mcp-hooks under mcp 1.x, by the SDK under
    2.x), so the server stops the tool instead of running it for nobody."""
    async with mcp_hooks.connect(server.url, call_timeout=0.5, **era) as s:
        await s.call_tool("echo", {"text": "warm"})
        with pytest.raises(CallTimeout):
            await asyncio.wait_for(s.call_tool("slow", {"seconds": 30.0}), 20)
        for _ in range(100):  # bounded: 5 s for the notification to reach the server
            if server.health()["cancelled"]:
                break
            await asyncio.sleep(0.05)
        assert server.health()["cancelled"] == 1
        assert value(await asyncio.wait_for(s.call_tool("echo", {"text": "after"}), 20)) == "after"


class _NothingIsSafe:
    @hookimpl(tryfirst=True)
    def is_replay_safe(self, call: Any, error: BaseException) -> bool:
        return False


async def test_a_timeout_of_a_tool_not_safe_to_repeat_says_the_outcome_is_uncertain(server: Any) -> None:
    pm = mcp_hooks.build_plugin_manager(entry_points=False)
    pm.register(_NothingIsSafe(), name="nothing-is-safe")
    async with mcp_hooks.connect(server.url, call_timeout=0.5, plugin_manager=pm, **SESSIONS) as s:
        with pytest.raises(CallTimeout) as caught:
            await asyncio.wait_for(s.call_tool("slow", {"seconds": 3.0}), 20)
        assert caught.value.outcome_uncertain is True
        assert "Outcome uncertain: it may still be running or have run" in str(caught.value)
        assert s.reconnects == 0
    assert server.executions("slow") == 1


async def test_the_limit_can_be_given_per_call(server: Any) -> None:
    async with mcp_hooks.connect(server.url, **SESSIONS) as s:  # no limit for the session
        assert value(await asyncio.wait_for(s.call_tool("slow", {"seconds": 1.0}), 20)) == "slept 1.0 s"
        with pytest.raises(CallTimeout):
            await asyncio.wait_for(s.call_tool("slow", {"seconds": 5.0}, call_timeout=0.4), 20)
        result = await asyncio.wait_for(
            s.call_tool("slow", {"seconds": 1.5, "progress_every": 0.1}, call_timeout=0.4), 20
        )
        assert value(result) == "slept 1.5 s"
        with pytest.raises(ValueError, match="call_timeout"):
            await s.call_tool("echo", {"text": "x"}, call_timeout=0)
    assert server.executions("slow") == 3


@pytest.mark.parametrize("bad", [0, -1.0, True, "5"])
async def test_a_wrong_call_timeout_is_refused_naming_the_option(server: Any, bad: Any) -> None:
    with pytest.raises(ValueError, match="call_timeout"):
        async with mcp_hooks.connect(server.url, call_timeout=bad):
            pass
