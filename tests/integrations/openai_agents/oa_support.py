"""Support for the openai-agents shim's tests: the shim on or off, real MCP servers, the agent's tool path.

Imported by ``conftest.py`` (fixtures) and by the tests (helpers); named uniquely so that it cannot clash
with another integration's test modules.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import mcp_hooks_openai_agents
import pytest

import mcp_hooks
from mcp_hooks.testing import FaultServer

pytest.importorskip("agents")

MCP_V2 = int(importlib.metadata.version("mcp").split(".")[0]) >= 2
#: The servers a test runs against. Under mcp 2.x the kit's HTTP server speaks the session-less
#: 2026-07-28 protocol, where a restart is invisible; "http-legacy" is a pre-2026 server (the kind most
#: servers are): the client falls back to the ``initialize`` handshake and holds a session that a restart
#: loses. Under mcp 1.x every HTTP server is legacy, so that variant would only repeat "http".
HTTP_KINDS = ("http", "http-legacy") if MCP_V2 else ("http",)
TARGET_KINDS = (*HTTP_KINDS, "stdio")


#: openai-agents 0.24 calls mcp 1.x's deprecated ``streamablehttp_client`` itself.
FRAMEWORK_WARNINGS = pytest.mark.filterwarnings("ignore:Use `streamable_http_client` instead:DeprecationWarning")


@pytest.fixture(autouse=True)
def _quiet_tracing() -> None:
    from agents import set_tracing_disabled

    set_tracing_disabled(True)  # no trace export (no network)


@pytest.fixture
def shim() -> Iterator[mcp_hooks_openai_agents.OpenAIAgentsIntegration]:
    """The shim, turned on through ``mcp_hooks.instrument`` as a user would; off (and reset) afterwards."""
    integration = mcp_hooks_openai_agents.mcp_hooks_integration
    assert mcp_hooks.instrument("openai-agents") == {"openai-agents": True}
    try:
        yield integration
    finally:
        integration.uninstrument()
        integration.options = {}
        integration.watch_http = True


@pytest.fixture
def no_shim() -> None:
    """The framework as it is: the shim off."""
    mcp_hooks_openai_agents.mcp_hooks_integration.uninstrument()


class RebuildCounter:
    """A plugin counting the rebuilds the engine starts (``on_reconnect``, one per shared rebuild)."""

    def __init__(self) -> None:
        self.count = 0

    @mcp_hooks.hookimpl
    def on_reconnect(self, call: mcp_hooks.ToolCall, error: BaseException) -> None:
        if call.framework == "openai-agents":
            self.count += 1


@pytest.fixture
def rebuilds() -> Iterator[RebuildCounter]:
    counter = RebuildCounter()
    pm = mcp_hooks.plugin_manager()
    pm.register(counter, name="test-rebuild-counter")
    try:
        yield counter
    finally:
        pm.unregister(counter)


class Target:
    """A fault server and a way to build openai-agents servers for it, over HTTP or stdio."""

    def __init__(self, transport: str, srv: FaultServer) -> None:
        self.transport = transport
        self.srv = srv

    @property
    def session_less(self) -> bool:
        """mcp 2.x on both ends over HTTP: no session, so a restart is invisible and nothing is rebuilt."""
        return self.transport == "http" and MCP_V2 and not self.srv.legacy_only

    def server(self, **kwargs: Any) -> Any:
        """An openai-agents MCP server for this target (tools list cached, as agents usually do)."""
        from agents.mcp import MCPServerStdio, MCPServerStreamableHttp

        kwargs.setdefault("cache_tools_list", True)
        if self.transport == "http":
            return MCPServerStreamableHttp({"url": self.srv.url}, **kwargs)
        params = self.srv.stdio_parameters()
        return MCPServerStdio({"command": params.command, "args": list(params.args), "env": dict(params.env)}, **kwargs)

    def kill(self) -> None:
        """SIGKILL the server process: every session and every call in flight is lost."""
        if self.transport == "http":
            self.srv.kill()
            return
        pid = self.srv.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not _alive(pid), what=f"stdio server {pid} to exit")

    def restart(self) -> None:
        """HTTP: a new server process on the same port. stdio: the process dies (the client respawns it)."""
        if self.transport == "http":
            self.srv.restart(sig=signal.SIGKILL)
        else:
            self.kill()

    def bring_back_after_death(self) -> threading.Thread | None:
        """HTTP: once the server died (an armed kill), start it again, in a thread. stdio: nothing to do."""
        if self.transport != "http":
            return None
        return self.srv.revive_when_dead(timeout=30)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # our grandchild is reaped by its parent (the MCP client); a zombie counts as gone
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return True


def wait_until(predicate: Any, what: str, timeout: float = 20.0) -> None:
    give_up = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > give_up:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


async def wait_until_async(predicate: Any, what: str, timeout: float = 20.0) -> None:
    give_up = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > give_up:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


def _make_target(kind: str, mcp_fault_server_factory: Any) -> Target:
    if kind == "http-legacy":
        return Target("http", mcp_fault_server_factory(legacy_only=True))
    return Target(kind, mcp_fault_server_factory(transport=kind))


@pytest.fixture(params=TARGET_KINDS)
def target(request: pytest.FixtureRequest, mcp_fault_server_factory: Any) -> Target:
    """Each kind of server: HTTP (under mcp 2.x also a legacy HTTP server) and stdio."""
    return _make_target(request.param, mcp_fault_server_factory)


@pytest.fixture
def http_target(mcp_fault_server_factory: Any) -> Target:
    """The kit's HTTP server (session-less under mcp 2.x)."""
    return _make_target("http", mcp_fault_server_factory)


@pytest.fixture(params=HTTP_KINDS)
def any_http_target(request: pytest.FixtureRequest, mcp_fault_server_factory: Any) -> Target:
    """Each kind of HTTP server, for tests about losing the session: under mcp 2.x also a legacy one."""
    return _make_target(request.param, mcp_fault_server_factory)


async def invoke(server: Any, tool: str, **arguments: Any) -> Any:
    """Call a tool the way an agent's FunctionTool does: ``MCPUtil.invoke_mcp_tool`` (a task per call)."""
    from agents import RunContextWrapper
    from agents.mcp.util import MCPUtil

    tools = server.cached_tools
    if tools is None:
        tools = await server.list_tools()
    spec = next(t for t in tools if t.name == tool)
    return await MCPUtil.invoke_mcp_tool(server, spec, RunContextWrapper(None), json.dumps(arguments))


async def outcome(call: Any) -> tuple[str, Any]:
    """Run a call; ``("ok", answer)``, ``("error", exc)``, or ``("cancelled", exc)`` when the *calling task*
    was cancelled (mcp 1.x cancels the task that opened a transport whose task group failed)."""
    try:
        return "ok", await call
    except asyncio.CancelledError as exc:
        uncancel = getattr(asyncio.current_task(), "uncancel", None)  # Python 3.11+
        if uncancel is not None:
            uncancel()
        return "cancelled", exc
    except Exception as exc:
        return "error", exc


def text(output: Any) -> str:
    """The text of a tool output (``{"type": "text", "text": ...}``)."""
    assert isinstance(output, dict), output
    return str(output["text"])


def pid_in(answer: str) -> int:
    """The server pid that ``echo`` reports: ``"<text> (pid N)"``."""
    return int(answer.rsplit("(pid ", 1)[1].rstrip(")"))
