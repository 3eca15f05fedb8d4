"""``connect()`` reports every rebuild to the hooks once, whoever leads it: a failed call (the engine
reports it with that call's ``ToolCall``) or the connection itself (background healing: ``tool`` is
``None``), and a call failing while a rebuild runs joins it instead of reporting one of its own."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
from connect_helpers import SESSIONS, value

import mcp_hooks
from mcp_hooks.classify import classify


class Recorder:
    """Every observer hook, in order: ``(hook, call, error)``."""

    def __init__(self) -> None:
        self.events: list[tuple[str, mcp_hooks.ToolCall, BaseException | None]] = []
        self.rebuilt: list[tuple[mcp_hooks.ToolCall, BaseException | None]] = []  # on_rebuilt, apart

    @mcp_hooks.hookimpl
    def on_rebuilt(self, call: mcp_hooks.ToolCall, error: BaseException | None, seconds: float) -> None:
        self.rebuilt.append((call, error))

    @mcp_hooks.hookimpl
    def on_tool_error(self, call: mcp_hooks.ToolCall, error: BaseException) -> None:
        self.events.append(("on_tool_error", call, error))

    @mcp_hooks.hookimpl
    def on_reconnect(self, call: mcp_hooks.ToolCall, error: BaseException) -> None:
        self.events.append(("on_reconnect", call, error))

    @mcp_hooks.hookimpl
    def on_recovered(self, call: mcp_hooks.ToolCall) -> None:
        self.events.append(("on_recovered", call, None))

    @mcp_hooks.hookimpl
    def on_giveup(self, call: mcp_hooks.ToolCall, error: BaseException) -> None:
        self.events.append(("on_giveup", call, error))

    def of(self, hook: str) -> list[tuple[mcp_hooks.ToolCall, BaseException | None]]:
        return [(call, error) for name, call, error in self.events if name == hook]

    def own(self, hook: str) -> list[tuple[mcp_hooks.ToolCall, BaseException | None]]:
        """The events of the rebuilds the connection led itself (no tool)."""
        return [(call, error) for call, error in self.of(hook) if call.tool is None]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def pm(recorder: Recorder) -> Any:
    """A plugin manager of its own (the built-ins, no entry points) with the recorder registered."""
    manager = mcp_hooks.build_plugin_manager(entry_points=False)
    manager.register(recorder, name="test-hook-recorder")
    return manager


async def _until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while not condition() and time.monotonic() < end:
        await asyncio.sleep(0.05)


def _assert_reported_loss(call: mcp_hooks.ToolCall, error: BaseException | None, s: Any) -> None:
    assert call.tool is None
    assert call.server == s.server
    assert call.owner is s
    assert call.framework == "mcp"
    assert isinstance(error, ConnectionError), repr(error)
    assert classify(error).is_session_loss, repr(error)
    assert s.server in str(error)


async def test_background_heal_after_a_restart_fires_on_reconnect_once(
    server: Any, pm: Any, recorder: Recorder
) -> None:
    async with mcp_hooks.connect(server.url, plugin_manager=pm, **SESSIONS) as s:
        assert value(await s.call_tool("echo", {"text": "a"})) == "a"
        await asyncio.to_thread(server.restart, signal.SIGKILL)
        # Healed in the background before any call (bounded wait); the outcome is reported as it ends.
        await _until(lambda: s.reconnects >= 1 and bool(recorder.of("on_recovered") or recorder.of("on_giveup")))
        assert s.reconnects == 1
        reconnects = recorder.of("on_reconnect")
        assert len(reconnects) == 1, recorder.events
        _assert_reported_loss(*reconnects[0], s)
        recovered = recorder.of("on_recovered")
        assert len(recovered) == 1, recorder.events
        assert recovered[0][0] == reconnects[0][0]
        assert recovered[0][0].owner is s
        assert not recorder.of("on_giveup")
        assert [name for name, _, _ in recorder.events] == ["on_reconnect", "on_recovered"]
        # The next call pays nothing and reports nothing.
        assert value(await s.call_tool("echo", {"text": "b"})) == "b"
        assert s.reconnects == 1
        assert len(recorder.events) == 2, recorder.events


async def test_twenty_concurrent_calls_across_a_restart_one_on_reconnect(
    server: Any, pm: Any, recorder: Recorder
) -> None:
    async with mcp_hooks.connect(server.url, plugin_manager=pm, **SESSIONS) as s:
        await s.call_tool("echo", {"text": "warm"})
        server.delay("echo", 0.3)
        calls = [asyncio.create_task(s.call_tool("echo", {"text": str(i)})) for i in range(20)]
        await asyncio.sleep(0.1)  # all 20 are on the wire
        await asyncio.to_thread(server.restart, signal.SIGKILL)
        results = await asyncio.wait_for(asyncio.gather(*calls), 60)
        assert sorted(value(r) for r in results) == sorted(str(i) for i in range(20))
        assert s.reconnects == 1
        await _until(lambda: bool(recorder.of("on_recovered")))
        reconnects = recorder.of("on_reconnect")
        assert len(reconnects) == 1, [(c.tool, repr(e)) for c, e in reconnects]
        call, error = reconnects[0]
        assert call.server == s.server
        # Every failed call names the same server as the rebuild.
        assert {c.server for c, _ in recorder.of("on_tool_error")} <= {s.server}
        if call.tool is None:  # healed in the background: its own outcome, once
            _assert_reported_loss(call, error, s)
            assert len(recorder.own("on_recovered")) == 1
        assert not recorder.of("on_giveup")


async def test_a_call_finding_the_session_given_up_reports_one_rebuild(
    server: Any, pm: Any, recorder: Recorder
) -> None:
    """Without background healing, the watcher gives the link up and the next call rebuilds it before
    it fails: no failed call leads that rebuild, so it is the connection's own, reported once."""
    async with mcp_hooks.connect(server.url, heal=False, plugin_manager=pm, **SESSIONS) as s:
        await s.call_tool("echo", {"text": "a"})
        await asyncio.to_thread(server.restart, signal.SIGKILL)
        await asyncio.sleep(1.0)  # the dropped GET stream tells it
        assert s.reconnects == 0 and not recorder.of("on_reconnect")  # nothing rebuilt before a call
        assert value(await s.call_tool("echo", {"text": "b"})) == "b"
        assert s.reconnects == 1
        reconnects = recorder.of("on_reconnect")
        assert len(reconnects) == 1, recorder.events
        _assert_reported_loss(*reconnects[0], s)
        assert len(recorder.own("on_recovered")) == 1
        assert not recorder.of("on_giveup")


async def test_closing_while_healing_reports_the_rebuild_given_up(server: Any, pm: Any, recorder: Recorder) -> None:
    async with mcp_hooks.connect(server.url, plugin_manager=pm, **SESSIONS) as s:
        await s.call_tool("echo", {"text": "a"})
        await asyncio.to_thread(server.stop, signal.SIGKILL)  # and it stays down
        await _until(lambda: bool(recorder.of("on_reconnect")))
        assert len(recorder.of("on_reconnect")) == 1
        _assert_reported_loss(*recorder.of("on_reconnect")[0], s)
        assert not recorder.of("on_recovered") and not recorder.of("on_giveup")
    giveups = recorder.of("on_giveup")
    assert len(giveups) == 1, recorder.events
    call, error = giveups[0]
    assert call.tool is None and call.server == s.server
    assert error is not None
    assert not recorder.of("on_recovered")
    assert len(recorder.of("on_reconnect")) == 1


async def test_a_call_during_an_outage_joins_the_background_heal(server: Any, pm: Any, recorder: Recorder) -> None:
    async with mcp_hooks.connect(server.url, plugin_manager=pm, **SESSIONS) as s:
        await s.call_tool("echo", {"text": "a"})
        restart = asyncio.ensure_future(asyncio.to_thread(server.restart, signal.SIGKILL, 2.0))
        try:
            await asyncio.sleep(0.3)  # the server is down, healing retries it
            assert value(await asyncio.wait_for(s.call_tool("echo", {"text": "b"}), 30)) == "b"
        finally:
            await asyncio.wait_for(restart, 30)
        await _until(lambda: bool(recorder.of("on_recovered")))
        assert s.reconnects == 1
        reconnects = recorder.of("on_reconnect")
        assert len(reconnects) == 1, recorder.events
        _assert_reported_loss(*reconnects[0], s)
        assert len(recorder.own("on_recovered")) == 1
        assert not recorder.of("on_giveup")


async def test_a_call_lost_in_flight_while_healing_fails_settles_in_time(
    server: Any, pm: Any, recorder: Recorder
) -> None:
    """The server dies running a tool that may not be replayed, and stays down: the call leads the rebuild
    (reported once, with its ToolCall), is settled (outcome uncertain) well within 20 s, and healing goes on
    in the background until the session closes, which ends that rebuild (``on_rebuilt`` says why)."""
    async with mcp_hooks.connect(server.url, plugin_manager=pm, **SESSIONS) as s:
        await s.call_tool("echo", {"text": "warm"})
        server.kill_during_next_call("incr", when="after")
        started = time.monotonic()
        with pytest.raises(mcp_hooks.OutcomeUncertain):
            await asyncio.wait_for(s.call_tool("incr", {"key": "once"}), 30)
        assert time.monotonic() - started < 20
        reconnects = recorder.of("on_reconnect")
        assert len(reconnects) == 1, recorder.events
        call, error = reconnects[0]
        assert call.tool == "incr" and call.owner is s and call.server == s.server
        assert isinstance(error, ConnectionError) and s.server in str(error), repr(error)
        giveups = recorder.of("on_giveup")
        assert len(giveups) == 1 and giveups[0][0].tool == "incr", recorder.events
        assert isinstance(giveups[0][1], mcp_hooks.OutcomeUncertain)
        assert recorder.rebuilt == []  # healing goes on
    assert len(recorder.rebuilt) == 1 and recorder.rebuilt[0][1] is not None, recorder.rebuilt
    assert len(recorder.of("on_giveup")) == 1 and len(recorder.of("on_reconnect")) == 1
    assert server.executions("incr") == 1
