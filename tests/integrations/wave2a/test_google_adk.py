"""google-adk 2.13 (``McpToolset``, mcp 1.x or 2.x; run under the newest of each) against a real MCP server
that restarts or dies mid-call, without and with ``mcp_hooks.instrument("mcp")``.

The tool path is ADK's own: ``Runner.run_async`` -> ``LlmAgent`` -> ``McpToolset.get_tools`` (the tools
are listed on the pooled session at every run) -> ``McpTool.run_async`` -> ``_run_async_impl`` ->
``ClientSession.call_tool`` on the session ``MCPSessionManager`` pools (a ``SessionContext`` task owns
its transport). With the graceful flag (the default) an ``McpError`` becomes ``{"error": ...}`` for
the model. ADK drops a pooled session only on mcp 1.x's exact wording ("Session terminated"); under
mcp 2.x ("Session not found") it keeps the dead one; under mcp 1.x its own recovery makes the next turn
work, but a call lost in flight still waits for the SDK's read timeout (5 minutes by ADK's default). The
model is scripted (``benchmarks/frameworks/adk_agent.py``): it asks for the given tool calls in one turn
(ADK runs them in parallel) and ends when the answers are in.
"""

from __future__ import annotations

import asyncio
import signal
import time
from importlib.metadata import version
from typing import Any

import pytest
from wave2a_support import (
    SETTLE_SECONDS,
    UNCERTAIN,
    RebuildCounter,
    arm_lost_write,
    needs_healing,
    pid_in,
    restart_under,
    still_pending_after,
    wait_until,
)

pytest.importorskip("google.adk.tools.mcp_tool")

from benchmarks.frameworks.adk_agent import agent, text_of
from mcp_hooks.testing import FaultServer

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.filterwarnings("ignore::UserWarning"),
    # fastmcp 4 (agno's client, in the same environment) warns when anyone reads the SDK 1.x field names
    # on mcp.types.Tool, as ADK 2.13 does when it converts the tools for the model
    pytest.mark.filterwarnings("ignore:Accessing `Tool\\.:Warning"),
]

MCP_MAJOR = int(version("mcp").split(".")[0])


@pytest.fixture
def srv(mcp_fault_server_factory: Any) -> FaultServer:
    """The kit's server with sessions under either mcp major (a legacy handshake, as ADK makes)."""
    server: FaultServer = mcp_fault_server_factory(legacy_only=True)
    return server


# --- without the healing layer: what users of google-adk get today -----------------------------------------


@pytest.mark.skipif(MCP_MAJOR < 2, reason="mcp 1.x's wording is the one ADK matches (next test)")
async def test_baseline_after_a_restart_the_agent_has_no_tools_for_good(no_healing: None, srv: FaultServer) -> None:
    async with agent(srv.url) as a:
        (first,) = await a.call(("echo", {"text": "before"}))
        assert text_of(first).startswith("before (pid ")
        srv.restart(signal.SIGKILL)
        for attempt in range(2):  # the server is back: every run still lists tools on the dead session
            (answer,) = await asyncio.wait_for(a.call(("echo", {"text": f"after {attempt}"})), 30)
            assert "error" in answer and "no tool with that name" in answer["error"], answer
            assert a.model.offered[-1] == []
    assert srv.executions("echo") == 1


@pytest.mark.skipif(MCP_MAJOR >= 2, reason="under mcp 2.x ADK keeps the dead session (previous test)")
async def test_baseline_mcp1_adk_recovers_the_next_turn_itself(no_healing: None, srv: FaultServer) -> None:
    """Under mcp 1.x, listing the tools on the dead session raises "Session terminated", which ADK's
    ``retry_on_errors`` answers with a fresh session: the next turn works without mcp-hooks."""
    async with agent(srv.url) as a:
        (first,) = await a.call(("echo", {"text": "before"}))
        srv.restart(signal.SIGKILL)
        (after,) = await asyncio.wait_for(a.call(("echo", {"text": "after"})), 30)
        assert text_of(after).startswith("after (pid ")
        assert pid_in(text_of(after)) == srv.pid != pid_in(text_of(first))


@pytest.mark.skipif(MCP_MAJOR >= 2, reason="the mcp 1.x SDK waits for an answer lost in flight")
async def test_baseline_mcp1_a_write_lost_in_flight_leaves_the_turn_waiting(no_healing: None, srv: FaultServer) -> None:
    """ADK's own recovery cannot help a call already sent: the turn is still unanswered seconds after the
    server came back (it would wait for ADK's 5-minute read timeout)."""
    async with agent(srv.url) as a:
        await a.call(("echo", {"text": "warm up"}))
        back = arm_lost_write(srv)
        assert await still_pending_after(a.call(("incr", {"key": "adk-alone"})))
        back.join(30)
        (read,) = await asyncio.wait_for(a.call(("echo", {"text": "next"})), 30)
        assert text_of(read).startswith("next (pid ")
    assert srv.executions("incr") == 1


# --- with the healing layer ------------------------------------------------------------------------------


@needs_healing
async def test_next_call_answers_after_a_restart(healing: None, rebuilds: RebuildCounter, srv: FaultServer) -> None:
    async with agent(srv.url) as a:
        (first,) = await a.call(("echo", {"text": "before"}))
        await restart_under(srv)
        started = time.monotonic()
        (after,) = await asyncio.wait_for(a.call(("echo", {"text": "after"})), 30)
        elapsed = time.monotonic() - started
        assert text_of(after).startswith("after (pid ")
        assert pid_in(text_of(after)) == srv.pid != pid_in(text_of(first))
        (again,) = await a.call(("echo", {"text": "again"}))
        assert text_of(again).startswith("again (pid ")
    print(f"[google-adk] first agent turn after the restart answered in {elapsed * 1000:.0f} ms")
    assert rebuilds.count == 1, rebuilds


@needs_healing
async def test_20_parallel_tool_calls_across_a_kill_all_answer_with_one_rebuild(
    healing: None, rebuilds: RebuildCounter, srv: FaultServer
) -> None:
    """One model turn asking for 20 read-only calls (ADK runs them in parallel), all running on the
    server when it is SIGKILLed."""
    async with agent(srv.url) as a:
        await a.call(("echo", {"text": "warm up"}))
        turn = asyncio.ensure_future(a.call(*[("slow", {"seconds": 2.0})] * 20))
        await wait_until(lambda: srv.executions("slow") >= 20, "the 20 calls to reach the server")
        await restart_under(srv)
        answers = await asyncio.wait_for(turn, 60)
    assert len(answers) == 20
    assert all(text_of(a).startswith("slept 2.0 s (pid ") for a in answers), answers
    assert {pid_in(text_of(a)) for a in answers} == {srv.pid}
    assert srv.executions("slow") == 40  # each killed in flight, each replayed once (read-only)
    assert rebuilds.count == 1, rebuilds


@needs_healing
async def test_a_write_lost_in_flight_runs_once_and_the_model_reads_uncertain(
    healing: None, rebuilds: RebuildCounter, srv: FaultServer
) -> None:
    """ADK's own recovery never adds a second write (it never replays), and it keeps the session, which is
    healed: the next call answers on it."""
    async with agent(srv.url) as a:
        await a.call(("echo", {"text": "warm up"}))
        back = arm_lost_write(srv)
        (lost,) = await asyncio.wait_for(a.call(("incr", {"key": "adk-w"})), SETTLE_SECONDS)
        back.join(30)
        assert isinstance(lost, dict) and UNCERTAIN in lost.get("error", ""), lost
        assert "check whether the action took effect" in lost["error"]
        (read,) = await asyncio.wait_for(a.call(("echo", {"text": "next"})), 30)
        assert text_of(read).startswith("next (pid ")
    assert srv.executions("incr") == 1
    assert rebuilds.count == 1, rebuilds


@needs_healing
async def test_a_read_only_call_lost_in_flight_is_replayed(
    healing: None, rebuilds: RebuildCounter, srv: FaultServer
) -> None:
    async with agent(srv.url) as a:
        await a.call(("echo", {"text": "warm up"}))
        back = arm_lost_write(srv, tool="echo")
        (answer,) = await asyncio.wait_for(a.call(("echo", {"text": "lost"})), SETTLE_SECONDS)
        back.join(30)
        assert text_of(answer).startswith("lost (pid ")
    assert srv.executions("echo") == 3  # warm up, the lost run, the replay


@needs_healing
async def test_the_tools_offered_to_the_model_follow_a_restart_that_changed_them(
    healing: None, srv: FaultServer
) -> None:
    async with agent(srv.url) as a:
        await a.call(("echo", {"text": "warm up"}))
        assert "extra" not in a.model.offered[-1]
        srv.offer_extra_tool(True)
        await restart_under(srv)
        (answer,) = await asyncio.wait_for(a.call(("extra", {})), 30)
        assert "extra" in a.model.offered[-1]
        assert text_of(answer).startswith("extra (pid ")
