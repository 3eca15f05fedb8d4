"""``connect()``'s circuit breaker: once no session could be opened for ``breaker_after`` seconds, calls
fail at once with ``CircuitOpen`` (naming the server and since when) instead of waiting their deadline,
while the background heal keeps trying; it closes when the server answers again. Real fault server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from connect_helpers import SESSIONS, value

import mcp_hooks
from mcp_hooks import CircuitOpen, hookimpl

pytestmark = pytest.mark.timeout(90)


async def test_calls_fail_fast_while_the_server_stays_down_and_recover_when_it_is_back(server: Any) -> None:
    async with mcp_hooks.connect(server.url, breaker_after=1.0, deadline=20.0, **SESSIONS) as s:
        assert value(await s.call_tool("echo", {"text": "a"})) == "a"
        server.kill()
        with pytest.raises(CircuitOpen) as first:
            await asyncio.wait_for(s.call_tool("echo", {"text": "down"}), 15)
        assert f"MCP server {server.url} unreachable since" in str(first.value)
        answers = await asyncio.wait_for(
            asyncio.gather(*(s.call_tool("echo", {"text": str(i)}) for i in range(50)), return_exceptions=True), 5
        )
        assert all(isinstance(a, CircuitOpen) for a in answers), {type(a).__name__ for a in answers}
        assert server.executions("echo") == 1  # nothing ran while it was down
        reconnects = s.reconnects
        server.start()
        for _ in range(100):  # the background heal tries every 2 s at most: bounded wait
            if s.reconnects > reconnects:
                break
            await asyncio.sleep(0.2)
        assert s.reconnects == reconnects + 1, "the background heal did not reach the server again"
        assert value(await asyncio.wait_for(s.call_tool("echo", {"text": "back"}), 20)) == "back"


async def test_without_the_breaker_a_call_waits_its_deadline(server: Any) -> None:
    async with mcp_hooks.connect(server.url, breaker_after=None, deadline=3.0, **SESSIONS) as s:
        await s.call_tool("echo", {"text": "a"})
        server.kill()
        with pytest.raises(Exception) as caught:
            await asyncio.wait_for(s.call_tool("echo", {"text": "down"}), 15)
        assert not isinstance(caught.value, CircuitOpen)


@pytest.mark.parametrize("bad", [0, -1.0, True, "15"])
async def test_a_wrong_breaker_after_is_refused_naming_the_option(server: Any, bad: Any) -> None:
    with pytest.raises(ValueError, match="breaker_after"):
        async with mcp_hooks.connect(server.url, breaker_after=bad):
            pass


class _NeverOpen:
    """A plugin vetoing the breaker for one server (the built-in would open it)."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.asked: list[tuple[float, float | None]] = []

    @hookimpl
    def open_circuit(self, call: Any, down_for: float, threshold: float | None) -> bool | None:
        if call.server != self.server:
            return None
        self.asked.append((down_for, threshold))
        return False


async def test_a_plugin_can_veto_the_breaker(server: Any) -> None:
    plugin = _NeverOpen(server.url)
    pm = mcp_hooks.plugin_manager()
    pm.register(plugin, name="test-never-open")
    try:
        async with mcp_hooks.connect(server.url, breaker_after=0.5, deadline=3.0, **SESSIONS) as s:
            await s.call_tool("echo", {"text": "a"})
            server.kill()
            for _ in range(2):  # the second call comes long after breaker_after: still not failed fast
                with pytest.raises(Exception) as caught:
                    await asyncio.wait_for(s.call_tool("echo", {"text": "down"}), 15)
                assert not isinstance(caught.value, CircuitOpen), caught.value
    finally:
        pm.unregister(name="test-never-open")
    assert plugin.asked, "the open_circuit hook was never asked"
    assert max(down for down, _ in plugin.asked) >= 0.5
    assert {threshold for _, threshold in plugin.asked} == {0.5}
