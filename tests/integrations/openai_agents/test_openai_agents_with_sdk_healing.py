"""The openai-agents shim and ``mcp_hooks.instrument("mcp")`` on together (what ``mcp_hooks.instrument()``
and ``mcp-hooks run`` turn on): the server's session is the shim's to heal, so one loss is rebuilt once,
by the shim, and the SDK healing beneath stays out of it (its transport is opened under ``bypass()``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import mcp_hooks_openai_agents
import pytest
from oa_support import FRAMEWORK_WARNINGS, MCP_V2, Target, _make_target, invoke, pid_in, text

import mcp_hooks
from mcp_hooks import OutcomeUncertain, ToolCall

pytestmark = [pytest.mark.timeout(90), FRAMEWORK_WARNINGS]

#: Servers whose restart loses the session (under mcp 2.x the kit's plain HTTP server is session-less).
SESSION_KINDS = ("http-legacy" if MCP_V2 else "http", "stdio")


class Reconnects:
    """Every ``on_reconnect`` event, whoever leads the rebuild (the shim or the SDK healing)."""

    def __init__(self) -> None:
        self.calls: list[ToolCall] = []

    @mcp_hooks.hookimpl
    def on_reconnect(self, call: ToolCall, error: BaseException) -> None:
        self.calls.append(call)


@pytest.fixture
def sdk_healing() -> Iterator[None]:
    """``instrument("mcp")`` on for the test (the shim is on already), off again afterwards."""
    assert mcp_hooks.instrument("mcp") == {"mcp": True}
    try:
        yield
    finally:
        mcp_hooks.uninstrument("mcp")


@pytest.fixture
def reconnects() -> Iterator[Reconnects]:
    recorder = Reconnects()
    pm = mcp_hooks.plugin_manager()
    pm.register(recorder, name="test-openai-agents-sdk-healing-reconnects")
    try:
        yield recorder
    finally:
        pm.unregister(recorder)


@pytest.fixture(params=SESSION_KINDS)
def session_target(request: pytest.FixtureRequest, mcp_fault_server_factory: Any) -> Target:
    return _make_target(request.param, mcp_fault_server_factory)


def _cause_chain(error: BaseException) -> list[BaseException]:
    chain = [error]
    while chain[-1].__cause__ is not None and len(chain) < 10:
        chain.append(chain[-1].__cause__)
    return chain


async def test_a_restart_is_rebuilt_once_by_the_shim(
    shim: Any, sdk_healing: None, reconnects: Reconnects, session_target: Target
) -> None:
    async with session_target.server() as server:
        first = text(await invoke(server, "echo", text="before"))
        session_target.restart()
        answer = text(await invoke(server, "echo", text="after"))
        assert answer.startswith("after (pid ")
        assert pid_in(answer) != pid_in(first)
        await asyncio.sleep(0.5)  # a rebuild beneath the session would have started by now
        assert text(await invoke(server, "echo", text="again")).startswith("again")
        assert mcp_hooks_openai_agents.reconnect_count(server) == 1
    assert [call.framework for call in reconnects.calls] == ["openai-agents"]


async def test_a_write_killed_in_flight_runs_once(
    shim: Any, sdk_healing: None, reconnects: Reconnects, session_target: Target
) -> None:
    srv = session_target.srv
    async with session_target.server() as server:
        await invoke(server, "echo", text="warm up")
        srv.kill_during_next_call("incr", when="after")
        back = session_target.bring_back_after_death()
        try:
            with pytest.raises(Exception) as failed:
                await invoke(server, "incr", key="k")
        finally:
            if back is not None:
                back.join(30)
        uncertain = [e for e in _cause_chain(failed.value) if isinstance(e, OutcomeUncertain)]
        assert uncertain, _cause_chain(failed.value)  # the shim's verdict, not the SDK healing's
        assert text(await invoke(server, "echo", text="next")).startswith("next")
    assert srv.executions("incr") == 1
    assert srv.counter("k") == 1
    assert {call.framework for call in reconnects.calls} == {"openai-agents"}
