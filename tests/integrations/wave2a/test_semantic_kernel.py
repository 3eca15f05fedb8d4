"""semantic-kernel 1.x (``semantic_kernel.connectors.mcp``, mcp 1.x only) against a real MCP server that
restarts or dies mid-call, without and with ``mcp_hooks.instrument("mcp")``.

The tool path is the one SK's auto function calling runs for a model's tool call:
``Kernel.invoke_function_call(FunctionCallContent, chat_history)`` (semantic_kernel/kernel.py) runs the
auto-function-invocation filters around ``KernelFunction.invoke``; the kernel function is
``partial(plugin.call_tool, tool_name)`` bound at ``load_tools`` (``MCPPluginBase.call_tool``,
semantic_kernel/connectors/mcp.py), which awaits ``self.session.call_tool``. An exception becomes the
function result "An error occurred while invoking the function <plugin-tool>: <message>", appended to the
chat history for the model. SK's parallel function calling runs these with ``asyncio.gather``.
``kernel.invoke(...)`` (a direct call) raises instead.

``MCPStreamableHttpPlugin`` enters the SDK's deprecated ``streamablehttp_client`` (a name SK imported at
module load) and the ``ClientSession`` in a task of its own (``_inner_connect``), parked until ``close()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from wave2a_support import (
    SDK_DEPRECATION,
    SETTLE_SECONDS,
    UNCERTAIN,
    RebuildCounter,
    arm_lost_write,
    child_script,
    error_words,
    needs_healing,
    pid_in,
    restart_under,
    run_child,
    still_pending_after,
    wait_until,
)

pytest.importorskip("semantic_kernel.connectors.mcp")

from semantic_kernel import Kernel
from semantic_kernel.connectors.mcp import MCPStreamableHttpPlugin
from semantic_kernel.contents import ChatHistory, FunctionCallContent

from mcp_hooks.testing import FaultServer

pytestmark = [pytest.mark.timeout(120), SDK_DEPRECATION]

ERROR_PREFIX = "An error occurred while invoking the function kit-"


@contextlib.asynccontextmanager
async def kernel_with_plugin(url: str) -> AsyncIterator[Kernel]:
    kernel = Kernel()
    async with MCPStreamableHttpPlugin(name="kit", url=url) as plugin:
        kernel.add_plugin(plugin)
        yield kernel


async def auto_call(kernel: Kernel, name: str, **args: Any) -> str:
    """What SK's auto function calling does with a model's tool call; the text the model then reads."""
    history = ChatHistory()
    call = FunctionCallContent(id=f"call_{uuid.uuid4().hex[:8]}", name=f"kit-{name}", arguments=json.dumps(args))
    await kernel.invoke_function_call(call, history)
    result = history.messages[-1].items[0].result
    if isinstance(result, list):
        return "".join(str(getattr(item, "text", item)) for item in result)
    return str(result)


def ok(answer: str) -> str:
    assert not answer.startswith(ERROR_PREFIX), answer
    return answer


# --- without the healing layer: what users of semantic-kernel get today --------------------------------------


async def test_baseline_every_call_fails_after_a_restart(no_healing: None, mcp_fault_server: FaultServer) -> None:
    srv = mcp_fault_server
    async with kernel_with_plugin(srv.url) as kernel:
        ok(await auto_call(kernel, "echo", text="before"))
        srv.restart(signal.SIGKILL)
        for attempt in range(2):  # the server is back: every call still fails, on the dead session
            answer = await asyncio.wait_for(auto_call(kernel, "echo", text=f"after {attempt}"), 20)
            assert answer == f"{ERROR_PREFIX}echo: Session terminated"
        # a direct kernel.invoke raises
        with pytest.raises(Exception) as failed:
            await kernel.invoke(plugin_name="kit", function_name="echo", text="direct")
        assert "Session terminated" in error_words(failed.value)
    assert srv.executions("echo") == 1


async def test_baseline_a_write_lost_in_flight_is_left_waiting(no_healing: None, mcp_fault_server: FaultServer) -> None:
    """mcp 1.x does not settle a request whose connection died: the function call waits for the read
    timeout (the SDK's default: 300 s) although the server is back."""
    srv = mcp_fault_server
    async with kernel_with_plugin(srv.url) as kernel:
        ok(await auto_call(kernel, "echo", text="warm up"))
        back = arm_lost_write(srv)
        assert await still_pending_after(auto_call(kernel, "incr", key="w"))
        back.join(30)
    assert srv.executions("incr") == 1


# --- with the healing layer ------------------------------------------------------------------------------


@needs_healing
async def test_next_call_answers_after_a_restart(
    healing: None, rebuilds: RebuildCounter, mcp_fault_server: FaultServer
) -> None:
    srv = mcp_fault_server
    async with kernel_with_plugin(srv.url) as kernel:
        first = ok(await auto_call(kernel, "echo", text="before"))
        await restart_under(srv)
        started = time.monotonic()
        after = ok(await asyncio.wait_for(auto_call(kernel, "echo", text="after"), 20))
        elapsed = time.monotonic() - started
        assert after.startswith("after (pid ")
        assert pid_in(after) == srv.pid != pid_in(first)
        direct = await kernel.invoke(plugin_name="kit", function_name="echo", text="direct")
        assert direct is not None and "direct (pid " in str(direct)
    print(f"[semantic-kernel] first call after the restart answered in {elapsed * 1000:.0f} ms")
    assert rebuilds.count == 1, rebuilds


@needs_healing
async def test_20_parallel_function_calls_across_a_kill_all_answer_with_one_rebuild(
    healing: None, rebuilds: RebuildCounter, mcp_fault_server: FaultServer
) -> None:
    """SK's parallel function calling (a ``gather`` of ``invoke_function_call``) with 20 read-only calls
    running on the server when it is SIGKILLed."""
    srv = mcp_fault_server
    async with kernel_with_plugin(srv.url) as kernel:
        ok(await auto_call(kernel, "echo", text="warm up"))
        calls = [asyncio.ensure_future(auto_call(kernel, "slow", seconds=2.0)) for _ in range(20)]
        await wait_until(lambda: srv.executions("slow") >= 20, "the 20 calls to reach the server")
        await restart_under(srv)
        answers = await asyncio.wait_for(asyncio.gather(*calls), 60)
    assert all(a.startswith("slept 2.0 s (pid ") for a in answers), answers
    assert {pid_in(a) for a in answers} == {srv.pid}
    assert srv.executions("slow") == 40  # each killed in flight, each replayed once (read-only)
    assert rebuilds.count == 1, rebuilds


@needs_healing
async def test_a_write_lost_in_flight_runs_once_and_says_outcome_uncertain(
    healing: None, rebuilds: RebuildCounter, mcp_fault_server: FaultServer
) -> None:
    srv = mcp_fault_server
    async with kernel_with_plugin(srv.url) as kernel:
        ok(await auto_call(kernel, "echo", text="warm up"))
        back = arm_lost_write(srv)
        started = time.monotonic()
        answer = await asyncio.wait_for(auto_call(kernel, "incr", key="w"), SETTLE_SECONDS)
        elapsed = time.monotonic() - started
        back.join(30)
        assert answer.startswith(f"{ERROR_PREFIX}incr: {UNCERTAIN}"), answer  # what the model reads
        assert srv.executions("incr") == 1
        assert srv.counter("w") == 1
        assert ok(await asyncio.wait_for(auto_call(kernel, "echo", text="next"), 20)).startswith("next (pid ")
        assert ok(await auto_call(kernel, "incr", key="w")) == "2"
    assert srv.executions("incr") == 2
    print(f"[semantic-kernel] the lost write settled as outcome uncertain in {elapsed:.2f} s")
    assert elapsed < SETTLE_SECONDS
    assert rebuilds.count == 1, rebuilds


@needs_healing
def test_instrument_before_the_framework_is_imported() -> None:
    out = run_child(
        child_script(
            ("semantic_kernel", "semantic_kernel.connectors.mcp"),
            """
            from semantic_kernel.connectors.mcp import MCPStreamableHttpPlugin

            async def main():
                with FaultServer() as srv:
                    async with MCPStreamableHttpPlugin(name="kit", url=srv.url) as plugin:
                        await plugin.call_tool("echo", text="before")
                        await asyncio.to_thread(srv.restart, signal.SIGKILL)
                        contents = await asyncio.wait_for(plugin.call_tool("echo", text="after"), 20)
                        print("ANSWER", contents[0].text, "SERVER", srv.pid)

            asyncio.run(main())
            """,
        )
    )
    line = next(line for line in out.splitlines() if line.startswith("ANSWER "))
    answer, server_pid = line[len("ANSWER ") :].rsplit(" SERVER ", 1)
    assert answer.startswith("after (pid ") and pid_in(answer) == int(server_pid)
