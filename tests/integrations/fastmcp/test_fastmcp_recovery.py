"""The fastmcp Client across real server restarts, with and without the shim.

Every test runs the real fastmcp ``Client`` against a real fault server on 127.0.0.1, restarted with
real signals under a live session.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from fastmcp import Client
from fastmcp_helpers import (
    FASTMCP_MAJOR,
    MCP_MAJOR,
    rebuilds,
    session_client,
    text_of,
)

from mcp_hooks import OutcomeUncertain, is_session_expired
from mcp_hooks.testing import FaultServer

pytestmark = pytest.mark.timeout(90)


def _pid_of(answer: str) -> str:
    return answer.rsplit("pid ", 1)[1].rstrip(")")


async def test_without_the_shim_a_restart_kills_the_client_for_good(no_shim: None, srv: FaultServer) -> None:
    ran = srv.executions_from_now()
    client = session_client(srv.url)
    async with client:
        assert "hello" in text_of(await client.call_tool("echo", {"text": "hello"}))
        srv.restart()
        for _ in range(2):  # no recovery: every later call fails the same way
            with pytest.raises(Exception) as caught:
                await client.call_tool("echo", {"text": "again"})
            assert is_session_expired(caught.value)
        assert client.is_connected()  # fastmcp still believes it is connected
    assert ran("echo") == 1


async def test_a_restart_is_recovered_in_place(shim: object, srv: FaultServer) -> None:
    ran = srv.executions_from_now()
    client = session_client(srv.url)
    async with client:
        first = text_of(await client.call_tool("echo", {"text": "one"}))
        srv.restart()
        started = time.monotonic()
        second = text_of(await client.call_tool("echo", {"text": "two"}))
        elapsed = time.monotonic() - started
        assert second.startswith("two")
        assert _pid_of(second) == str(srv.pid) != _pid_of(first)
        assert rebuilds(client) == 1
        # the rebuilt session is the client's own: later calls just use it
        assert text_of(await client.call_tool("echo", {"text": "three"})).startswith("three")
        assert rebuilds(client) == 1
    print(f"fastmcp {FASTMCP_MAJOR}.x/mcp {MCP_MAJOR}.x: recovered a restart in {elapsed * 1000:.0f} ms")
    assert ran("echo") == 3
    # leaving `async with` closes the rebuilt session, as it would have closed the first one
    assert not client.is_connected()
    assert client._session_state.nesting_counter == 0
    assert client._session_state.session_task is None


async def test_nested_contexts_keep_their_count_across_a_rebuild(shim: object, srv: FaultServer) -> None:
    client = session_client(srv.url)
    async with client:
        async with client:
            await client.call_tool("echo", {"text": "a"})
            srv.restart()
            await client.call_tool("echo", {"text": "b"})
            assert rebuilds(client) == 1
        # the inner exit releases one hold; the outer one still holds the rebuilt session
        assert client.is_connected()
        assert text_of(await client.call_tool("echo", {"text": "c"})).startswith("c")
    assert not client.is_connected()
    assert client._session_state.session_task is None
    # and the client opens again as usual
    async with client:
        assert text_of(await client.call_tool("echo", {"text": "d"})).startswith("d")


async def test_parallel_calls_on_a_dead_session_share_one_rebuild(shim: object, srv: FaultServer) -> None:
    ran = srv.executions_from_now()
    client = session_client(srv.url)
    async with client:
        await client.call_tool("echo", {"text": "warm"})
        srv.restart()
        answers = await asyncio.gather(*(client.call_tool("echo", {"text": f"p{i}"}) for i in range(8)))
        assert sorted(text_of(a).split()[0] for a in answers) == sorted(f"p{i}" for i in range(8))
        assert rebuilds(client) == 1
    assert ran("echo") == 9


async def test_parallel_writes_refused_by_a_restarted_server_all_run_once(shim: object, srv: FaultServer) -> None:
    client = session_client(srv.url)
    async with client:
        await client.call_tool("echo", {"text": "warm"})
        srv.restart()
        # every request carried the dead session id and was refused before it ran: each is sent again
        # (not reported uncertain), and runs exactly once
        answers = await asyncio.gather(*(client.call_tool("incr", {"key": "parallel-writes"}) for _ in range(6)))
        assert sorted(int(text_of(a)) for a in answers) == [1, 2, 3, 4, 5, 6]
        assert rebuilds(client) == 1
    assert srv.counter("parallel-writes") == 6


async def test_a_write_lost_in_flight_is_not_run_twice(shim: object, srv: FaultServer) -> None:
    ran = srv.executions_from_now()
    client = session_client(srv.url)
    async with client:
        await client.call_tool("incr", {"key": "lost-write"})
        srv.kill_during_next_call("incr", when="after")
        restarter = srv.revive_when_dead()
        with pytest.raises(OutcomeUncertain) as caught:
            await client.call_tool("incr", {"key": "lost-write"})
        assert caught.value.tool == "incr"
        assert is_session_expired(caught.value.__cause__)
        restarter.join(30)
        # it ran exactly once on the server that died; it was not sent again
        assert srv.counter("lost-write") == 2
        assert ran("incr") == 2
        # the session was healed: the next call needs no further rebuild
        rebuilt = rebuilds(client)
        assert text_of(await client.call_tool("incr", {"key": "lost-write"})) == "3"
        assert rebuilds(client) == rebuilt
    assert ran("incr") == 3


async def test_without_the_shim_a_write_lost_in_flight(no_shim: None, srv: FaultServer) -> None:
    ran = srv.executions_from_now()
    client = session_client(srv.url)
    async with client:
        srv.kill_during_next_call("incr", when="after")
        if MCP_MAJOR >= 2:
            with pytest.raises(Exception) as caught:
                await asyncio.wait_for(client.call_tool("incr", {}), 20)
            assert is_session_expired(caught.value)
        else:  # mcp 1.x never answers a request whose response stream died: the call hangs
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(client.call_tool("incr", {}), 3)
    assert ran("incr") == 1


async def test_a_read_only_tool_lost_in_flight_is_replayed(shim: object, srv: FaultServer) -> None:
    ran = srv.executions_from_now()
    client = session_client(srv.url)
    async with client:
        srv.kill_during_next_call("echo", when="after")
        restarter = srv.revive_when_dead()
        # fastmcp's tool list was never asked for: the shim lists the tools on the rebuilt session
        answer = text_of(await asyncio.wait_for(client.call_tool("echo", {"text": "again"}), 60))
        restarter.join(30)
        assert answer.startswith("again")
        assert _pid_of(answer) == str(srv.pid)
    assert ran("echo") == 2  # read-only: running it twice is allowed


async def test_a_read_only_call_in_flight_on_the_replaced_session_is_replayed(shim: object, srv: FaultServer) -> None:
    ran = srv.executions_from_now()
    client = session_client(srv.url)
    async with client:
        await client.call_tool("echo", {"text": "warm"})
        srv.delay("slow", 2.5)  # longer than the shim lets a request in flight drain (1 s)
        slow = asyncio.create_task(client.call_tool("slow", {"seconds": 0.1}))
        await asyncio.sleep(0.3)  # the slow call is in flight on the session
        srv.expire_sessions()  # the server forgets it; the next call is refused with a 404
        assert text_of(await client.call_tool("echo", {"text": "new"})).startswith("new")
        # the rebuild stopped the old session under the slow call, which is replayed: it is read-only
        assert text_of(await asyncio.wait_for(slow, 30)).startswith("slept")
        assert ran("slow") == 2  # it may have run on the old session: read-only, so sent again
        assert rebuilds(client) == 1


async def test_list_tools_survives_a_restart(shim: object, srv: FaultServer) -> None:
    client = session_client(srv.url)
    async with client:
        assert {t.name for t in await client.list_tools()} >= {"echo", "incr"}
        srv.restart()
        assert {t.name for t in await client.list_tools()} >= {"echo", "incr"}
        assert rebuilds(client) == 1


async def test_a_server_down_for_a_while_is_waited_for(shim: object, srv: FaultServer) -> None:
    client = session_client(srv.url)
    async with client:
        await client.call_tool("echo", {"text": "before"})
        srv.stop()
        threading.Timer(1.5, srv.start).start()
        started = time.monotonic()
        answer = text_of(await asyncio.wait_for(client.call_tool("echo", {"text": "after"}), 60))
        print(f"answered {time.monotonic() - started:.2f} s after the call, server down for 1.5 s + start-up")
        assert answer.startswith("after")


async def test_tool_errors_pass_through_unchanged(shim: object, srv: FaultServer) -> None:
    from fastmcp.exceptions import ToolError

    client = session_client(srv.url)
    async with client:
        with pytest.raises(ToolError, match="boom"):
            await client.call_tool("fail", {"message": "boom"})
        assert rebuilds(client) == 0


@pytest.mark.skipif(FASTMCP_MAJOR < 4 or MCP_MAJOR < 2, reason="the 2026-07-28 protocol needs fastmcp 4 and mcp 2")
async def test_a_sessionless_client_never_needs_a_rebuild(shim: object, srv: FaultServer) -> None:
    from fastmcp import Client

    client = Client(srv.url)  # mode="auto": negotiates the session-less 2026-07-28 protocol
    async with client:
        await client.call_tool("echo", {"text": "a"})
        assert client.protocol_version == "2026-07-28"
        srv.restart()
        assert text_of(await client.call_tool("echo", {"text": "b"})).startswith("b")
        assert rebuilds(client) == 0


async def test_a_stdio_server_that_died_is_spawned_again(shim: object, mcp_stdio_fault_server: FaultServer) -> None:
    from fastmcp.client.transports import StdioTransport

    params = mcp_stdio_fault_server.stdio_parameters()
    client = Client(StdioTransport(command=params.command, args=params.args, env=params.env))
    async with client:
        first = text_of(await client.call_tool("echo", {"text": "one"}))
        pid = mcp_stdio_fault_server.pid
        assert pid is not None and _pid_of(first) == str(pid)
        os.kill(pid, signal.SIGKILL)  # the subprocess this client spawned
        second = text_of(await asyncio.wait_for(client.call_tool("echo", {"text": "two"}), 30))
        assert second.startswith("two")
        assert _pid_of(second) != str(pid)
        assert rebuilds(client) == 1
    assert mcp_stdio_fault_server.executions("echo") == 2


def _dead(pid: int) -> bool:
    """``pid`` has exited (a zombie not yet reaped counts: its pipes are closed). Reaped between the open and
    the read, its ``stat`` reads as ``ESRCH`` (``ProcessLookupError``), not as a missing file."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return True


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads a process's state from /proc")
async def test_a_stdio_server_whose_stdin_breaks_first_is_spawned_again(
    shim: object, mcp_stdio_fault_server: FaultServer, tmp_path: Path
) -> None:
    """The other ending of a dead stdio server: the request's write fails (EPIPE) before its stdout ends
    (here it never does: a child of the server's shell holds it, as a server's own child can). Under
    mcp 1.x the SDK's transport then fails and the request waited forever, unanswered and unseen by
    fastmcp (the race behind test_a_stdio_server_that_died_is_spawned_again's rare hang, made sure)."""
    from fastmcp.client.transports import StdioTransport

    holders = tmp_path / "holders"
    params = mcp_stdio_fault_server.stdio_parameters()
    hold_stdout = f"sh -c 'echo $$ >> {holders}; exec sleep 60' holder </dev/null &"
    script = f'{hold_stdout} exec "$0" "$@"'
    client = Client(StdioTransport(command="sh", args=["-c", script, params.command, *params.args], env=params.env))
    try:
        async with client:
            first = text_of(await client.call_tool("echo", {"text": "one"}))
            pid = int(_pid_of(first))
            os.kill(pid, signal.SIGKILL)  # the server this client spawned (its shell exec'd it)
            for _ in range(500):
                if _dead(pid):
                    break
                await asyncio.sleep(0.01)
            assert _dead(pid)
            # Let the event loop see the pipe's reader gone (asyncio closes its stdin transport then), so
            # that the write fails: written before that, it is lost without an error, and with stdout
            # held open nothing would ever tell (in either SDK).
            await asyncio.sleep(0.2)
            second = text_of(await asyncio.wait_for(client.call_tool("echo", {"text": "two"}), 30))
            assert second.startswith("two")
            assert _pid_of(second) != str(pid)
            assert rebuilds(client) == 1
    finally:
        for line in holders.read_text().split() if holders.exists() else []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(line), signal.SIGKILL)  # the stdout holders this test started
    assert mcp_stdio_fault_server.executions("echo") == 2
