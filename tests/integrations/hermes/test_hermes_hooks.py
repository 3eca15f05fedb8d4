"""The shim's pieces one at a time, against hermes' real client and a real server: the ``reconnect``
hook, the wait for a new session, what observers see, and a shim turned on after hermes connected."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import mcp_hooks_hermes
import pytest
from hermes_helpers import SERVER, Hermes, Observed, answered, server_pid
from tools import mcp_tool

import mcp_hooks
from mcp_hooks import ToolCall

pytestmark = pytest.mark.timeout(90)


def on_hermes_loop(function: Callable[[], Any]) -> Any:
    """Run ``function`` on hermes' MCP loop (where its server objects live) and wait for it."""
    done = threading.Event()
    box: list[Any] = []

    def run() -> None:
        box.append(function())
        done.set()

    assert mcp_tool._mcp_loop is not None
    mcp_tool._mcp_loop.call_soon_threadsafe(run)
    assert done.wait(10)
    return box[0]


def test_the_reconnect_hook_rebuilds_hermes_session_by_its_own_means(
    shim: Any, hermes: Hermes, mcp_fault_server: Any
) -> None:
    hermes.connect(mcp_fault_server)
    task = hermes.task
    old_session, old_task = task.session, task._task
    call = ToolCall(server=SERVER, owner=task, framework="hermes-agent")
    assert mcp_hooks_hermes.reconnect(call.replace(owner=object())) is None  # not a hermes server
    assert mcp_hooks_hermes.reconnect(call).result(timeout=30) is True
    assert task.session is not None and task.session is not old_session  # a new session...
    assert task._task is old_task  # ...built by hermes' own connection task
    answer, _ = hermes.call("echo", {"text": "new session"})
    assert answered(answer)


def test_a_rebuild_publishes_tools_hermes_dropped_while_parked(
    shim: Any, hermes: Hermes, mcp_fault_server: Any
) -> None:
    """hermes deregisters a parked server's tools and its revival through the initial-connection
    path never registers them again; a rebuild by the shim does."""
    names = hermes.connect(mcp_fault_server)
    task = hermes.task
    on_hermes_loop(task._deregister_tools)  # what hermes does when it parks a server
    assert hermes.tools() == []
    call = ToolCall(server=SERVER, owner=task, framework="hermes-agent")
    assert mcp_hooks_hermes.reconnect(call).result(timeout=30) is True
    assert sorted(hermes.tools()) == sorted(names)
    answer, _ = hermes.call("echo", {"text": "back"})
    assert answered(answer)


def test_the_wait_for_a_new_session_wakes_on_hermes_ready_event(
    shim: Any, hermes: Hermes, mcp_fault_server: Any, measure: Callable[[str, str], None]
) -> None:
    hermes.connect(mcp_fault_server)
    task = hermes.task
    old = task.session
    assert mcp_tool._wait_for_server_session_ready(task, timeout=1.0) is True  # a live session: at once
    assert mcp_tool._wait_for_server_session_ready(task, old_session=old, timeout=0.3) is False
    started = time.monotonic()
    assert mcp_tool.reconnect_mcp_server(SERVER) is True  # hermes' public reconnect
    assert mcp_tool._wait_for_server_session_ready(task, old_session=old, timeout=15.0) is True
    measure(
        "hermes' own reconnect_mcp_server(), new session seen after", f"{(time.monotonic() - started) * 1000:.0f} ms"
    )
    assert task.session is not old


def test_observers_see_auth_failures_too(shim: Any, hermes: Hermes, mcp_fault_server: Any, observed: Observed) -> None:
    """Auth failures take hermes' OAuth path, not the session path: observers still see them."""
    hermes.connect(mcp_fault_server)
    request = httpx.Request("POST", mcp_fault_server.url)
    error = httpx.HTTPStatusError("401", request=request, response=httpx.Response(401, request=request))
    answer = mcp_tool._handle_auth_error_and_retry(SERVER, error, lambda: "{}", "tools/call echo")
    assert json.loads(answer)["needs_reauth"] is True  # hermes' own answer, unchanged
    ((call, seen),) = observed.errors
    assert seen is error
    assert (call.server, call.tool, call.framework) == (SERVER, "echo", "hermes-agent")
    assert not observed.reconnects


def test_errors_that_are_not_session_loss_take_hermes_own_path(
    shim: Any, hermes: Hermes, mcp_fault_server: Any, observed: Observed
) -> None:
    hermes.connect(mcp_fault_server, timeout=1.0)
    answer, _ = hermes.call("fail", {"message": "no such file"})
    assert "no such file" in answer["error"]  # the tool's own error (an isError result), as hermes reports it
    assert not observed.errors
    answer, _ = hermes.call("slow", {"seconds": 5})  # hermes' tool timeout: an error, not session loss
    assert answer["error"].startswith("MCP call failed: TimeoutError"), answer
    ((call, error),) = observed.errors
    assert isinstance(error, TimeoutError)
    assert (call.tool, call.arguments, call.attempt) == ("slow", {"seconds": 5}, 1)
    assert not observed.reconnects and not observed.giveups
    answer, _ = hermes.call("echo", {"text": "still fine"})
    assert answered(answer)


def test_turned_on_after_hermes_connected(no_shim: None, hermes: Hermes, mcp_fault_server: Any) -> None:
    """Connections made before ``instrument()`` are covered too (hermes' MCP loop is the scope)."""
    server = mcp_fault_server
    hermes.connect(server)
    assert mcp_hooks.instrument("hermes") == {"hermes": True}
    try:
        server.kill_during_next_call("echo", when="after")

        def bring_back() -> None:
            server.revive_when_dead(timeout=20).join(30)

        (answer,), _ = hermes.call_many([("echo", {"text": "late"})], bring_back)
        assert server_pid(answer) == server.pid
    finally:
        hermes.close()
        mcp_hooks.uninstrument("hermes")
