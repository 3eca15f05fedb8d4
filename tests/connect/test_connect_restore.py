"""What a ``connect()`` session set up is set up again on the rebuilt session, and the caller hears when the
rebuilt server lists other tools, as beneath a healed SDK session (``tests/healing/test_healing_restore.py``):
against the kit's real server restarted with SIGKILL under it (mcp 1.x and 2.x).

- the last ``logging/setLevel`` and every resource still subscribed are sent again on the new session
  before any call uses it (the kit records each with the pid that answered it); an unsubscribed resource
  is not subscribed again;
- the ``message_handler`` given to ``connect()`` hears ``notifications/tools/list_changed`` when the
  rebuilt server's tools differ from the lost one's (a tool added or removed across the restart), and
  nothing when they do not.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from restore_helpers import LIST_CHANGED, Heard, hears_one_tools_change, pid_of, restart_and_call

import mcp_hooks
from mcp_hooks.sdk import MCP_MAJOR
from mcp_hooks.testing import FaultServer
from mcp_hooks.testing.controller import COUNTER_URI

MODE: dict[str, Any] = {"mode": "legacy"} if MCP_MAJOR >= 2 else {}

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.mcp_fault_server(legacy_only=True),
    # mcp 2.x: logging/setLevel and resources/subscribe are deprecated as of 2026-07-28 (a UserWarning)
    pytest.mark.filterwarnings("ignore:.*2026-07-28"),
]


async def test_the_level_and_the_subscription_are_set_up_again_before_any_call(mcp_fault_server: FaultServer) -> None:
    srv = mcp_fault_server
    first = srv.pid
    async with mcp_hooks.connect(srv.url, **MODE) as session:
        await session.set_logging_level("debug")
        await session.subscribe_resource(COUNTER_URI)
        assert (srv.logging_levels(), srv.subscriptions()) == ([(first, "debug")], [(first, COUNTER_URI)])
        second = await restart_and_call(srv, session)
        assert pid_of(await session.call_tool("echo", {"text": "again"})) == second
        assert session.reconnects == 1
    assert srv.logging_levels() == [(first, "debug"), (second, "debug")]
    assert srv.subscriptions() == [(first, COUNTER_URI), (second, COUNTER_URI)]
    # set up again before the call that found the session gone ran on the new process
    call_ran = min(r["time"] for r in srv.files.execution_records() if r["pid"] == second)
    restored = [r["time"] for r in srv.files.request_records() if r["pid"] == second]
    assert len(restored) == 2 and max(restored) <= call_ran


async def test_only_the_last_level_and_no_dropped_subscription_are_set_up_again(
    mcp_fault_server: FaultServer,
) -> None:
    srv = mcp_fault_server
    first = srv.pid
    async with mcp_hooks.connect(srv.url, **MODE) as session:
        await session.set_logging_level("debug")
        await session.set_logging_level("error")
        await session.subscribe_resource(COUNTER_URI)
        await session.unsubscribe_resource(COUNTER_URI)
        second = await restart_and_call(srv, session)
    assert srv.logging_levels() == [(first, "debug"), (first, "error"), (second, "error")]
    assert srv.subscriptions() == [(first, COUNTER_URI)]
    assert srv.unsubscriptions() == [(first, COUNTER_URI)]


@pytest.mark.parametrize("change", ["added", "removed"])
async def test_the_message_handler_hears_tools_list_changed_when_the_tools_changed(
    mcp_fault_server: FaultServer, change: str
) -> None:
    srv = mcp_fault_server
    if change == "removed":
        srv.offer_extra_tool(True)
        await asyncio.to_thread(srv.restart)
    heard = Heard()
    async with mcp_hooks.connect(srv.url, **MODE, message_handler=heard) as session:
        await hears_one_tools_change(srv, session, heard, add=change == "added")
    assert heard.methods() == [LIST_CHANGED]


async def test_no_tools_list_changed_when_the_tools_did_not_change(mcp_fault_server: FaultServer) -> None:
    srv = mcp_fault_server
    heard = Heard()
    async with mcp_hooks.connect(srv.url, **MODE, message_handler=heard) as session:
        await session.list_tools()
        await restart_and_call(srv, session)
        await asyncio.sleep(1.0)  # a notification would have been delivered by now
        assert pid_of(await session.call_tool("echo", {"text": "still"})) == srv.pid
    assert heard.methods() == []
