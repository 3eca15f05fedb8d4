"""The fault-injecting MCP server and its controller, driven by the real MCP client of the installed SDK."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.metadata
import os
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kit_helpers import (
    INITIALIZE,
    MCP_MAJOR,
    OLD_PYTHON_SDK,
    TOOLS_LIST,
    check_stale_answer,
    code_and_message,
    is_error,
    open_session,
    pid_of,
    raw_post,
    raw_session,
    text_of,
)

from mcp_hooks.testing import STALE_STYLES, FaultServer, FaultServerError

if sys.version_info >= (3, 11):
    from builtins import BaseExceptionGroup
else:  # pragma: no cover - anyio's backport on 3.10
    from exceptiongroup import BaseExceptionGroup

pytest_plugins = ("pytester",)


needs_404_sdk = pytest.mark.skipif(OLD_PYTHON_SDK, reason="mcp <= 1.25 answers a stale session with 400")
_exceptions = importlib.import_module("mcp.shared.exceptions")
SDK_ERROR: type[Exception] = getattr(_exceptions, "MCPError", None) or _exceptions.McpError

# What a raw ClientSession raises for a lost session, per SDK major (research/mcp_sdk.md §9).
PYTHON_SESSION_LOSS = (32600, "Session terminated") if MCP_MAJOR == 1 else (-32600, "Session not found")


# --------------------------------------------------------------------------- helpers


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def shared_server() -> Iterator[FaultServer]:
    """One server for the tests that do not stop it (each resets the controls it sets)."""
    with FaultServer() as server:
        yield server


@pytest.fixture
def live_server(shared_server: FaultServer) -> Iterator[FaultServer]:
    shared_server.clear_controls()
    yield shared_server
    shared_server.clear_controls()


# --------------------------------------------------------------------------- tools


@pytest.mark.timeout(60)
async def test_tools_annotations_counters_and_tool_errors(mcp_fault_server: FaultServer) -> None:
    srv = mcp_fault_server
    async with open_session(srv.url) as session:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert set(tools) == {"echo", "incr", "put", "slow", "fail"}

        def hints(name: str) -> dict[str, Any]:
            ann = tools[name].annotations
            return {} if ann is None else ann.model_dump(by_alias=True, exclude_none=True)

        assert hints("echo") == {"readOnlyHint": True, "idempotentHint": True}
        assert tools["incr"].annotations is None
        assert hints("put") == {"readOnlyHint": False, "idempotentHint": True}
        assert hints("slow") == {"readOnlyHint": True}

        assert text_of(await session.call_tool("echo", {"text": "hi"})) == f"hi (pid {srv.pid})"
        assert text_of(await session.call_tool("incr", {})) == "1"
        assert text_of(await session.call_tool("incr", {"key": "default"})) == "2"
        assert text_of(await session.call_tool("incr", {"key": "other"})) == "1"
        assert text_of(await session.call_tool("put", {"key": "k", "value": "v"})) == "k=v"
        assert "slept" in text_of(await session.call_tool("slow", {"seconds": 0.05}))

        failed = await session.call_tool("fail", {"message": "boom"})
        assert is_error(failed)
        assert "boom" in text_of(failed)
        # a tool's own failure leaves the session and the process alive
        assert text_of(await session.call_tool("echo", {"text": "still"})).startswith("still")

    assert srv.executions("incr") == 3
    assert srv.executions("echo") == 2
    assert srv.executions("fail") == 1
    assert srv.executions() == 8
    assert srv.counter() == 2
    assert srv.counter("other") == 1
    assert srv.stored("k") == "v"
    assert srv.execution_pids("echo") == [srv.pid, srv.pid]


# --------------------------------------------------------------------------- restarts and expiry


@needs_404_sdk
@pytest.mark.timeout(60)
async def test_restart_loses_the_session_and_a_new_one_works(mcp_fault_server: FaultServer) -> None:
    srv = mcp_fault_server
    port = srv.port
    for round_, sig in enumerate((signal.SIGTERM, signal.SIGKILL), start=1):
        async with open_session(srv.url) as session:
            old_pid = pid_of(text_of(await session.call_tool("echo", {"text": "a"})))
            assert old_pid == srv.pid
            assert text_of(await session.call_tool("incr", {})) == str(round_)  # the counter survives
            srv.restart(sig=sig)
            assert srv.port == port
            assert srv.pid != old_pid
            with pytest.raises(SDK_ERROR) as caught:
                await session.call_tool("echo", {"text": "b"})
            assert code_and_message(caught.value) == PYTHON_SESSION_LOSS
            with pytest.raises(SDK_ERROR):  # the SDK never recovers by itself
                await session.call_tool("echo", {"text": "c"})
    async with open_session(srv.url) as session:
        assert pid_of(text_of(await session.call_tool("echo", {"text": "d"}))) == srv.pid
    assert srv.executions("echo") == 3  # the rejected calls never reached the tool
    assert srv.executions("incr") == 2


@needs_404_sdk
@pytest.mark.timeout(60)
async def test_expire_sessions_without_restart(live_server: FaultServer) -> None:
    srv = live_server
    pid, echoes = srv.pid, srv.executions("echo")
    async with open_session(srv.url) as session:
        await session.call_tool("echo", {"text": "a"})
        generation = srv.controls().get("expire_sessions", 0)
        assert srv.expire_sessions() == generation + 1
        with pytest.raises(SDK_ERROR) as caught:
            await session.call_tool("echo", {"text": "b"})
        assert code_and_message(caught.value) == PYTHON_SESSION_LOSS
    async with open_session(srv.url) as session:  # sessions issued after the expiry are fine
        assert pid_of(text_of(await session.call_tool("echo", {"text": "c"}))) == pid
    assert srv.pid == pid
    assert srv.executions("echo") == echoes + 2


# The client-side view of each foreign stale answer (research/mcp_sdk.md §4).
FOREIGN_SEEN_BY_2X = {
    "typescript": (-32001, "Session not found"),
    "ts-example": (-32000, "Bad Request: No valid session ID provided"),
    "go": (-32600, "Session terminated"),
    "bare-404": (-32600, "Session terminated"),
    "gone-410": (-32603, "Server returned an error response"),
    "old-python": (-32603, "Server returned an error response"),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("style", ["typescript", "go"])
async def test_expired_session_in_a_foreign_style_as_the_client_sees_it(live_server: FaultServer, style: str) -> None:
    srv = live_server
    srv.set_stale_style(style)
    async with open_session(srv.url) as session:
        await session.call_tool("echo", {"text": "a"})
        srv.expire_sessions()
        with pytest.raises(SDK_ERROR) as caught:
            await session.call_tool("echo", {"text": "b"})
        # 1.x ignores the body of any 404; 2.x surfaces a JSON body's code and message verbatim
        expected = (32600, "Session terminated") if MCP_MAJOR == 1 else FOREIGN_SEEN_BY_2X[style]
        assert code_and_message(caught.value) == expected


@pytest.mark.skipif(MCP_MAJOR < 2, reason="mcp.Client(mode=...) is the 2.x client")
@pytest.mark.timeout(60)
async def test_legacy_client_of_2x_sees_the_lost_session(live_server: FaultServer) -> None:
    from mcp import Client

    srv = live_server
    async with Client(srv.url, mode="legacy", read_timeout_seconds=10) as client:
        await client.call_tool("echo", {"text": "a"})
        srv.expire_sessions()
        with pytest.raises(SDK_ERROR) as caught:
            await client.call_tool("echo", {"text": "b"})
        assert code_and_message(caught.value) == (-32600, "Session not found")


@pytest.mark.skipif(MCP_MAJOR < 2, reason="the 2026-07-28 protocol is negotiated by the 2.x client")
@pytest.mark.timeout(60)
async def test_default_2x_client_has_no_session_to_lose(mcp_fault_server: FaultServer) -> None:
    from mcp import Client

    srv = mcp_fault_server
    async with Client(srv.url, read_timeout_seconds=10) as client:  # mode="auto": session-less
        first = pid_of(text_of(await client.call_tool("echo", {"text": "a"})))
        srv.restart()
        second = pid_of(text_of(await client.call_tool("echo", {"text": "b"})))
    assert first != second == srv.pid


@pytest.mark.skipif(not os.environ.get("MCP_FAULT_OTHER_PYTHON"), reason="set MCP_FAULT_OTHER_PYTHON")
@pytest.mark.timeout(60)
async def test_server_under_another_interpreter(mcp_fault_server_factory: Callable[..., FaultServer]) -> None:
    """E.g. MCP_FAULT_OTHER_PYTHON=/path/to/mcp1-venv/bin/python: this client, the other SDK's server."""
    srv = mcp_fault_server_factory(python=os.environ["MCP_FAULT_OTHER_PYTHON"])
    async with open_session(srv.url) as session:
        assert pid_of(text_of(await session.call_tool("echo", {"text": "a"}))) == srv.pid
        srv.restart()
        with pytest.raises(SDK_ERROR) as caught:
            await session.call_tool("echo", {"text": "b"})
    assert "Session" in code_and_message(caught.value)[1]


@pytest.mark.timeout(60)
async def test_stateless_server_has_no_session_to_lose(mcp_fault_server_factory: Callable[..., FaultServer]) -> None:
    srv = mcp_fault_server_factory(stateless=True, stale_style="typescript")
    async with open_session(srv.url) as session:
        first = pid_of(text_of(await session.call_tool("echo", {"text": "a"})))
        srv.restart()
        second = pid_of(text_of(await session.call_tool("echo", {"text": "b"})))
    assert first != second == srv.pid


@pytest.mark.timeout(60)
def test_sdk_idle_timeout_and_the_command_line_style(mcp_fault_server_factory: Callable[..., FaultServer]) -> None:
    srv = mcp_fault_server_factory(idle_timeout=0.4, stale_style="gone-410")
    check_stale_answer("gone-410", *raw_post(srv.url, TOOLS_LIST, session_id="bogus")[:3])
    quiet = raw_session(srv.url)
    busy = raw_session(srv.url)
    deadline = time.monotonic() + 0.9
    while time.monotonic() < deadline:  # keep one session busy, let the other idle out
        assert raw_post(srv.url, TOOLS_LIST, session_id=busy)[0] == 200
        time.sleep(0.2)
    # the SDK expired the quiet session; its 404 is answered in the configured style
    check_stale_answer("gone-410", *raw_post(srv.url, TOOLS_LIST, session_id=quiet)[:3])
    assert raw_post(srv.url, TOOLS_LIST, session_id=busy)[0] == 200
    srv.set_stale_style("python")  # the control file wins over the command line...
    check_stale_answer("python", *raw_post(srv.url, TOOLS_LIST, session_id=quiet)[:3])
    srv.clear_controls()  # ...until cleared
    check_stale_answer("gone-410", *raw_post(srv.url, TOOLS_LIST, session_id=quiet)[:3])


# --------------------------------------------------------------------------- stale styles on the wire


@pytest.mark.timeout(60)
@pytest.mark.parametrize("style", STALE_STYLES)
def test_stale_style_on_the_wire(live_server: FaultServer, style: str) -> None:
    srv = live_server
    srv.set_stale_style(style)
    # an id this process never issued (what a client holds after a restart)
    status, content_type, body, _ = raw_post(srv.url, TOOLS_LIST, session_id="never-issued-0123")
    check_stale_answer(style, status, content_type, body)
    # a live session is untouched; once expired it gets the very same answer, for POST and DELETE
    session_id = raw_session(srv.url)
    assert raw_post(srv.url, TOOLS_LIST, session_id=session_id)[0] == 200
    srv.expire_sessions()
    for method in ("POST", "DELETE"):
        status, content_type, body, _ = raw_post(srv.url, TOOLS_LIST, session_id=session_id, method=method)
        check_stale_answer(style, status, content_type, body)
    # requests without a session id are not stale
    assert raw_post(srv.url, INITIALIZE)[0] == 200


@pytest.mark.timeout(60)
def test_deleted_session_is_stale(live_server: FaultServer) -> None:
    srv = live_server
    session_id = raw_session(srv.url)
    assert raw_post(srv.url, {}, session_id=session_id, method="DELETE")[0] == 200
    srv.set_stale_style("go")
    status, content_type, body, _ = raw_post(srv.url, TOOLS_LIST, session_id=session_id)
    check_stale_answer("go", status, content_type, body)


# --------------------------------------------------------------------------- kills


@pytest.mark.timeout(60)
async def test_kill_after_the_call_ran(mcp_fault_server: FaultServer) -> None:
    srv = mcp_fault_server
    started = time.monotonic()
    async with open_session(srv.url, read_timeout=1.5) as session:
        await session.call_tool("echo", {"text": "a"})
        srv.kill_during_next_call("incr", when="after")
        assert srv.kill_armed
        with pytest.raises(SDK_ERROR) as caught:
            await session.call_tool("incr", {})
    if MCP_MAJOR == 1:  # 1.x never fails the call on its own: only the read timeout ends it
        assert code_and_message(caught.value) == (
            408,
            "Timed out while waiting for response to ClientRequest. Waited 1.5 seconds.",
        )
    else:
        assert code_and_message(caught.value) == (-32000, "SSE stream ended without a response")
    assert srv.wait_exit(timeout=10) == -signal.SIGKILL
    assert not srv.kill_armed  # one-shot
    assert srv.executions("incr") == 1  # the write happened although the answer was lost
    assert srv.counter() == 1
    assert time.monotonic() - started < 10
    srv.restart()
    async with open_session(srv.url) as session:
        assert text_of(await session.call_tool("incr", {})) == "2"  # not armed any more


@pytest.mark.timeout(60)
async def test_json_response_kill_before_the_call_ran_and_restart(
    mcp_fault_server_factory: Callable[..., FaultServer],
) -> None:
    srv = mcp_fault_server_factory(json_response=True)
    with pytest.raises(BaseExceptionGroup) as caught:  # the group comes out of the async with
        async with open_session(srv.url) as session:
            await session.call_tool("echo", {"text": "a"})
            srv.kill_during_next_call(when="before")
            await session.call_tool("incr", {})  # cancelled by the transport's teardown
    # no response headers were sent: the transport crashes (both majors), research/mcp_sdk.md §3.3
    assert [type(e).__name__ for e in caught.value.exceptions] == ["RemoteProtocolError"]
    assert srv.wait_exit(timeout=10) == -signal.SIGKILL
    assert srv.executions("incr") == 0
    assert srv.counter() == 0
    if OLD_PYTHON_SDK:
        return
    # the same restart behaviour as with SSE responses
    srv.start()
    async with open_session(srv.url) as session:
        await session.call_tool("echo", {"text": "b"})
        srv.restart()
        with pytest.raises(SDK_ERROR) as caught_loss:
            await session.call_tool("echo", {"text": "c"})
    assert code_and_message(caught_loss.value) == PYTHON_SESSION_LOSS


@pytest.mark.timeout(60)
async def test_kill_armed_for_another_tool_and_cleared(live_server: FaultServer) -> None:
    srv = live_server
    async with open_session(srv.url) as session:
        srv.kill_during_next_call("incr")
        await session.call_tool("echo", {"text": "not incr"})
        assert srv.kill_armed
        srv.clear_controls()
        assert not srv.kill_armed
        assert text_of(await session.call_tool("incr", {"key": "disarmed"})) == "1"
    assert srv.running


@pytest.mark.timeout(60)
async def test_delay(live_server: FaultServer) -> None:
    srv = live_server
    async with open_session(srv.url) as session:
        srv.delay("echo", 0.4)
        started = time.monotonic()
        await session.call_tool("incr", {"key": "undelayed"})
        assert time.monotonic() - started < 0.4
        started = time.monotonic()
        await session.call_tool("echo", {"text": "slow"})
        assert time.monotonic() - started >= 0.4
        srv.delay("echo", 0)
        started = time.monotonic()
        await session.call_tool("echo", {"text": "fast"})
        assert time.monotonic() - started < 0.4


# --------------------------------------------------------------------------- lifecycle


@pytest.mark.timeout(60)
def test_stop_start_kill_and_down(mcp_fault_server: FaultServer) -> None:
    srv = mcp_fault_server
    port = srv.port
    assert srv.stop() == 0  # graceful SIGTERM shutdown exits 0
    assert not srv.running
    assert srv.stop() is None  # nothing left to stop
    with pytest.raises(urllib.error.URLError) as refused:
        raw_post(srv.url, INITIALIZE)
    assert isinstance(refused.value.reason, ConnectionRefusedError)
    srv.start()
    assert srv.port == port
    assert raw_post(srv.url, INITIALIZE)[0] == 200
    with pytest.raises(FaultServerError, match="already running"):
        srv.start()
    assert srv.kill() == -signal.SIGKILL
    srv.restart(down_for=0.1)
    assert srv.running
    assert raw_post(srv.url, INITIALIZE)[0] == 200


@pytest.mark.timeout(60)
def test_start_failure_reports_the_server_log(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        srv = FaultServer(port=taken.getsockname()[1], state_dir=tmp_path)
        with pytest.raises(FaultServerError, match="cannot bind"):
            srv.start()
        assert not srv.running
    assert (tmp_path / "server.log").exists()  # a caller's state dir is kept


def test_controller_validates_its_arguments() -> None:
    with pytest.raises(ValueError, match="stale_style"):
        FaultServer(stale_style="php")
    with pytest.raises(ValueError, match="transport"):
        FaultServer(transport="sse")  # type: ignore[arg-type]
    srv = FaultServer(transport="stdio")
    try:
        with pytest.raises(FaultServerError, match="stdio"):
            srv.start()
        with pytest.raises(ValueError, match="when"):
            srv.kill_during_next_call(when="during")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="style"):
            srv.set_stale_style("php")
    finally:
        srv.close()
    assert not srv.state_dir.exists()
    with pytest.raises(FaultServerError, match="transport='stdio'"):
        FaultServer().stdio_parameters()


# --------------------------------------------------------------------------- stdio


@pytest.mark.timeout(60)
async def test_stdio_transport(mcp_stdio_fault_server: FaultServer) -> None:
    from mcp import ClientSession
    from mcp.client.stdio import stdio_client

    srv = mcp_stdio_fault_server
    params = srv.stdio_parameters()
    assert params.args[:2] == ["-m", "mcp_hooks.testing.server"]
    async with stdio_client(srv.stdio_server_parameters()) as streams, ClientSession(streams[0], streams[1]) as session:
        await session.initialize()
        echoed = text_of(await session.call_tool("echo", {"text": "over stdio"}))
        assert text_of(await session.call_tool("incr", {})) == "1"
        assert text_of(await session.call_tool("incr", {})) == "2"
        assert pid_of(echoed) == srv.pid  # read from the state dir: the client spawned it
        srv.delay("echo", 0.3)  # controls work over stdio too
        started = time.monotonic()
        await session.call_tool("echo", {"text": "late"})
        assert time.monotonic() - started >= 0.3
        srv.kill_during_next_call("incr")  # SIGKILL over stdio: the client sees its pipe close
        with pytest.raises(SDK_ERROR) as caught:
            await session.call_tool("incr", {})
        assert code_and_message(caught.value) == (-32000, "Connection closed")
    assert srv.executions("incr") == 3
    assert srv.counter() == 3


# --------------------------------------------------------------------------- the pytest plugin


def test_pytest_plugin_fixtures_stop_their_servers(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(
        """
        import os
        import pytest

        @pytest.mark.mcp_fault_server(stale_style="go")
        def test_fails_on_purpose(mcp_fault_server, mcp_fault_server_factory, mcp_stdio_fault_server):
            assert mcp_fault_server.running and mcp_fault_server.stale_style == "go"
            assert mcp_stdio_fault_server.transport == "stdio"
            with open(os.environ["PIDS_FILE"], "w") as fh:
                fh.write(f"{mcp_fault_server.pid} {mcp_fault_server.state_dir} {mcp_stdio_fault_server.state_dir}")
            assert False, "on purpose"
        """
    )
    pids_file = pytester.path / "pids.txt"
    monkeypatch.setenv("PIDS_FILE", str(pids_file))
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:asyncio")
    result.assert_outcomes(failed=1)
    # the failure report carries the tail of the server's log
    result.stdout.fnmatch_lines(["*mcp fault server log*", "*listening on http://127.0.0.1:*"])
    pid, http_dir, stdio_dir = pids_file.read_text().split()
    with pytest.raises(ProcessLookupError):  # stopped at teardown
        os.kill(int(pid), 0)
    assert not Path(http_dir).exists()
    assert not Path(stdio_dir).exists()


@pytest.mark.timeout(60)
async def test_revive_when_dead_and_executions_from_now(mcp_shared_fault_server: FaultServer) -> None:
    srv = mcp_shared_fault_server
    async with open_session(srv.url) as session:
        await session.call_tool("echo", {"text": "before"})
    ran = srv.executions_from_now()
    assert ran() == 0 and ran("echo") == 0
    old_pid = srv.pid
    srv.kill_during_next_call("incr", when="after")
    reviver = srv.revive_when_dead(timeout=20)
    lost = open_session(srv.url, read_timeout=1.5)
    session = await lost.__aenter__()
    with pytest.raises(SDK_ERROR):
        await session.call_tool("incr", {"key": "revive"})
    await asyncio.to_thread(reviver.join, 30)
    assert not reviver.is_alive()
    with contextlib.suppress(Exception):  # the dead session's teardown, not under test here
        await lost.__aexit__(None, None, None)
    assert srv.running and srv.pid != old_pid  # a new process on the same port
    async with open_session(srv.url) as session:
        assert "pid" in text_of(await session.call_tool("echo", {"text": "after"}))
    assert ran("incr") == 1  # the killed call ran once; the counter ignores what came before
    assert ran("echo") == 1
    assert ran() == 2


def test_shared_server_is_handed_over_running_and_disarmed(mcp_shared_fault_server: FaultServer) -> None:
    # The previous test left it on a revived process; arm something and check the next test gets it clean.
    assert mcp_shared_fault_server.running
    assert not mcp_shared_fault_server.kill_armed
    mcp_shared_fault_server.kill_during_next_call("echo")
    assert mcp_shared_fault_server.kill_armed
    mcp_shared_fault_server.stop()


def test_shared_server_is_started_again_for_the_next_test(mcp_shared_fault_server: FaultServer) -> None:
    assert mcp_shared_fault_server.running
    assert not mcp_shared_fault_server.kill_armed
