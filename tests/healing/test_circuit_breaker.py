"""The healing layer's circuit breaker: once a rebuild has failed for its whole deadline (the server is
down), calls fail at once with one clear error naming the server, until one probe (a single rebuild
attempt, however many calls arrive) finds it back. Session loss alone never opens it. mcp 1.x and 2.x,
against the kit's real server."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from healing_helpers import Events, down_for_a_deadline, error_text, raw_session, text, wait_for

import mcp_hooks
from mcp_hooks import hookimpl
from mcp_hooks.healing import breaker, relay

pytestmark = [pytest.mark.usefixtures("healing"), pytest.mark.timeout(90)]


@pytest.fixture
def short_outages(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """A 1 s rebuild deadline and 0.5 s first probe; the links the relay opened, counted."""
    monkeypatch.setattr(relay, "HEAL_DEADLINE", 1.0)
    monkeypatch.setattr(breaker, "BREAKER_PROBE_INITIAL", 0.5)
    opened: list[Any] = []
    original = relay._Link

    class CountedLink(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            opened.append(self)

    monkeypatch.setattr(relay, "_Link", CountedLink)
    return opened


async def test_a_down_server_fails_fast_probes_once_and_closes(
    server: Any, events: Events, short_outages: list[Any]
) -> None:
    async with raw_session(server.url) as session:
        await down_for_a_deadline(server, session)  # the first call opens the breaker
        # while open: 100 calls fail at once, with what a model can act on, and nothing is attempted
        links = len(short_outages)
        answers = await asyncio.wait_for(
            asyncio.gather(*(session.call_tool("echo", {"text": str(i)}) for i in range(100)), return_exceptions=True),
            20,
        )
        assert all(isinstance(a, Exception) for a in answers)
        message = error_text(answers[0])  # type: ignore[arg-type]
        assert f"MCP server {server.url} unreachable since" in message and "next probe in" in message, message
        assert len(short_outages) == links, "a connection was attempted while the breaker was open"
        # a probe was due meanwhile: one rebuild attempt, in the background, however many calls arrive
        await asyncio.sleep(0.6)
        answers = await asyncio.wait_for(
            asyncio.gather(*(session.call_tool("echo", {"text": str(i)}) for i in range(100)), return_exceptions=True),
            20,
        )
        assert all(isinstance(a, Exception) for a in answers)
        assert len(short_outages) == links + 1, f"{len(short_outages) - links} attempts for one probe"
        # the server is back: the next probe finds it and closes the breaker
        server.start()
        await asyncio.sleep(1.1)
        assert text(await asyncio.wait_for(session.call_tool("echo", {"text": "back"}), 20)).startswith("back")
        assert text(await asyncio.wait_for(session.call_tool("echo", {"text": "again"}), 20)).startswith("again")


async def test_the_server_back_is_found_by_a_probe_in_the_background(
    server: Any, short_outages: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Once the breaker is open the layer probes on its own: the server found back closes it before any
    request arrives, so the first request is answered, neither failed fast nor kept waiting for a probe."""
    caplog.set_level(logging.INFO, logger="mcp_hooks.healing")
    async with raw_session(server.url) as session:
        await down_for_a_deadline(server, session)
        links = len(short_outages)
        server.start()
        assert await wait_for(lambda: "circuit breaker closed" in caplog.text, 15), "no probe found the server back"
        assert len(short_outages) > links  # attempted with no request waiting
        assert text(await asyncio.wait_for(session.call_tool("echo", {"text": "back"}), 20)).startswith("back")


async def test_session_loss_alone_never_opens_the_breaker(
    server: Any, short_outages: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a restart shorter than the deadline (the kit's server takes about 1 s to start on a slow machine)
    monkeypatch.setattr(relay, "HEAL_DEADLINE", 10.0)
    async with raw_session(server.url) as session:
        for i in range(3):
            text(await session.call_tool("echo", {"text": "warm"}))
            server.expire_sessions()
            assert text(await asyncio.wait_for(session.call_tool("echo", {"text": f"after {i}"}), 20)).startswith(
                "after"
            )
        await asyncio.to_thread(server.restart)
        assert text(await asyncio.wait_for(session.call_tool("echo", {"text": "restarted"}), 20)).startswith(
            "restarted"
        )


class _NeverOpen:
    def __init__(self) -> None:
        self.asked: list[tuple[str, float, float | None]] = []

    @hookimpl
    def open_circuit(self, call: Any, down_for: float, threshold: float | None) -> bool:
        self.asked.append((call.server, down_for, threshold))
        return False


async def test_a_plugin_can_veto_the_breaker(server: Any, short_outages: list[Any]) -> None:
    """With the breaker vetoed, a call to the down server waits for a rebuild again (one more connection
    attempted) instead of failing at once; the hook was asked with the server and the rebuild deadline."""
    plugin = _NeverOpen()
    pm = mcp_hooks.plugin_manager()
    pm.register(plugin, name="test-never-open")
    try:
        async with raw_session(server.url) as session:
            text(await session.call_tool("echo", {"text": "warm"}))
            server.kill()
            with pytest.raises(Exception) as first:
                await asyncio.wait_for(session.call_tool("echo", {"text": "down"}), 20)
            assert "could not rebuild the session" in error_text(first.value), error_text(first.value)
            links = len(short_outages)
            with pytest.raises(Exception) as second:
                await asyncio.wait_for(session.call_tool("echo", {"text": "still down"}), 20)
            assert "unreachable since" not in error_text(second.value), error_text(second.value)
            assert len(short_outages) > links, "no rebuild was attempted for the second call"
    finally:
        pm.unregister(name="test-never-open")
    assert plugin.asked and plugin.asked[0][0] == server.url and plugin.asked[0][2] == 1.0
    assert plugin.asked[0][1] > 1.0
