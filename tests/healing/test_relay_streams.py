"""A relay built by code that heals by its own means (as ``connect()`` will): its own bounds, not
``instrument("mcp")``'s, and its own owner in every ``ToolCall`` the hooks see. With ``instrument("mcp")``
off, a raw SDK session over the kit's real server (mcp 1.x and 2.x)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from typing import Any

import mcp
import pytest
from healing_helpers import Events, error_text, outcome, text
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from mcp_hooks.healing import messages, settings
from mcp_hooks.healing.relay import Relay
from mcp_hooks.healing.streams import relay_streams, server_key
from mcp_hooks.healing.watch import watch_client
from mcp_hooks.sdk import MCP_MAJOR

pytestmark = pytest.mark.timeout(60)


@contextlib.asynccontextmanager
async def relayed(url: str, handler: Any = None, **relay_options: Any) -> AsyncIterator[tuple[Any, Relay]]:
    async with create_mcp_http_client() as client:
        watch_client(client)
        relay = Relay(
            lambda: streamable_http_client(url, http_client=client),
            kind="http",
            server=server_key("http", url),
            **relay_options,
        )
        async with (
            relay_streams(relay, with_session_id=MCP_MAJOR < 2) as streams,
            mcp.ClientSession(streams[0], streams[1], message_handler=handler) as session,
        ):
            await session.initialize()
            yield session, relay


async def test_a_relay_keeps_its_own_bounds_and_owner(server: Any, events: Events) -> None:
    owner = object()
    bounds = settings.HealSettings(deadline=1.0, breaker=False)
    async with relayed(server.url, settings=bounds, owner=owner) as (session, relay):
        assert relay.deadline == 1.0 and relay.breaker_after is None
        text(await session.call_tool("echo", {"text": "warm"}))
        server.expire_sessions()
        assert text(await asyncio.wait_for(session.call_tool("echo", {"text": "healed"}), 20)).startswith("healed")
        assert relay.rebuilds == 1
        server.kill()
        with pytest.raises(Exception) as caught:
            await asyncio.wait_for(session.call_tool("echo", {"text": "down"}), 10)
        assert "could not rebuild the session within 1 s" in error_text(caught.value), error_text(caught.value)
        # (sent on a connection the kill cut, it may have reached the server: the outcome may be uncertain)
        assert (outcome(caught.value) or ("", ""))[1] == "unreachable", repr(caught.value)
    assert events.reconnects and all(call.owner is owner for call in events.reconnects), events.reconnects
    assert events.errors and all(call.owner is owner for call, _ in events.errors)


async def test_without_bounds_a_relay_takes_instruments(server: Any) -> None:
    async with relayed(server.url) as (_, relay):
        assert relay.settings == settings.current() and relay.owner is relay


async def test_a_relay_told_not_to_heal_in_the_background_rebuilds_for_the_next_request(
    server: Any, events: Events
) -> None:
    """``background=False`` (``connect(heal=False)``): a restart with no request out is left alone until the
    next request, which then leads one rebuild, reported once as the relay's own, and is answered."""
    async with relayed(server.url, settings=settings.HealSettings(background=False)) as (session, relay):
        text(await session.call_tool("echo", {"text": "warm"}))
        await asyncio.to_thread(server.restart, signal.SIGKILL)
        await asyncio.sleep(1.0)  # a rebuild in the background takes about 0.1 s against the restarted server
        assert relay.rebuilds == 0 and events.reconnects == [], events
        assert text(await asyncio.wait_for(session.call_tool("echo", {"text": "b"}), 20)).startswith("b")
        assert relay.rebuilds == 1
    assert [call.tool for call in events.reconnects] == [None]
    assert events.recovered == events.reconnects and events.giveups == []


async def test_a_fault_of_the_relay_on_a_message_passes_the_message_on_as_it_came(
    server: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The relay's logic runs in the session's own reading task: an exception there is logged and the
    message handed to the session as it came; the session's reading goes on."""
    async with relayed(server.url) as (session, relay):
        text(await session.call_tool("echo", {"text": "warm"}))
        relays_messages = relay._from_link
        faults = []

        def faulty(link: Any, item: Any) -> Any:
            if not faults:
                faults.append(item)
                raise RuntimeError("a fault of the relay's")
            return relays_messages(link, item)

        monkeypatch.setattr(relay, "_from_link", faulty)
        with caplog.at_level("ERROR", logger="mcp_hooks.healing"):
            answer = text(await asyncio.wait_for(session.call_tool("echo", {"text": "through"}), 10))
        assert answer.startswith("through") and len(faults) == 1
        logged = [r for r in caplog.records if "failed on a message" in r.getMessage()]
        assert len(logged) == 1 and logged[0].exc_info is not None
        assert str(logged[0].exc_info[1]) == "a fault of the relay's"
        assert text(await asyncio.wait_for(session.call_tool("echo", {"text": "after"}), 10)).startswith("after")


async def test_a_message_of_the_relay_reaches_a_session_that_sends_nothing(server: Any) -> None:
    """The session's reader waits on the live link with nothing cutting that wait short: what the relay has
    for the session meanwhile (as ``tools/list_changed`` after a rebuild) is fetched by a ping of the
    relay's own, whose answer ends the wait. The session itself sends nothing."""
    heard: list[Any] = []
    got = asyncio.Event()

    async def handler(message: Any) -> None:
        root = getattr(message, "root", message)
        if getattr(root, "method", None) == "notifications/tools/list_changed":
            heard.append(root)
            got.set()

    async with relayed(server.url, handler) as (session, relay):
        text(await session.call_tool("echo", {"text": "warm"}))
        await asyncio.sleep(0.2)  # the reader is waiting on the link
        link = relay._link
        assert link is not None and relay._reading is link and not link.poked
        relay._to_session(messages.notification("notifications/tools/list_changed"))
        await asyncio.wait_for(got.wait(), 10)
        assert len(heard) == 1
        for _ in range(50):  # the ping's answer came back too; the link is free for another one
            if not link.poked:
                break
            await asyncio.sleep(0.1)
        assert not link.poked and not link.waiters
        assert text(await asyncio.wait_for(session.call_tool("echo", {"text": "after"}), 10)).startswith("after")
