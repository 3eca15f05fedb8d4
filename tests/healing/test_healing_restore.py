"""What a healed session set up is set up again on the new server process, and the session hears when the
rebuilt server lists other tools: ``instrument("mcp")`` beneath a raw SDK session (mcp 1.x and 2.x), against
the kit's real server restarted with SIGKILL under it.

- ``logging/setLevel`` and ``resources/subscribe`` are replayed on the new process (the kit records each
  with the pid that answered it), before the request that was waiting is re-sent; an unsubscribed
  resource is not subscribed again, and only the last level is set;
- after a rebuild the relay lists the tools itself and sends the session
  ``notifications/tools/list_changed`` when they changed (a tool added or removed across the restart),
  and nothing when they did not.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import mcp
import pytest
from restore_helpers import LIST_CHANGED, Heard, eventually, hears_one_tools_change, pid_of, restart_and_call

from mcp_hooks.healing.messages import MCP_MAJOR
from mcp_hooks.testing import FaultServer
from mcp_hooks.testing.controller import COUNTER_URI

pytestmark = [
    pytest.mark.timeout(90),
    # sessions under either major (mcp 2.x clients then keep to the initialize handshake)
    pytest.mark.mcp_fault_server(legacy_only=True),
    # mcp 2.x: logging/setLevel and resources/subscribe are deprecated as of 2026-07-28 (a UserWarning)
    pytest.mark.filterwarnings("ignore:.*2026-07-28"),
    # mcp 1.x: the documented streamablehttp_client is deprecated for streamable_http_client
    pytest.mark.filterwarnings("ignore:Use `streamable_http_client` instead"),
]

#: How a session is opened: mcp 1.x's two transport functions; mcp 2.x's transport and its ``Client``.
OPENERS = (
    ["streamablehttp_client", "streamable_http_client"] if MCP_MAJOR == 1 else ["streamable_http_client", "Client"]
)


@contextlib.asynccontextmanager
async def open_session(how: str, url: str, heard: Heard) -> AsyncIterator[Any]:
    """A session opened the SDK's documented way (the transport function looked up when called, so the
    healed one): ``ClientSession(read, write)`` + ``initialize()``, or mcp 2.x ``Client(url, mode="legacy")``."""
    if how == "Client":
        async with mcp.Client(url, mode="legacy", message_handler=heard, read_timeout_seconds=30) as client:
            yield client
    elif how == "streamablehttp_client":
        from mcp.client.streamable_http import streamablehttp_client

        async with (
            streamablehttp_client(url) as (read, write, _),
            mcp.ClientSession(read, write, message_handler=heard) as session,
        ):
            await session.initialize()
            yield session
    else:
        from mcp.client.streamable_http import streamable_http_client

        async with (
            streamable_http_client(url) as streams,
            mcp.ClientSession(streams[0], streams[1], message_handler=heard) as session,
        ):
            await session.initialize()
            yield session


# --------------------------------------------------------------------------- restore


@pytest.mark.usefixtures("healing")
@pytest.mark.parametrize("how", OPENERS)
async def test_the_level_and_the_subscription_are_set_up_again_on_the_new_process(
    mcp_fault_server: FaultServer, how: str
) -> None:
    srv = mcp_fault_server
    first = srv.pid
    assert first is not None
    async with open_session(how, srv.url, Heard()) as session:
        await session.set_logging_level("debug")
        await session.subscribe_resource(COUNTER_URI)
        assert (srv.logging_levels(), srv.subscriptions()) == ([(first, "debug")], [(first, COUNTER_URI)])

        second = await restart_and_call(srv, session)
        assert await eventually(
            lambda: (second, "debug") in srv.logging_levels() and (second, COUNTER_URI) in srv.subscriptions()
        ), (srv.logging_levels(), srv.subscriptions())
        # and the session goes on working on the new process
        assert pid_of(await session.call_tool("echo", {"text": "again"})) == second
    # once each: one rebuild, one replay
    assert srv.logging_levels() == [(first, "debug"), (second, "debug")]
    assert srv.subscriptions() == [(first, COUNTER_URI), (second, COUNTER_URI)]
    # restored before the waiting call was re-sent: recorded on the new process before the call ran there
    call_ran = min(r["time"] for r in srv.files.execution_records() if r["pid"] == second)
    restored = [r["time"] for r in srv.files.request_records() if r["pid"] == second]
    assert len(restored) == 2 and max(restored) <= call_ran


@pytest.mark.usefixtures("healing")
@pytest.mark.parametrize("how", OPENERS)
async def test_only_the_last_level_and_no_dropped_subscription_are_set_up_again(
    mcp_fault_server: FaultServer, how: str
) -> None:
    srv = mcp_fault_server
    first = srv.pid
    async with open_session(how, srv.url, Heard()) as session:
        await session.set_logging_level("debug")
        await session.set_logging_level("error")
        await session.subscribe_resource(COUNTER_URI)
        await session.unsubscribe_resource(COUNTER_URI)
        second = await restart_and_call(srv, session)
        assert await eventually(lambda: (second, "error") in srv.logging_levels()), srv.logging_levels()
        await asyncio.sleep(0.3)  # room for a wrong replay to show
    assert srv.logging_levels() == [(first, "debug"), (first, "error"), (second, "error")]
    assert srv.subscriptions() == [(first, COUNTER_URI)]
    assert srv.unsubscriptions() == [(first, COUNTER_URI)]


# --------------------------------------------------------------------------- tools/list_changed


@pytest.mark.usefixtures("healing")
@pytest.mark.parametrize("change", ["added", "removed"])
@pytest.mark.parametrize("how", OPENERS)
async def test_the_session_hears_tools_list_changed_when_the_tools_changed(
    mcp_fault_server: FaultServer, how: str, change: str
) -> None:
    srv = mcp_fault_server
    if change == "removed":
        srv.offer_extra_tool(True)
        await asyncio.to_thread(srv.restart)
    heard = Heard()
    async with open_session(how, srv.url, heard) as session:
        await hears_one_tools_change(srv, session, heard, add=change == "added")
    assert heard.methods() == [LIST_CHANGED]
    assert heard.other == []


@pytest.mark.usefixtures("healing")
@pytest.mark.parametrize("how", OPENERS)
async def test_no_tools_list_changed_when_the_tools_did_not_change(mcp_fault_server: FaultServer, how: str) -> None:
    srv = mcp_fault_server
    heard = Heard()
    async with open_session(how, srv.url, heard) as session:
        await session.list_tools()
        assert srv.health()["tools_listed"] == 1
        await restart_and_call(srv, session)
        # the relay lists the tools of the new process itself (the kit counts tools/list per process) ...
        assert await eventually(lambda: srv.health()["tools_listed"] >= 1)
        await asyncio.sleep(1.0)  # ... and would have told the session by now
        assert heard.tools_changed() == []
        assert pid_of(await session.call_tool("echo", {"text": "still"})) == srv.pid
    assert heard.methods() == []
    assert heard.other == []
