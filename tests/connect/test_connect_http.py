"""``connect()`` against a real streamable-HTTP fault server: session loss of every kind is recovered."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from typing import Any

import pytest
from connect_helpers import SESSIONS, text, value

import mcp_hooks
from mcp_hooks.connection import MCP_MAJOR
from mcp_hooks.healing.watch import _httpx
from mcp_hooks.testing import STALE_STYLES


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
async def test_restart_next_call_answers(server: Any, sig: int) -> None:
    async with mcp_hooks.connect(server.url, **SESSIONS) as s:
        assert value(await s.call_tool("echo", {"text": "a"})) == "a"
        first = s.session_id
        assert first
        server.restart(sig)
        assert value(await s.call_tool("echo", {"text": "b"})) == "b"
        assert s.reconnects == 1
        assert s.session_id and s.session_id != first


async def test_external_delete_of_the_session(server: Any) -> None:
    async with mcp_hooks.connect(server.url, **SESSIONS) as s:
        await s.call_tool("echo", {"text": "a"})
        sid = s.session_id
        assert sid
        headers = {"mcp-session-id": sid}
        version = s.protocol_version
        if version:
            headers["mcp-protocol-version"] = version
        async with _httpx.AsyncClient() as raw:
            response = await raw.delete(server.url, headers=headers)
        assert response.status_code < 300, response.status_code
        assert value(await s.call_tool("echo", {"text": "b"})) == "b"
        assert s.reconnects == 1
        assert s.session_id != sid


async def test_idle_expiry_short_ttl(mcp_fault_server_factory: Any) -> None:
    srv = mcp_fault_server_factory(idle_timeout=0.5)
    async with mcp_hooks.connect(srv.url, **SESSIONS) as s:
        await s.call_tool("echo", {"text": "a"})
        sid = s.session_id
        await asyncio.sleep(1.5)
        assert value(await s.call_tool("echo", {"text": "b"})) == "b"
        # The server's idle timer does not run while the client holds its standing GET stream, so the
        # session may well still be alive: whichever happened, the call answered and the count agrees.
        assert s.reconnects == (0 if s.session_id == sid else 1)


async def test_expire_sessions(server: Any) -> None:
    async with mcp_hooks.connect(server.url, **SESSIONS) as s:
        await s.call_tool("echo", {"text": "a"})
        sid = s.session_id
        server.expire_sessions()
        before = server.executions("incr")
        await s.call_tool("incr", {"key": "exp"})
        assert server.executions("incr") - before == 1
        assert server.counter("exp") == 1
        assert s.reconnects == 1
        assert s.session_id != sid


async def _start_after(server: Any, seconds: float) -> None:
    await asyncio.sleep(seconds)
    await asyncio.to_thread(server.start)


async def test_server_down_two_seconds_then_back(server: Any) -> None:
    async with mcp_hooks.connect(server.url, **SESSIONS) as s:
        await s.call_tool("echo", {"text": "a"})
        server.stop(signal.SIGKILL)
        back = asyncio.create_task(_start_after(server, 2.0))
        started = time.monotonic()
        assert value(await asyncio.wait_for(s.call_tool("echo", {"text": "b"}), 30)) == "b"
        assert time.monotonic() - started >= 1.5
        await asyncio.wait_for(back, 30)
        assert s.reconnects == 1


async def test_restart_with_down_for_in_a_thread(server: Any) -> None:
    async with mcp_hooks.connect(server.url, **SESSIONS) as s:
        await s.call_tool("echo", {"text": "a"})
        restart = asyncio.create_task(asyncio.to_thread(server.restart, signal.SIGKILL, 2.0))
        await asyncio.sleep(0.3)  # the server is down now
        assert value(await s.call_tool("echo", {"text": "b"})) == "b"
        await restart
        assert s.reconnects == 1


async def test_kill_during_read_only_call_is_replayed(server: Any) -> None:
    async with mcp_hooks.connect(server.url, **SESSIONS) as s:
        await s.call_tool("echo", {"text": "warm"})
        old_pid = server.pid
        server.kill_during_next_call("echo", when="after")
        reviver = server.revive_when_dead(timeout=20)
        result = await asyncio.wait_for(s.call_tool("echo", {"text": "x"}), 30)
        await asyncio.to_thread(reviver.join, 30)
        assert value(result) == "x"
        assert f"(pid {old_pid})" not in text(result)
        assert s.reconnects == 1


async def test_kill_during_incr_is_outcome_uncertain(server: Any) -> None:
    async with mcp_hooks.connect(server.url, **SESSIONS) as s:
        await s.call_tool("echo", {"text": "warm"})
        server.kill_during_next_call("incr", when="after")
        reviver = server.revive_when_dead(timeout=20)
        started = time.monotonic()
        with pytest.raises(mcp_hooks.OutcomeUncertain) as info:
            await s.call_tool("incr", {"key": "once"})
        assert time.monotonic() - started < 20
        await asyncio.to_thread(reviver.join, 30)
        err = info.value
        assert err.tool == "incr"
        assert err.server == s.server
        assert err.__cause__ is not None
        assert server.executions("incr") == 1
        assert server.counter("once") == 1
        # the next call works, on a healed session
        assert value(await s.call_tool("echo", {"text": "after"})) == "after"
        assert server.counter("once") == 1


async def test_fifty_concurrent_calls_across_a_restart(server: Any) -> None:
    async with mcp_hooks.connect(server.url, **SESSIONS) as s:
        await s.call_tool("echo", {"text": "warm"})
        server.delay("echo", 0.3)
        calls = [asyncio.create_task(s.call_tool("echo", {"text": str(i)})) for i in range(50)]
        await asyncio.sleep(0.1)  # all 50 are on the wire
        await asyncio.to_thread(server.restart, signal.SIGKILL)
        results = await asyncio.wait_for(asyncio.gather(*calls), 60)
        assert sorted(value(r) for r in results) == sorted(str(i) for i in range(50))
        assert s.reconnects == 1


async def test_fifty_concurrent_calls_after_a_restart(server: Any) -> None:
    async with mcp_hooks.connect(server.url, **SESSIONS) as s:
        await s.call_tool("echo", {"text": "warm"})
        server.restart(signal.SIGTERM)
        results = await asyncio.gather(*(s.call_tool("echo", {"text": str(i)}) for i in range(50)))
        assert sorted(value(r) for r in results) == sorted(str(i) for i in range(50))
        assert s.reconnects == 1


@pytest.mark.parametrize("style", [s for s in STALE_STYLES if s != "python"])
@pytest.mark.parametrize("how", ["restart", "expire"])
async def test_stale_session_styles(mcp_fault_server_factory: Any, style: str, how: str) -> None:
    srv = mcp_fault_server_factory(stale_style=style)
    async with mcp_hooks.connect(srv.url, **SESSIONS) as s:
        await s.call_tool("echo", {"text": "warm"})
        sid = s.session_id
        if how == "restart":
            srv.restart(signal.SIGKILL)
        else:
            srv.expire_sessions()
        # a REJECTED loss: the request never ran, so even a non-idempotent tool is replayed, once
        result = await s.call_tool("incr", {"key": style})
        assert text(result) == "1"
        assert srv.executions("incr") == 1
        assert srv.counter(style) == 1
        assert s.reconnects == 1
        assert s.session_id != sid
        assert value(await s.call_tool("echo", {"text": "next"})) == "next"


async def test_set_stale_style_at_run_time(server: Any) -> None:
    async with mcp_hooks.connect(server.url, **SESSIONS) as s:
        for n, style in enumerate(STALE_STYLES, start=1):
            server.set_stale_style(style)
            server.expire_sessions()
            await s.call_tool("incr", {"key": "rt"})
            assert server.counter("rt") == n, style
            assert s.reconnects == n, style


@pytest.mark.skipif(MCP_MAJOR < 2, reason="the session-less protocol is mcp 2.x's")
async def test_keepalive_knows_the_session_less_protocol_has_nothing_to_keep(server: Any) -> None:
    """The 2026-07-28 protocol has no session to expire and no ``ping``: keepalive sends nothing there."""
    async with mcp_hooks.connect(server.url, keepalive=0.2, mode="auto") as s:
        await s.call_tool("echo", {"text": "a"})
        assert s.session_id is None
        sent: list[str] = []
        for name in ("send_ping", "list_tools"):
            real = getattr(s, name)

            async def counting(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
                sent.append(_name)
                return await _real(*args, **kwargs)

            setattr(s, name, counting)
        await asyncio.sleep(1.0)
        assert sent == []
        assert value(await s.call_tool("echo", {"text": "b"})) == "b"


async def test_keepalive_keeps_an_idle_session(mcp_fault_server_factory: Any) -> None:
    srv = mcp_fault_server_factory(idle_timeout=1)
    async with mcp_hooks.connect(srv.url, keepalive=0.3, **SESSIONS) as s:
        await s.call_tool("echo", {"text": "a"})
        sid = s.session_id
        pings = 0
        real_ping = s.send_ping

        async def counting_ping(**kwargs: Any) -> Any:
            nonlocal pings
            pings += 1
            return await real_ping(**kwargs)

        s.send_ping = counting_ping  # type: ignore[method-assign]
        await asyncio.sleep(2.0)
        assert pings >= 3  # the keepalive really ran while idle
        assert s.reconnects == 0
        assert value(await s.call_tool("echo", {"text": "b"})) == "b"
        assert s.reconnects == 0
        assert s.session_id == sid


async def test_proactive_healing_after_restart(server: Any) -> None:
    async with mcp_hooks.connect(server.url, **SESSIONS) as s:
        await s.call_tool("echo", {"text": "a"})
        sid = s.session_id
        await asyncio.to_thread(server.restart, signal.SIGKILL)
        end = time.monotonic() + 3.0
        while s.reconnects == 0 and time.monotonic() < end:
            await asyncio.sleep(0.1)
        assert s.reconnects == 1  # before any call
        assert s.session_id != sid
        assert value(await s.call_tool("echo", {"text": "b"})) == "b"
        assert s.reconnects == 1


async def test_healing_lists_the_tools_so_the_next_call_fetches_nothing(server: Any) -> None:
    """The SDK lists the tools before a session's first call_tool (to validate results): after a restart
    healed in the background the tools are listed there too (their annotations learned with them), so the
    first call after it is one request, like any warm call."""
    async with mcp_hooks.connect(server.url, **SESSIONS) as s:
        await s.call_tool("echo", {"text": "a"})
        await asyncio.to_thread(server.restart, signal.SIGKILL)
        for _ in range(100):  # healed and listed in the background (bounded wait)
            if s.reconnects and server.health()["tools_listed"]:
                break
            await asyncio.sleep(0.1)
        assert s.reconnects == 1 and server.health()["tools_listed"] == 1
        assert value(await s.call_tool("echo", {"text": "b"})) == "b"
        assert server.health()["tools_listed"] == 1  # the call fetched nothing
        assert s.reconnects == 1


async def test_a_recovery_leaves_no_deadline_behind_for_later_calls_of_the_same_task(server: Any) -> None:
    """A recovered call's deadline must not outlive it: a later call in the same task that meets a
    dead session (here: without background healing, after the call's deadline has long passed) still
    gets its own full deadline to rebuild, instead of an instant "could not be built before the deadline"."""
    async with mcp_hooks.connect(server.url, heal=False, deadline=3.0, **SESSIONS) as s:
        await s.call_tool("echo", {"text": "a"})
        server.expire_sessions()  # the next call fails (404) and is recovered: its deadline is set
        assert value(await s.call_tool("echo", {"text": "b"})) == "b"
        assert s.reconnects == 1
        await asyncio.sleep(3.2)  # that deadline has passed
        await asyncio.to_thread(server.restart, signal.SIGKILL)
        await asyncio.sleep(1.0)  # the dropped GET stream tells the session it is dead
        # This call meets a known-dead session: it rebuilds within its own deadline.
        assert value(await s.call_tool("echo", {"text": "c"})) == "c"
        assert s.reconnects == 2


async def test_proactive_healing_after_server_down(server: Any) -> None:
    async with mcp_hooks.connect(server.url, **SESSIONS) as s:
        await s.call_tool("echo", {"text": "a"})
        await asyncio.to_thread(server.restart, signal.SIGKILL, 1.0)
        # Healed in the background, before any call: wait for it (bounded), then check the call pays nothing.
        for _ in range(100):
            if s.reconnects:
                break
            await asyncio.sleep(0.1)
        assert s.reconnects == 1
        assert value(await s.call_tool("echo", {"text": "b"})) == "b"
        assert s.reconnects == 1


@pytest.mark.skipif(MCP_MAJOR < 2, reason="the session-less protocol needs mcp 2.x")
async def test_sessionless_protocol_restart_is_invisible(server: Any) -> None:
    async with mcp_hooks.connect(server.url) as s:
        assert value(await s.call_tool("echo", {"text": "a"})) == "a"
        assert s.session_id is None
        server.restart(signal.SIGKILL)
        assert value(await s.call_tool("echo", {"text": "b"})) == "b"
        await asyncio.sleep(0.5)
        assert value(await s.call_tool("echo", {"text": "c"})) == "c"
        assert s.reconnects == 0


@pytest.mark.parametrize("heal", [False, True], ids=["call-rebuilds", "background-heal"])
async def test_handshake_lost_in_flight_is_retried_not_waited_on(server: Any, heal: bool) -> None:
    """The server dies as it answers the reconnect's ``initialize`` (headers sent, body never): the SDK
    would wait for that answer forever; the opening is given up at once and retried when it is back.
    Waiting on it would outlast the call's 12 s deadline (a rebuild attempt waits up to 10 s)."""
    async with mcp_hooks.connect(server.url, heal=heal, deadline=12.0, **SESSIONS) as s:
        first = text(await s.call_tool("echo", {"text": "a"}))
        server.kill_during_next_handshake()
        server.expire_sessions()

        def bring_back() -> None:
            server.wait_exit(timeout=20.0)  # the armed kill fired during the handshake
            time.sleep(0.3)
            server.start()

        back = asyncio.ensure_future(asyncio.to_thread(bring_back))
        try:
            answer = await s.call_tool("echo", {"text": "b"})
        finally:
            await asyncio.wait_for(back, 25.0)
        assert value(answer) == "b"
        assert text(answer).split(" (pid", 1)[1] != first.split(" (pid", 1)[1], "answered by the killed process"
        assert s.reconnects >= 1


@pytest.mark.parametrize("heal", [True, False], ids=["heal", "no-heal"])
async def test_handshake_answer_stream_ended_empty_is_retried_not_waited_on(server: Any, heal: bool) -> None:
    """The reconnect's ``initialize`` is accepted (200, an event stream) and the stream then ends cleanly
    with no event, as a server shutting down gracefully does: nothing broke, and mcp 1.x would wait for
    that answer forever. The opening is given up at once and retried: the call answers well within its
    12 s deadline (waiting on the lost answer would outlast it)."""
    async with mcp_hooks.connect(server.url, heal=heal, deadline=12.0, **SESSIONS) as s:
        await s.call_tool("echo", {"text": "a"})
        server.drop_next_handshake_answer()
        server.expire_sessions()
        answer = await s.call_tool("echo", {"text": "b"})
        assert value(answer) == "b"
        assert s.reconnects == 1
        assert "drop_next_handshake_answer" not in server.controls(), "the armed fault was never used"


async def test_more_concurrent_calls_than_pooled_connections(server: Any) -> None:
    """250 concurrent 1 s calls over the HTTP client's 100 pooled connections: the last ones wait about 2 s
    for a connection, longer than the 0.5 s connect timeout. Waiting for the pool is not a failure (under
    mcp 1.x a PoolTimeout would fail the whole transport and every call in flight)."""
    async with mcp_hooks.connect(server.url, timeout=0.5, deadline=60.0, **SESSIONS) as s:
        await s.call_tool("echo", {"text": "warm"})
        answers = await asyncio.wait_for(
            asyncio.gather(*(s.call_tool("slow", {"seconds": 1}) for _ in range(250)), return_exceptions=True), 60
        )
        failed = [a for a in answers if isinstance(a, BaseException)]
        assert not failed, f"{len(failed)} failed, the first: {failed[0]!r}"
        assert all(text(a) for a in answers)
        assert s.reconnects == 0
    assert server.executions("slow") == 250


async def test_calls_replayed_after_a_reconnect_share_one_tool_listing(server: Any) -> None:
    """The SDK lists the tools before a session's first ``call_tool``, once per call until one listing has
    answered: 40 calls replayed at once on a rebuilt session would send 40 listings. The rebuilt session
    lists them once, before any call uses it."""
    async with mcp_hooks.connect(server.url, heal=False, **SESSIONS) as s:
        await s.call_tool("echo", {"text": "warm"})
        server.restart()
        answers = await asyncio.wait_for(
            asyncio.gather(*(s.call_tool("echo", {"text": str(i)}) for i in range(40))), 60
        )
        assert sorted(value(a) for a in answers) == sorted(str(i) for i in range(40))
        assert s.reconnects == 1
        assert server.health()["tools_listed"] <= 1  # the new process: at most one listing for the 40 calls


@pytest.mark.skipif(MCP_MAJOR < 2, reason="mcp 1.x keeps no compiled output-schema validators")
async def test_a_rebuilt_session_inherits_the_compiled_output_validators(server: Any) -> None:
    """mcp 2.x compiles a tool's output-schema validator on a session's first call of it (~3 ms): the
    session rebuilt after a restart takes the old one's, since the listed schema did not change."""
    async with mcp_hooks.connect(server.url, heal=False, **SESSIONS) as s:
        await s.call_tool("echo", {"text": "warm"})
        compiled = s.session.session._tool_output_validators["echo"]
        server.restart()
        assert value(await s.call_tool("echo", {"text": "after"})) == "after"
        assert s.reconnects == 1
        assert s.session.session._tool_output_validators["echo"] is compiled


async def test_one_connection_pool_for_every_rebuild_and_none_of_its_idle_connections(server: Any) -> None:
    """Every generation sends through the session's one HTTP connection pool (a new one costs its TLS
    context, about 18 ms a rebuild); a rebuilt session's ``initialize`` goes out on a new connection, not on
    one the lost session kept alive (answered about 40 ms late there under mcp 2.3); closing the session
    closes the pool."""
    seen: list[tuple[str, int]] = []

    def record(send: Any) -> Any:
        async def sending(request: Any) -> Any:
            response = await send(request)
            method = request.method
            if method == "POST":
                method = json.loads(request.content).get("method") or "answer"
            stream = response.extensions.get("network_stream")
            if stream is not None:
                seen.append((method, stream.get_extra_info("client_addr")[1]))
            return response

        return sending

    async with mcp_hooks.connect(server.url, heal=False, **SESSIONS) as s:
        assert value(await s.call_tool("echo", {"text": "a"})) == "a"
        pool = s._pool
        assert pool is not None
        pool.handle_async_request = record(pool.handle_async_request)  # every link's requests, as sent
        for round_ in range(3):
            assert value(await s.call_tool("echo", {"text": f"a{round_}"})) == f"a{round_}"
            lost_session = {port for _, port in seen}
            seen.clear()
            server.expire_sessions()  # the next call meets a 404 and the session is rebuilt
            assert value(await s.call_tool("echo", {"text": f"b{round_}"})) == f"b{round_}"
            assert s._pool is pool
            methods = [method for method, _ in seen]
            assert methods[:2] == ["tools/call", "initialize"], seen
            # the 404 is a whole JSON answer: its connection went back to the pool, idle and kept alive
            refused, rebuilt = seen[0][1], seen[1][1]
            assert rebuilt not in lost_session | {refused}, seen
            seen.clear()
        assert s.reconnects == 3
    assert s._pool is None
    assert not [c for c in pool._pool.connections if not c.is_closed()]
