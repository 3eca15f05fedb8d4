"""The shim as an integration: found through its entry point, idempotent, reversible, version-gated."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import subprocess
import sys
import textwrap
from typing import Any

import mcp_hooks_openai_agents
import pytest
import wrapt
from mcp_hooks_openai_agents import _owner
from oa_support import FRAMEWORK_WARNINGS, MCP_V2, Target, invoke, text, wait_until_async

import mcp_hooks

pytestmark = [pytest.mark.timeout(90), FRAMEWORK_WARNINGS]

WRAPPED = [
    ("_MCPServerWithClientSession", "call_tool"),
    ("MCPServerStreamableHttp", "call_tool"),
    ("_MCPServerWithClientSession", "list_tools"),
    ("_MCPServerWithClientSession", "connect"),
    ("_MCPServerWithClientSession", "cleanup"),
    ("MCPServerStreamableHttp", "create_streams"),
    ("MCPServerStreamableHttp", "_isolated_client_session"),
]


def _originals() -> dict[tuple[str, str], Any]:
    import agents.mcp.server as module

    return {(cls, name): vars(getattr(module, cls))[name] for cls, name in WRAPPED}


def test_found_through_its_entry_point() -> None:
    found = mcp_hooks.integrations()
    assert found["openai-agents"] is mcp_hooks_openai_agents.mcp_hooks_integration
    assert "openai-agents" in dict(mcp_hooks.plugin_manager().list_name_plugin())


def test_instrument_twice_wraps_once_and_uninstrument_restores_exactly(no_shim: None) -> None:
    integration = mcp_hooks_openai_agents.mcp_hooks_integration
    originals = _originals()
    assert not any(isinstance(v, wrapt.FunctionWrapper) for v in originals.values())
    try:
        assert integration.instrument() is True
        first = _originals()
        assert all(isinstance(v, wrapt.FunctionWrapper) for v in first.values())
        assert all(first[key].__wrapped__ is originals[key] for key in WRAPPED)
        assert integration.instrument() is True  # again: nothing more is wrapped
        assert _originals() == first
        assert mcp_hooks.instrument("openai-agents") == {"openai-agents": True}
        assert all(_originals()[key] is first[key] for key in WRAPPED)
    finally:
        integration.uninstrument()
    restored = _originals()
    assert all(restored[key] is originals[key] for key in WRAPPED)
    integration.uninstrument()  # twice is fine
    assert all(_originals()[key] is originals[key] for key in WRAPPED)


@pytest.mark.parametrize("version", [None, "0.23.9", "1.0.0"], ids=["missing", "too-old", "too-new"])
def test_steps_aside_with_one_log_line(
    no_shim: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, version: str | None
) -> None:
    integration = mcp_hooks_openai_agents.mcp_hooks_integration
    originals = _originals()
    monkeypatch.setattr(integration, "framework_version", lambda: version)
    monkeypatch.setattr(integration, "why_not", None)
    with caplog.at_level(logging.INFO, logger="mcp_hooks"):
        assert integration.instrument() is False
        assert integration.instrument() is False
    lines = [r.getMessage() for r in caplog.records if "steps aside" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "openai-agents" in lines[0]
    assert integration.enabled is False
    assert all(_originals()[key] is originals[key] for key in WRAPPED)


def test_configure_checks_its_options(shim: Any) -> None:
    with pytest.raises(TypeError, match="unknown option"):
        mcp_hooks_openai_agents.configure(retries=3)
    with pytest.raises(ValueError, match="max_reconnects"):
        mcp_hooks_openai_agents.configure(max_reconnects=-1)
    mcp_hooks_openai_agents.configure(max_reconnects=5, deadline=10)
    import agents.mcp.server as module

    wrapper = vars(module._MCPServerWithClientSession)["call_tool"]
    assert wrapper._self_mcp_hooks_handle.options["max_reconnects"] == 5


def test_patched_when_agents_is_imported_after_instrument() -> None:
    """``instrument()`` before ``import agents``: the targets are wrapped as the module is imported."""
    code = textwrap.dedent(
        """
        import json, sys, wrapt, mcp_hooks
        assert "agents" not in sys.modules
        on = mcp_hooks.instrument("openai-agents")
        import agents.mcp.server as s
        names = [("_MCPServerWithClientSession", "call_tool"), ("MCPServerStreamableHttp", "call_tool"),
                 ("_MCPServerWithClientSession", "connect"), ("_MCPServerWithClientSession", "cleanup")]
        print(json.dumps({"on": on, "wrapped": [isinstance(vars(getattr(s, c))[n], wrapt.FunctionWrapper)
                                                for c, n in names]}))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"on": {"openai-agents": True}, "wrapped": [True, True, True, True]}


async def test_tools_built_before_instrument_recover(no_shim: None, target: Target) -> None:
    """``MCPUtil.to_function_tool`` binds ``invoke_mcp_tool`` early; it looks ``server.call_tool`` up on
    every call, so a FunctionTool made before ``instrument()`` recovers too."""
    if target.session_less:
        pytest.skip("mcp 2.x over HTTP is session-less: a restart is invisible")
    from agents.mcp.util import MCPUtil
    from agents.tool_context import ToolContext

    server = target.server()
    tools = []
    integration = mcp_hooks_openai_agents.mcp_hooks_integration
    try:
        async with server:
            for spec in await server.list_tools():
                if spec.name == "echo":
                    tools.append(MCPUtil.to_function_tool(spec, server, convert_schemas_to_strict=False))
            (echo,) = tools
            assert integration.instrument()
            await server.cleanup()  # reconnect under the shim, as an application that instruments late would
            await server.connect()
            target.restart()
            context = ToolContext(
                context=None, tool_name="echo", tool_call_id="call_1", tool_arguments=json.dumps({"text": "late"})
            )
            output = await echo.on_invoke_tool(context, json.dumps({"text": "late"}))
            assert text(output).startswith("late (pid ")
            assert mcp_hooks_openai_agents.reconnect_count(server) == 1
    finally:
        integration.uninstrument()


async def test_server_connected_before_instrument(no_shim: None, target: Target, caplog: Any) -> None:
    """mcp 2.x: recovered like any other. mcp 1.x: its transport belongs to the task that connected it,
    and closing it from elsewhere would make anyio cancel that task; the shim leaves it alone (one
    warning) and the call fails as it would without the shim, with this task unharmed."""
    if target.session_less:
        pytest.skip("mcp 2.x over HTTP is session-less: a restart is invisible")
    if target.transport == "stdio" and not MCP_V2:
        pytest.skip("mcp 1.x over stdio: the dying transport cancels the task that opened it, shim or not")
    integration = mcp_hooks_openai_agents.mcp_hooks_integration
    try:
        async with target.server() as server:
            await invoke(server, "echo", text="early")
            assert integration.instrument()
            target.restart()
            with caplog.at_level(logging.WARNING, logger="mcp_hooks"):
                if MCP_V2:
                    assert text(await invoke(server, "echo", text="late")).startswith("late (pid ")
                    assert mcp_hooks_openai_agents.reconnect_count(server) == 1
                else:
                    with pytest.raises(Exception) as failed:
                        await invoke(server, "echo", text="late")
                    assert not isinstance(failed.value, mcp_hooks.OutcomeUncertain)
                    assert mcp_hooks_openai_agents.reconnect_count(server) == 0
                    assert any("connected before" in r.getMessage() for r in caplog.records)
                    await asyncio.sleep(0.05)  # this task is not being cancelled
                    await server.cleanup()  # reconnected once by its user, it recovers from now on
                    await server.connect()
                    target.restart()
                    assert text(await invoke(server, "echo", text="later")).startswith("later (pid ")
                    assert mcp_hooks_openai_agents.reconnect_count(server) == 1
    finally:
        integration.uninstrument()


async def test_connect_and_cleanup_run_in_one_owner_task(shim: Any, target: Target) -> None:
    server = target.server()
    me = asyncio.current_task()
    assert _owner.peek(server) is None
    async with server:
        state = _owner.peek(server)
        assert state is not None
        owner = state.task
        assert owner is not None and owner is not me and not owner.done()
        assert state.wanted is True
        target.restart()
        await invoke(server, "echo", text="after")  # rebuilt (or, session-less, simply answered)
        assert state.task is owner  # the same long-lived task did the reconnecting
    assert owner.done() and state.task is None  # the owner ends with the connection
    assert state.wanted is False


# mcp 1.x's stdio_client, cancelled while it starts, drops memory streams unclosed (as it does in any task).
@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
async def test_a_cancelled_connect_leaves_nothing_open(shim: Any, target: Target) -> None:
    """Cancelling ``connect()`` while the owner task runs it cancels it there too (as it would in the
    caller's own task): nothing stays open, and the server connects normally afterwards."""
    server = target.server()
    connecting = asyncio.ensure_future(server.connect())
    for _ in range(10_000):  # until the owner task has started the connect (no I/O has finished yet)
        state = _owner.peek(server)
        if state is not None and state.current is not None:
            break
        await asyncio.sleep(0)
    assert state is not None and state.current is not None
    owner = state.task
    connecting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await connecting
    await wait_until_async(lambda: state.task is None, "the owner task to end")
    assert owner is not None and owner.done()
    assert server.session is None
    async with server:
        assert text(await invoke(server, "echo", text="ok")).startswith("ok (pid ")
    gc.collect()  # here, under this test's warning filters
