"""The openai-agents shim and ``mcp_hooks.instrument("mcp")`` on together (what ``mcp_hooks.instrument()``
and ``mcp-hooks run`` turn on): the server's session is the shim's to heal, so one loss is rebuilt once,
by the shim, and the SDK healing beneath stays out of it (its transport is opened under ``bypass()``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import mcp_hooks_openai_agents
import pytest
from oa_support import FRAMEWORK_WARNINGS, MCP_V2, Target, _make_target, invoke, pid_in, text

from mcp_hooks import OutcomeUncertain
from mcp_hooks.testing.events import RecoveryEvents

pytestmark = [pytest.mark.timeout(90), FRAMEWORK_WARNINGS]

#: Servers whose restart loses the session (under mcp 2.x the kit's plain HTTP server is session-less).
SESSION_KINDS = ("http-legacy" if MCP_V2 else "http", "stdio")


@pytest.fixture(params=SESSION_KINDS)
def session_target(request: pytest.FixtureRequest, mcp_fault_server_factory: Any) -> Target:
    return _make_target(request.param, mcp_fault_server_factory)


def _cause_chain(error: BaseException) -> list[BaseException]:
    chain = [error]
    while chain[-1].__cause__ is not None and len(chain) < 10:
        chain.append(chain[-1].__cause__)
    return chain


async def test_a_restart_is_rebuilt_once_by_the_shim(
    shim: Any, sdk_healing: None, mcp_recovery_events: RecoveryEvents, session_target: Target
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
    assert [call.framework for call in mcp_recovery_events.reconnects] == ["openai-agents"]


async def test_a_write_killed_in_flight_runs_once(
    shim: Any, sdk_healing: None, mcp_recovery_events: RecoveryEvents, session_target: Target
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
    assert {call.framework for call in mcp_recovery_events.reconnects} == {"openai-agents"}
