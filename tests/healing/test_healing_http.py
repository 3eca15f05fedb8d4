"""A raw SDK ``ClientSession`` over streamable HTTP, healed beneath itself by ``instrument("mcp")``,
against the kit's real server restarted, expired and killed under it (mcp 1.x and 2.x)."""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

import pytest
from healing_helpers import MCP_MAJOR, Events, down_for_a_deadline, error_text, outcome, raw_session, text, wait_for

from mcp_hooks.testing import STALE_STYLES

pytestmark = [pytest.mark.usefixtures("healing"), pytest.mark.timeout(90)]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
async def test_the_same_session_answers_after_a_restart(server: Any, events: Events, sig: int) -> None:
    async with raw_session(server.url) as session:
        first = text(await session.call_tool("echo", {"text": "before"}))
        await asyncio.to_thread(server.restart, sig)
        after = text(await asyncio.wait_for(session.call_tool("echo", {"text": "after"}), 20))
        assert after.startswith("after (pid ")
        assert after != first.replace("before", "after"), "answered by the old process?"
        assert f"(pid {server.pid})" in after
        # and the session keeps working
        assert text(await session.call_tool("echo", {"text": "again"})).startswith("again")
    assert len(events.reconnects) == 1, events.reconnects
    assert events.giveups == []


async def test_external_delete_of_the_session(server: Any, events: Events) -> None:
    async with raw_session(server.url) as session:
        text(await session.call_tool("echo", {"text": "x"}))
        assert server.expire_sessions() >= 1
        assert text(await asyncio.wait_for(session.call_tool("echo", {"text": "y"}), 20)).startswith("y")
    assert len(events.reconnects) == 1
    (call,) = events.reconnects
    assert call.tool == "echo" and call.server == server.url and call.framework == "mcp"


@pytest.mark.parametrize("style", STALE_STYLES)
async def test_every_foreign_stale_style(mcp_fault_server_factory: Any, events: Events, style: str) -> None:
    server = mcp_fault_server_factory(legacy_only=True, stale_style=style)
    async with raw_session(server.url) as session:
        text(await session.call_tool("echo", {"text": "x"}))
        assert server.expire_sessions() >= 1
        assert text(await asyncio.wait_for(session.call_tool("echo", {"text": "y"}), 20)).startswith("y")
    assert len(events.reconnects) == 1


async def test_idle_expiry_by_a_gateway_ttl(mcp_fault_server_factory: Any, events: Events) -> None:
    server = mcp_fault_server_factory(legacy_only=True, post_idle_ttl=0.5)
    async with raw_session(server.url) as session:
        text(await session.call_tool("echo", {"text": "x"}))
        await asyncio.sleep(1.2)
        assert text(await asyncio.wait_for(session.call_tool("echo", {"text": "y"}), 20)).startswith("y")
    assert len(events.reconnects) == 1


async def test_a_rebuild_begun_on_its_own_reports_how_it_ended(server: Any, events: Events) -> None:
    """No request was out when the server restarted: the layer rebuilds on its own (the lost GET stream
    tells it), and the hooks hear that rebuild once, begun and recovered, with a ToolCall of no tool."""
    async with raw_session(server.url) as session:
        text(await session.call_tool("echo", {"text": "a"}))
        await asyncio.to_thread(server.restart, signal.SIGKILL)
        assert await wait_for(lambda: bool(events.recovered), 20), events
        assert [(c.tool, c.server) for c in events.reconnects] == [(None, server.url)]
        assert events.recovered == events.reconnects
        assert [error for _, error, _ in events.rebuilt] == [None]
        text(await session.call_tool("echo", {"text": "b"}))  # pays nothing, reports nothing
    assert len(events.reconnects) == 1 and len(events.recovered) == 1
    assert events.giveups == []


async def test_a_rebuild_begun_on_its_own_and_never_done_reports_it_given_up(server: Any, events: Events) -> None:
    """The server dies with no request out and stays down: the rebuild the layer began is reported given
    up once, when the session closes (it was still trying), and nothing is reported recovered."""
    async with raw_session(server.url) as session:
        text(await session.call_tool("echo", {"text": "a"}))
        await asyncio.to_thread(server.stop, signal.SIGKILL)
        assert await wait_for(lambda: bool(events.reconnects), 20), events
        assert events.giveups == []  # still trying
    assert [(c.tool, c.server) for c, _ in events.giveups] == [(None, server.url)]
    assert events.giveups[0][0] == events.reconnects[0]
    assert events.recovered == []


async def test_fifty_concurrent_calls_across_a_restart_one_rebuild(server: Any, events: Events) -> None:
    ran = server.executions_from_now()
    async with raw_session(server.url) as session:
        text(await session.call_tool("echo", {"text": "warm"}))
        await asyncio.to_thread(server.restart, signal.SIGKILL)
        calls = [session.call_tool("echo", {"text": f"n{i}"}) for i in range(50)]
        results = await asyncio.wait_for(asyncio.gather(*calls), 30)
    assert [text(r).split(" ", 1)[0] for r in results] == [f"n{i}" for i in range(50)]
    assert len(events.reconnects) == 1, [c.tool for c in events.reconnects]
    assert ran("echo") == 51


async def test_a_read_only_call_lost_in_flight_is_replayed(server: Any, events: Events) -> None:
    ran = server.executions_from_now()
    async with raw_session(server.url) as session:
        text(await session.call_tool("echo", {"text": "warm"}))
        server.kill_during_next_call("echo")
        reviver = server.revive_when_dead()
        result = await asyncio.wait_for(session.call_tool("echo", {"text": "lost"}), 20)
        reviver.join(10)
        assert text(result).startswith("lost (pid ")
    assert ran("echo") == 3  # warm, the lost run, the replay
    assert len(events.reconnects) == 1
    assert [c.tool for c in events.recovered] == ["echo"]


async def test_a_write_lost_in_flight_runs_once_and_says_uncertain(server: Any, events: Events) -> None:
    ran = server.executions_from_now()
    async with raw_session(server.url) as session:
        text(await session.call_tool("echo", {"text": "warm"}))
        server.kill_during_next_call("incr")
        reviver = server.revive_when_dead()
        with pytest.raises(Exception) as caught:
            await asyncio.wait_for(session.call_tool("incr", {"key": "lost-write"}), 20)
        reviver.join(10)
        message = error_text(caught.value)
        assert message.startswith("outcome uncertain"), message
        assert "'incr'" in message and "check whether the action took effect" in message
        assert outcome(caught.value) == ("uncertain", "in-flight")
        assert ran("incr") == 1
        # the session was healed for the next call
        assert text(await asyncio.wait_for(session.call_tool("echo", {"text": "next"}), 20)).startswith("next")
    assert ran("incr") == 1
    assert [c.tool for c, _ in events.giveups] == ["incr"]


async def test_errors_that_are_not_session_loss_pass_through(server: Any, events: Events) -> None:
    async with raw_session(server.url) as session:
        result = await session.call_tool("fail", {"message": "boom"})
        assert getattr(result, "isError", None) or getattr(result, "is_error", None)
        with pytest.raises(Exception) as caught:
            await session.get_prompt("no-such-prompt")
        assert "outcome uncertain" not in error_text(caught.value)
        assert text(await session.call_tool("echo", {"text": "still"})).startswith("still")
    assert events.reconnects == [] and events.errors == []


async def test_a_server_down_longer_than_the_deadline_answers_with_an_error(
    server: Any, events: Events, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mcp_hooks.healing import breaker, relay

    monkeypatch.setattr(relay, "HEAL_DEADLINE", 2.0)
    async with raw_session(server.url) as session:
        await down_for_a_deadline(server, session, within=15)
        server.start()
        # the circuit breaker opened when the rebuild was given up: its first probe finds the server back
        await asyncio.sleep(breaker.BREAKER_PROBE_INITIAL + 0.2)
        assert text(await asyncio.wait_for(session.call_tool("echo", {"text": "up"}), 20)).startswith("up")


@pytest.mark.parametrize("fault", ["drop_next_handshake_answer", "kill_during_next_handshake"])
async def test_a_rebuild_whose_handshake_answer_is_lost_is_retried_at_once(
    server: Any, events: Events, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    """The rebuild's ``initialize`` is accepted and its answer never comes: the event stream ends cleanly
    with no event (a server shutting down gracefully) or the server dies answering it. The rebuild does
    not wait for the lost answer (10 s), it opens again at once: the call answers within a 6 s deadline."""
    from mcp_hooks.healing import relay

    monkeypatch.setattr(relay, "HEAL_DEADLINE", 6.0)
    async with raw_session(server.url) as session:
        text(await session.call_tool("echo", {"text": "warm"}))
        getattr(server, fault)()
        server.expire_sessions()
        if fault == "kill_during_next_handshake":

            def bring_back() -> None:
                server.wait_exit(timeout=20.0)
                server.start()

            back = asyncio.ensure_future(asyncio.to_thread(bring_back))
        try:
            answer = await asyncio.wait_for(session.call_tool("echo", {"text": "after"}), 20)
        finally:
            if fault == "kill_during_next_handshake":
                await asyncio.wait_for(back, 25.0)
        assert text(answer).startswith("after")
        armed = {"drop_next_handshake_answer": "drop_next_handshake_answer"}.get(fault, "kill_next_handshake")
        assert armed not in server.controls(), "the armed fault was never used"
    assert len(events.reconnects) == 1, events.reconnects
    assert events.giveups == []


@pytest.mark.skipif(MCP_MAJOR < 2, reason="mcp.Client is mcp 2.x")
@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_mcp2_client_heals_in_every_mode(server: Any, events: Events, mode: str) -> None:
    import mcp

    async with mcp.Client(server.url, mode=mode) as client:  # type: ignore[attr-defined]
        text(await client.call_tool("echo", {"text": "x"}))
        await asyncio.to_thread(server.restart, signal.SIGKILL)
        assert text(await asyncio.wait_for(client.call_tool("echo", {"text": "y"}), 20)).startswith("y")
    assert len(events.reconnects) == 1


@pytest.mark.skipif(MCP_MAJOR < 2, reason="the session-less protocol is mcp 2.x")
async def test_session_less_protocol_server_killed_mid_call(mcp_fault_server_factory: Any, events: Events) -> None:
    import mcp

    server = mcp_fault_server_factory()  # negotiates 2026-07-28: no session to lose
    ran = server.executions_from_now()
    async with mcp.Client(server.url) as client:  # type: ignore[attr-defined]
        text(await client.call_tool("echo", {"text": "x"}))
        server.kill_during_next_call("echo")
        reviver = server.revive_when_dead()
        result = await asyncio.wait_for(client.call_tool("echo", {"text": "lost"}), 20)
        reviver.join(10)
        assert text(result).startswith("lost")
        assert text(await client.call_tool("echo", {"text": "next"})).startswith("next")
    assert ran("echo") == 4
    assert len(events.reconnects) == 1


async def test_background_heal_is_seen_by_the_hooks(server: Any, events: Events) -> None:
    async with raw_session(server.url) as session:
        text(await session.call_tool("echo", {"text": "x"}))
        await asyncio.to_thread(server.restart, signal.SIGKILL)
        if MCP_MAJOR < 2:
            # mcp 1.x holds a standing GET stream: its end is noticed and healed before any call.
            assert await wait_for(lambda: len(events.reconnects) == 1, 15)
            assert events.reconnects[0].tool is None and events.reconnects[0].server == server.url
        assert text(await asyncio.wait_for(session.call_tool("echo", {"text": "y"}), 20)).startswith("y")
    assert len(events.reconnects) == 1


@pytest.mark.skipif(MCP_MAJOR >= 2, reason="streamablehttp_client is mcp 1.x")
@pytest.mark.filterwarnings("ignore:Use `streamable_http_client` instead:DeprecationWarning")
async def test_mcp1_deprecated_streamablehttp_client_is_healed(server: Any, events: Events) -> None:
    import mcp
    from mcp.client.streamable_http import streamablehttp_client  # type: ignore[attr-defined]

    async with (
        streamablehttp_client(server.url, headers={"x-test": "1"}) as streams,
        mcp.ClientSession(streams[0], streams[1]) as session,
    ):
        await session.initialize()
        text(await session.call_tool("echo", {"text": "x"}))
        await asyncio.to_thread(server.restart, signal.SIGKILL)
        assert text(await asyncio.wait_for(session.call_tool("echo", {"text": "y"}), 20)).startswith("y")
        assert streams[2]() is not None  # the current session id
    assert len(events.reconnects) == 1


async def test_a_session_opened_while_the_server_is_down_opens_once_it_is_back(server: Any) -> None:
    """The server is down when the session opens: its ``initialize`` waits (within the deadline) and is
    sent once the server is back, once: the relay does not also send a handshake of its own."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    answered: list[str] = []

    async def seen(response: Any) -> None:
        if response.request.method == "POST":
            answered.append(json.loads(response.request.content).get("method") or "answer")

    server.stop()
    async with (
        create_mcp_http_client() as client,
        streamable_http_client(server.url, http_client=client) as streams,
        ClientSession(streams[0], streams[1]) as session,
    ):
        client.event_hooks = {"request": [], "response": [seen]}
        opening = asyncio.ensure_future(session.initialize())
        await asyncio.sleep(1.0)
        assert not opening.done(), "initialize answered while the server was down?"
        await asyncio.to_thread(server.start)
        await asyncio.wait_for(opening, 20)
        assert text(await asyncio.wait_for(session.call_tool("echo", {"text": "up"}), 20)).startswith("up")
    assert answered.count("initialize") == 1, answered
