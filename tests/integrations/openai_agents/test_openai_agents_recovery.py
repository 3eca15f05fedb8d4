"""openai-agents 0.24 against a real MCP server that restarts, dies mid-call or disappears: with and without the shim.

Every call goes through ``MCPUtil.invoke_mcp_tool``, the function an agent's ``FunctionTool`` runs (a new
task per call), or through ``Runner.run`` with a scripted model; only the model is fake.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import mcp_hooks_openai_agents
import pytest
from oa_support import FRAMEWORK_WARNINGS, MCP_V2, Target, invoke, outcome, pid_in, text, wait_until_async

import mcp_hooks

pytestmark = [pytest.mark.timeout(90), FRAMEWORK_WARNINGS]


def _cause_chain(error: BaseException) -> list[BaseException]:
    chain = [error]
    while chain[-1].__cause__ is not None and len(chain) < 10:
        chain.append(chain[-1].__cause__)
    return chain


# --- without the shim: what users of openai-agents 0.24 get today --------------------------------------


async def test_without_shim_a_restart_breaks_every_later_call(no_shim: None, target: Target) -> None:
    srv = target.srv
    async with target.server() as server:
        first = text(await invoke(server, "echo", text="before"))
        if target.session_less:
            # mcp 2.x on both ends speaks the session-less 2026-07-28 protocol: a restart is invisible...
            target.restart()
            assert text(await invoke(server, "echo", text="after")).startswith("after")
            # ...but a call made while the server is down breaks the client for good.
            srv.stop()
            with pytest.raises(Exception, match="Connection closed"):
                await invoke(server, "echo", text="while down")
            srv.start()
        else:
            target.restart()
        for attempt in range(2):  # the server is back: the calls still fail, on the dead session
            kind, value = await outcome(invoke(server, "echo", text=f"after {attempt}"))
            assert kind != "ok", value
            assert not isinstance(value, mcp_hooks.OutcomeUncertain)
        if target.transport == "http":
            assert pid_in(first) != srv.pid  # a new server was there to answer
    assert srv.executions("echo") == 1 + (1 if target.session_less else 0)


async def test_without_shim_max_retry_attempts_retries_the_dead_session(no_shim: None, target: Target) -> None:
    """openai-agents' own retries (``max_retry_attempts``) reuse the dead session and fail anyway."""
    if target.session_less:
        pytest.skip("mcp 2.x over HTTP is session-less: a restart is invisible, nothing to retry")
    srv = target.srv
    async with target.server(max_retry_attempts=2, retry_backoff_seconds_base=0.05) as server:
        await invoke(server, "echo", text="before")
        target.restart()
        kind, value = await outcome(invoke(server, "echo", text="after"))
        assert kind != "ok", value
    assert srv.executions("echo") == 1


async def test_without_shim_max_retry_attempts_runs_a_lost_write_twice(no_shim: None, http_target: Target) -> None:
    """mcp 1.x: a write whose answer is lost hangs until the read timeout, which openai-agents' retry
    classifies as retryable in a fresh session: the write runs again and the call "succeeds". This is
    why the shim asks for ``max_retry_attempts=0`` (its default) and does the recovering itself."""
    if MCP_V2:  # legacy servers too: the write ran once, the retry found the server still down
        pytest.skip("mcp 2.x: the loss is reported at once and the fresh-session retry races the restart")
    srv = http_target.srv
    async with http_target.server(max_retry_attempts=1, client_session_timeout_seconds=1) as server:
        await invoke(server, "echo", text="warm up")
        srv.kill_during_next_call("incr", when="after")
        back = http_target.bring_back_after_death()
        try:
            answer = text(await invoke(server, "incr", key="k"))
        finally:
            if back is not None:
                back.join(30)
    assert answer == "2"  # no error: the caller never learns that the write ran twice
    assert srv.counter("k") == 2


# --- with the shim ---------------------------------------------------------------------------------------


async def test_next_call_answers_after_a_restart(shim: Any, rebuilds: Any, target: Target) -> None:
    async with target.server() as server:
        first = text(await invoke(server, "echo", text="before"))
        target.restart()
        started = time.monotonic()
        answer = text(await invoke(server, "echo", text="after"))
        elapsed = time.monotonic() - started
        assert answer.startswith("after (pid ")
        assert pid_in(answer) != pid_in(first)
        invisible = target.session_less  # nothing to rebuild
        assert mcp_hooks_openai_agents.reconnect_count(server) == (0 if invisible else 1)
        assert rebuilds.count == (0 if invisible else 1)
        # the rebuilt session keeps working
        assert text(await invoke(server, "echo", text="again")).startswith("again")
    print(f"[{target.transport}] call after restart answered in {elapsed * 1000:.0f} ms")


async def test_next_call_answers_after_an_outage(shim: Any, any_http_target: Target) -> None:
    """A call made while the server is down fails (after the shim's bounded attempts); once the server
    is back, the next call answers. Without the shim every later call fails (test above)."""
    srv = any_http_target.srv
    async with any_http_target.server() as server:
        await invoke(server, "echo", text="before")
        srv.stop()
        with pytest.raises(Exception) as failed:
            await invoke(server, "echo", text="while down")
        notes = " ".join(getattr(failed.value, "__notes__", []))
        assert "rebuild" in notes or any(
            "rebuild" in " ".join(getattr(e, "__notes__", [])) for e in _cause_chain(failed.value)
        )
        srv.start()
        answer = text(await invoke(server, "echo", text="after"))
        assert pid_in(answer) == srv.pid
        assert mcp_hooks_openai_agents.reconnect_count(server) == 1


async def test_parallel_calls_lost_in_flight_share_one_reconnect(shim: Any, rebuilds: Any, target: Target) -> None:
    """Ten read-only calls under way when the server is killed: one rebuild, all ten answered.

    openai-agents sends one request at a time over streamable HTTP (a lock per server): there one slow
    call is in flight and nine wait for the lock (they meet the dead session next); over stdio all ten
    are in flight.
    """
    srv = target.srv
    async with target.server() as server:
        await invoke(server, "echo", text="warm up")
        if target.transport == "http":
            calls = [asyncio.ensure_future(invoke(server, "slow", seconds=2.0))]
            await wait_until_async(lambda: srv.executions("slow") >= 1, "the slow call to reach the server")
            calls += [asyncio.ensure_future(invoke(server, "echo", text=str(i))) for i in range(9)]
            await asyncio.sleep(0.05)  # the nine are queued behind the one in flight
        else:
            calls = [asyncio.ensure_future(invoke(server, "slow", seconds=1.5)) for _ in range(10)]
            await wait_until_async(lambda: srv.executions("slow") >= 10, "the ten calls to reach the server")
        started = time.monotonic()
        target.restart()
        answers = await asyncio.wait_for(asyncio.gather(*calls), 60)
        elapsed = time.monotonic() - started
        assert len(answers) == 10
        assert all(text(a) for a in answers)
        assert mcp_hooks_openai_agents.reconnect_count(server) == 1
        assert rebuilds.count == 1
    if target.transport == "http":
        assert srv.executions("slow") == 2  # killed in flight, replayed once
        assert srv.executions("echo") == 1 + 9  # the queued ones ran once, on the new session
    else:
        assert srv.executions("slow") == 20  # each killed in flight, each replayed once
    print(f"[{target.transport}] 10 calls across a kill answered {elapsed:.2f} s after the restart began")


#: A shim bug, found against a legacy (session-holding) server under mcp 2.x.
def _queued(lock: asyncio.Lock) -> int:
    """How many tasks wait for ``lock`` (asyncio keeps them in ``_waiters``; no public count exists)."""
    return len(getattr(lock, "_waiters", None) or ())


async def test_call_reaching_the_old_session_after_it_was_settled_is_replayed(
    shim: Any, rebuilds: Any, any_http_target: Target
) -> None:
    """A call takes ``server.session`` before it queues on openai-agents' request lock, so it can reach
    the old session after the rebuild settled it (the lock is free for a moment between two queued
    calls). It must be refused as never sent and replayed on the new session, so even a write runs
    exactly once: under mcp 1.x it went out on a connection being closed, where nobody answered it (it
    waited for the 5 s read timeout and failed); under mcp 2.x (a legacy server) the closed session
    refused it with the "Connection closed" of a request lost in flight (OutcomeUncertain for a write
    that never ran). The test holds the lock itself to pin that order."""
    if any_http_target.session_less:
        pytest.skip("mcp 2.x over HTTP is session-less: a restart replaces no session")
    srv = any_http_target.srv
    async with any_http_target.server() as server:
        await invoke(server, "echo", text="warm up")
        old = server.session
        lock = server._request_lock  # openai-agents: one request at a time per streamable-HTTP server
        any_http_target.restart()
        await lock.acquire()  # as a request in flight on the old session would
        first = asyncio.ensure_future(invoke(server, "echo", text="first"))
        await wait_until_async(lambda: _queued(lock) == 1, "the first call to queue on the request lock")
        again = asyncio.ensure_future(lock.acquire())  # the lock is taken again right after the first call
        await wait_until_async(lambda: _queued(lock) == 2, "the test to queue on the request lock")
        write = asyncio.ensure_future(invoke(server, "incr", key="late"))
        await wait_until_async(lambda: _queued(lock) == 3, "the write to queue on the request lock")
        lock.release()  # the first call meets the stale session (404) and the rebuild begins
        await asyncio.wait_for(again, 30)
        await wait_until_async(lambda: mcp_hooks_openai_agents.reconnect_count(server) == 1, "the rebuild")
        assert server.session is not old
        lock.release()  # now the write reaches the old session, settled and closed by the rebuild
        answers = await asyncio.wait_for(asyncio.gather(first, write), 60)
        assert text(answers[0]).startswith("first (pid ")
        assert text(answers[1]) == "1"
        assert rebuilds.count == 1
    assert srv.counter("late") == 1
    assert srv.executions("incr") == 1  # refused before it was sent, then run once on the new session
    assert srv.executions("echo") == 1 + 1  # warm up; the first call ran only on the new session


async def test_parallel_writes_after_a_restart_run_once_each(shim: Any, rebuilds: Any, any_http_target: Target) -> None:
    """Ten non-idempotent writes sent to a restarted server: refused (404) before they ran, so all are
    replayed after one shared rebuild, and each runs exactly once."""
    srv = any_http_target.srv
    async with any_http_target.server() as server:
        await invoke(server, "echo", text="warm up")
        any_http_target.restart()
        answers = await asyncio.wait_for(asyncio.gather(*(invoke(server, "incr", key="w") for _ in range(10))), 60)
    assert sorted(int(text(a)) for a in answers) == list(range(1, 11))
    assert srv.counter("w") == 10
    assert srv.executions("incr") == 10
    assert rebuilds.count == (0 if any_http_target.session_less else 1)  # session-less: nothing was refused


@pytest.mark.parametrize("tool", ["incr", "echo"])
async def test_call_killed_in_flight_replays_only_what_is_safe(shim: Any, target: Target, tool: str) -> None:
    """The server dies after running the tool, before answering. A write is not sent again: the caller
    gets OutcomeUncertain (wrapped by openai-agents) at once; a read-only tool is replayed and answers."""
    srv = target.srv
    # The HTTP server is started again by a thread and takes a moment: with the default options
    # (max_reconnects=3) the rebuilds that find it down are retried until the deadline, not counted.
    async with target.server() as server:
        await invoke(server, "echo", text="warm up")
        srv.kill_during_next_call(tool, when="after")
        back = target.bring_back_after_death()
        try:
            started = time.monotonic()
            if tool == "incr":
                with pytest.raises(Exception) as failed:
                    await invoke(server, "incr", key="k")
                elapsed = time.monotonic() - started
                chain = _cause_chain(failed.value)
                uncertain = [e for e in chain if isinstance(e, mcp_hooks.OutcomeUncertain)]
                assert uncertain, chain
                assert uncertain[0].tool == "incr"
                assert "outcome uncertain" in str(failed.value)
            else:
                answer = text(await invoke(server, "echo", text="read"))
                elapsed = time.monotonic() - started
                assert answer.startswith("read (pid ")
        finally:
            if back is not None:
                back.join(30)
        # the connection is healed (or heals on the next call): the next call answers
        assert text(await invoke(server, "echo", text="next")).startswith("next")
    if tool == "incr":
        assert srv.counter("k") == 1
        assert srv.executions("incr") == 1
    else:
        assert srv.executions("echo") == 4  # warm up, the killed one, its replay, next
    print(f"[{target.transport}] {tool} killed in flight resolved in {elapsed * 1000:.0f} ms")


@pytest.mark.parametrize("tool", ["incr", "echo"])
async def test_json_response_server_killed_in_flight(shim: Any, mcp_fault_server_factory: Any, tool: str) -> None:
    """The same against a server that answers with plain JSON instead of an SSE stream."""
    srv = mcp_fault_server_factory(json_response=True)
    target = Target("http", srv)
    # The server is started again by a thread: default options (rebuilds finding it down are not counted).
    async with target.server() as server:
        await invoke(server, "echo", text="warm up")
        srv.kill_during_next_call(tool, when="after")
        back = target.bring_back_after_death()
        try:
            if tool == "incr":
                with pytest.raises(Exception) as failed:
                    await invoke(server, "incr", key="j")
                assert any(isinstance(e, mcp_hooks.OutcomeUncertain) for e in _cause_chain(failed.value))
            else:
                assert text(await invoke(server, "echo", text="read")).startswith("read (pid ")
        finally:
            if back is not None:
                back.join(30)
        assert text(await invoke(server, "echo", text="next")).startswith("next")
    assert srv.executions("incr") == (1 if tool == "incr" else 0)
    assert srv.counter("j") == (1 if tool == "incr" else 0)


async def test_a_server_its_user_closed_is_not_reopened(shim: Any, rebuilds: Any, http_target: Target) -> None:
    server = http_target.server()
    async with server:
        await invoke(server, "echo", text="open")
    from agents.exceptions import UserError

    with pytest.raises(UserError, match="Server not initialized"):
        await server.call_tool("echo", {"text": "closed"})
    assert rebuilds.count == 0
    assert mcp_hooks_openai_agents.reconnect_count(server) == 0


@pytest.mark.parametrize("watch_http", [True, False], ids=["watched", "unwatched"])
async def test_an_outage_does_not_cancel_the_callers_task(shim: Any, http_target: Target, watch_http: bool) -> None:
    """mcp 1.x: a request that cannot reach the server fails the transport's task group, and anyio then
    cancels the task that connected, at every await. With the shim that task is the owner task, which
    closes the broken transport; the user's task carries on (see the ``no_shim`` twin below)."""
    shim.configure(watch_http=watch_http)
    srv = http_target.srv
    async with http_target.server() as server:
        await invoke(server, "echo", text="before")
        srv.stop()
        with pytest.raises(Exception) as failed:
            await invoke(server, "echo", text="while down")
        assert not isinstance(failed.value, asyncio.CancelledError)
        await asyncio.sleep(0.3)  # this task is not being cancelled
        srv.start()
        answer = text(await invoke(server, "echo", text="after"))
        assert pid_in(answer) == srv.pid
    await asyncio.sleep(0.05)


async def test_without_shim_an_outage_cancels_the_callers_task(no_shim: None, http_target: Target) -> None:
    srv = http_target.srv
    async with http_target.server() as server:
        await invoke(server, "echo", text="before")
        srv.stop()
        kind, value = await outcome(invoke(server, "echo", text="while down"))
        assert kind != "ok", value
        for _ in range(40):  # anyio's cancellation may land a moment later (bounded: 2 s)
            if kind == "cancelled":
                break
            kind, _ = await outcome(asyncio.sleep(0.05))
        assert kind == ("ok" if MCP_V2 else "cancelled")
