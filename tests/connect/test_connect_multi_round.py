"""The 2026-07-28 protocol's multi-round-trip requests under ``connect()``: when the server restarts
between the rounds, its new process refuses the old ``requestState`` (``-32602 "Invalid or expired
requestState"``, sealed with the old process's key); the flow is started again from its first round when
the tool is safe to repeat, and given back otherwise. Real fault server (its ``confirm_put`` tool asks the
client to confirm before it stores), the client's own elicitation callback, mcp 2.x."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from connect_helpers import MCP_MAJOR
from multi_round_helpers import restarting_on

import mcp_hooks
from mcp_hooks import hookimpl
from mcp_hooks.healing.traffic import FLOW_RESTARTS

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(MCP_MAJOR < 2, reason="multi-round-trip requests are the 2026-07-28 protocol (mcp 2.x)"),
]


@pytest.fixture
def confirming(server: Any) -> Any:
    server.offer_confirm_tool(True)
    server.restart()
    return server


def value(result: Any) -> str:
    assert not result.is_error, result
    return str(result.content[0].text)


async def test_a_flow_whose_state_expired_is_started_again_and_completes(confirming: Any) -> None:
    srv = confirming
    on_elicit, asked = restarting_on(srv, times=1)
    async with mcp_hooks.connect(srv.url, mode="auto", elicitation_callback=on_elicit) as s:
        result = await asyncio.wait_for(s.call_tool("confirm_put", {"key": "k", "value": "v"}), 30)
        assert value(result) == "k=v"
        assert s.reconnects == 0  # the server was up: nothing to rebuild, only the flow to restart
    assert len(asked) == 2  # the user was asked again by the new process
    assert srv.counter("confirm_asked") == 2
    assert srv.executions("confirm_put") == 1
    assert srv.stored("k") == "v"


class _NothingIsSafe:
    @hookimpl(tryfirst=True)
    def is_replay_safe(self, call: Any, error: BaseException) -> bool:
        return False


async def test_a_flow_not_safe_to_repeat_is_given_back(confirming: Any) -> None:
    srv = confirming
    pm = mcp_hooks.build_plugin_manager(entry_points=False)
    pm.register(_NothingIsSafe(), name="nothing-is-safe")
    on_elicit, asked = restarting_on(srv, times=1)
    async with mcp_hooks.connect(srv.url, mode="auto", elicitation_callback=on_elicit, plugin_manager=pm) as s:
        with pytest.raises(Exception, match="Invalid or expired requestState"):
            await asyncio.wait_for(s.call_tool("confirm_put", {"key": "k", "value": "v"}), 30)
    assert len(asked) == 1
    assert srv.executions("confirm_put") == 0 and srv.stored("k") is None


async def test_restarting_a_flow_is_bounded(confirming: Any) -> None:
    srv = confirming
    on_elicit, asked = restarting_on(srv, times=100)  # the state expires at every round
    async with mcp_hooks.connect(srv.url, mode="auto", elicitation_callback=on_elicit) as s:
        with pytest.raises(Exception, match="Invalid or expired requestState"):
            await asyncio.wait_for(s.call_tool("confirm_put", {"key": "k", "value": "v"}), 60)
    assert len(asked) == FLOW_RESTARTS + 1
    assert srv.executions("confirm_put") == 0
