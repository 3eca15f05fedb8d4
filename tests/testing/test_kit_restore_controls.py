"""What a client sets up on its session, recorded per server process (``logging/setLevel``,
``resources/subscribe`` / ``resources/unsubscribe`` with the pid that answered), and the ``extra`` tool a
server process offers when it starts with ``offer_extra_tool`` on: what a test of session restore needs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kit_helpers import MCP_MAJOR, is_error, open_session, pid_of, text_of

from mcp_hooks.testing import FaultServer
from mcp_hooks.testing.controller import COUNTER_URI, EXTRA_TOOL
from mcp_hooks.testing.mcp_server import _lowlevel

# mcp 2.x marks logging/setLevel and resources/subscribe deprecated as of 2026-07-28 (a UserWarning)
pytestmark = pytest.mark.filterwarnings("ignore:.*2026-07-28")

BASE_TOOLS = {"echo", "incr", "put", "slow", "fail"}


def _read_only(tool: Any) -> bool:
    annotations = tool.annotations
    if annotations is None:
        return False
    return bool(annotations.readOnlyHint if MCP_MAJOR == 1 else annotations.read_only_hint)


@pytest.mark.timeout(60)
async def test_set_level_and_subscriptions_are_recorded_with_the_pid(mcp_fault_server: FaultServer) -> None:
    srv = mcp_fault_server
    assert (srv.logging_levels(), srv.subscriptions(), srv.unsubscriptions()) == ([], [], [])
    first = srv.pid
    assert first is not None
    async with open_session(srv.url) as session:
        resources = (await session.list_resources()).resources
        assert [str(r.uri) for r in resources] == [COUNTER_URI]
        await session.call_tool("incr", {})
        contents = (await session.read_resource(COUNTER_URI)).contents
        assert contents[0].text == "1"  # type: ignore[union-attr]
        await session.set_logging_level("debug")
        await session.subscribe_resource(COUNTER_URI)  # type: ignore[arg-type]
        await session.unsubscribe_resource(COUNTER_URI)  # type: ignore[arg-type]
        await session.set_logging_level("warning")
    assert srv.logging_levels() == [(first, "debug"), (first, "warning")]
    assert srv.subscriptions() == [(first, COUNTER_URI)]
    assert srv.unsubscriptions() == [(first, COUNTER_URI)]

    await asyncio.to_thread(srv.restart)
    second = srv.pid
    assert second is not None and second != first
    async with open_session(srv.url) as session:
        await session.subscribe_resource(COUNTER_URI)  # type: ignore[arg-type]
        await session.set_logging_level("error")
    # the records survive the restart; each names the process that answered
    assert srv.logging_levels() == [(first, "debug"), (first, "warning"), (second, "error")]
    assert srv.subscriptions() == [(first, COUNTER_URI), (second, COUNTER_URI)]
    assert [r["method"] for r in srv.files.request_records()] == [
        "logging/setLevel",
        "resources/subscribe",
        "resources/unsubscribe",
        "logging/setLevel",
        "resources/subscribe",
        "logging/setLevel",
    ]


@pytest.mark.timeout(60)
async def test_the_extra_tool_appears_after_a_restart_with_the_control_on(mcp_fault_server: FaultServer) -> None:
    srv = mcp_fault_server
    srv.offer_extra_tool(True)
    # read at start only: the running process keeps its tools
    assert srv.health()["extra_tool"] is False
    async with open_session(srv.url) as session:
        assert {t.name for t in (await session.list_tools()).tools} == BASE_TOOLS

    await asyncio.to_thread(srv.restart)
    assert srv.health()["extra_tool"] is True
    async with open_session(srv.url) as session:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert set(tools) == {*BASE_TOOLS, EXTRA_TOOL}
        assert _read_only(tools[EXTRA_TOOL])
        result = await session.call_tool(EXTRA_TOOL, {})
        assert not is_error(result)
        assert pid_of(text_of(result)) == srv.pid
    assert srv.executions(EXTRA_TOOL) == 1

    srv.offer_extra_tool(False)
    assert "offer_extra_tool" not in srv.controls()
    await asyncio.to_thread(srv.restart)
    async with open_session(srv.url) as session:
        assert {t.name for t in (await session.list_tools()).tools} == BASE_TOOLS

    srv.offer_extra_tool()
    srv.clear_controls()  # turns it off too
    assert "offer_extra_tool" not in srv.controls()


@pytest.mark.timeout(60)
async def test_over_stdio_the_spawned_process_offers_the_extra_tool_and_records(
    mcp_stdio_fault_server: FaultServer,
) -> None:
    from mcp import ClientSession
    from mcp.client.stdio import stdio_client

    srv = mcp_stdio_fault_server
    srv.offer_extra_tool()
    async with stdio_client(srv.stdio_server_parameters()) as streams, ClientSession(streams[0], streams[1]) as session:
        await session.initialize()
        assert EXTRA_TOOL in {t.name for t in (await session.list_tools()).tools}
        await session.set_logging_level("info")
        pid = pid_of(text_of(await session.call_tool(EXTRA_TOOL, {})))
    assert pid == srv.pid
    assert srv.logging_levels() == [(pid, "info")]


def test_a_renamed_lowlevel_server_attribute_fails_loudly() -> None:
    """The kit reaches the SDK's low-level server through a private attribute: if an SDK renames it, the
    server refuses to start (every kit test above fails) rather than quietly not answering."""
    with pytest.raises(RuntimeError, match="_lowlevel_server"):
        _lowlevel(object(), "_lowlevel_server")
    sentinel = object()

    class Holder:
        _mcp_server = sentinel

    assert _lowlevel(Holder(), "_mcp_server") is sentinel
