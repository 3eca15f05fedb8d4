"""hermes' real tool handlers against a real fault server restarted with real signals, with and
without the shim.

Without the shim hermes recovers a lone call after a restart, but a call in flight across the restart
waits for the tool timeout while holding the per-server lock, so every call queued behind it fails
too; a -32000 "No valid session ID provided" (a server built from the TypeScript examples) is not
recognized; over stdio, a write lost in flight is retried and runs twice. With the shim every call
answers, and a write lost in flight is refused as uncertain, never run twice.
"""

from __future__ import annotations

import signal
import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest
from hermes_helpers import Hermes, Observed, answered, result_text, server_pid
from mcp.shared.exceptions import McpError
from mcp.types import ErrorData
from tools import mcp_tool

from mcp_hooks import OutcomeUncertain
from mcp_hooks.testing import STALE_STYLES

#: hermes' tool timeout in the tests without the shim: what a call lost in flight waits for there.
SHORT_TIMEOUT = 3.0

TS_EXAMPLE = "Bad Request: No valid session ID provided"

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(params=["without the shim", "with the shim"])
def shimmed(request: pytest.FixtureRequest) -> bool:
    """Each test of this kind runs twice: hermes as shipped, and hermes with the shim."""
    if request.param == "with the shim":
        request.getfixturevalue("shim")
        return True
    request.getfixturevalue("no_shim")
    return False


def label(shimmed: bool) -> str:
    return "with the shim" if shimmed else "without the shim"


def restart_while_in_flight(server: Any, *, after: float = 0.15, sig: int = signal.SIGKILL) -> Callable[[], None]:
    def during() -> None:
        time.sleep(after)
        server.restart(sig=sig)

    return during


def test_one_call_after_a_restart(
    shimmed: bool, hermes: Hermes, mcp_fault_server: Any, observed: Observed, measure: Callable[[str, str], None]
) -> None:
    server = mcp_fault_server
    hermes.connect(server)
    task = hermes.task
    first, _ = hermes.call("echo", {"text": "before"})
    assert server_pid(first) == server.pid
    took: list[float] = []
    for sig in (signal.SIGTERM, signal.SIGKILL, signal.SIGTERM, signal.SIGKILL):
        server.restart(sig=sig)
        answer, seconds = hermes.call("echo", {"text": "after"})
        assert server_pid(answer) == server.pid, answer  # answered by the new process
        took.append(seconds)
    measure(
        f"one call after a restart, {label(shimmed)}",
        f"median {statistics.median(took) * 1000:.0f} ms ({', '.join(f'{t * 1000:.0f}' for t in took)})",
    )
    assert hermes.task is task  # hermes' own server object, rebuilt in place by its own connection task
    if shimmed:
        assert len(observed.reconnects) == 4
        assert len(observed.recovered) == 4
        assert all(call.attempt == 2 and call.tool == "echo" for call in observed.recovered)
        assert all(call.framework == "hermes-agent" and call.owner is task for call, _ in observed.errors)
        assert all(call.arguments == {"text": "after"} and call.server == "fault" for call, _ in observed.errors)
        assert all("Session terminated" in str(error) for _, error in observed.errors)
        assert not observed.giveups
    else:
        assert not (observed.errors or observed.reconnects or observed.recovered)  # hermes tells nobody


def test_every_stale_session_style_recovers_with_the_shim(
    shim: Any, hermes: Hermes, mcp_fault_server: Any, observed: Observed
) -> None:
    """Every way servers answer a stale session id (404 or 400 or 410, JSON-RPC or text or nothing)."""
    server = mcp_fault_server
    hermes.connect(server)
    for done, style in enumerate(STALE_STYLES, start=1):
        server.set_stale_style(style)
        server.restart(sig=signal.SIGKILL)
        answer, _ = hermes.call("echo", {"text": style})
        assert server_pid(answer) == server.pid, (style, answer)
        assert len(observed.reconnects) == done, style
        assert server.executions("echo") == done, style  # the rejected request never ran
    assert not observed.giveups


def test_ts_example_stale_session_is_not_recognized_without_the_shim(
    no_shim: None, hermes: Hermes, mcp_fault_server_factory: Callable[..., Any], measure: Callable[[str, str], None]
) -> None:
    """HTTP 400 -32000 "Bad Request: No valid session ID provided": mcp 1.26 raises it inside its
    transport, so hermes never sees it, and the call waits for the tool timeout."""
    server = mcp_fault_server_factory(stale_style="ts-example")
    hermes.connect(server, timeout=SHORT_TIMEOUT)
    hermes.call("echo", {"text": "before"})
    server.restart()
    answer, seconds = hermes.call("echo", {"text": "after"})
    assert not answered(answer)
    assert "timed out" in answer["error"], answer
    assert server.executions("echo") == 1
    assert not mcp_tool._is_session_expired_error(McpError(ErrorData(code=-32000, message=TS_EXAMPLE)))
    measure("ts-example stale session, without the shim", f"error after {seconds:.1f} s (the tool timeout): {answer}")


@pytest.mark.parametrize("n", [2, 5, 20])
def test_calls_in_flight_across_a_restart(
    shimmed: bool,
    hermes: Hermes,
    mcp_fault_server: Any,
    observed: Observed,
    measure: Callable[[str, str], None],
    n: int,
) -> None:
    server = mcp_fault_server
    hermes.connect(server, timeout=20.0 if shimmed else SHORT_TIMEOUT)
    hermes.call("echo", {"text": "before"})
    answers, seconds = hermes.call_many([("slow", {"seconds": 0.3})] * n, restart_while_in_flight(server))
    ok = [a for a in answers if answered(a)]
    errors = sorted({a["error"][:100] for a in answers if not answered(a)})
    measure(
        f"{n} calls in flight across a SIGKILL restart, {label(shimmed)}",
        f"{len(ok)}/{n} answered, all settled in {seconds:.1f} s" + (f"; errors: {errors}" if errors else ""),
    )
    if shimmed:
        assert len(ok) == n, errors
        assert all(result_text(a).startswith("slept 0.3 s") for a in answers)
        assert len(observed.reconnects) == 1  # one rebuild shared by every failed call
        assert not observed.giveups
        after, _ = hermes.call("echo", {"text": "after"})
        assert server_pid(after) == server.pid
    else:
        assert len(ok) < n  # the call in flight holds hermes' lock until its timeout


def test_a_write_lost_in_flight_is_refused_as_uncertain_and_never_run_twice(
    shim: Any, hermes: Hermes, mcp_fault_server: Any, observed: Observed, measure: Callable[[str, str], None]
) -> None:
    server = mcp_fault_server
    hermes.connect(server, timeout=60.0)
    server.kill_during_next_call("incr", when="after")

    def bring_back() -> None:
        server.revive_when_dead(timeout=20).join(30)

    (answer,), seconds = hermes.call_many([("incr", {})], bring_back)
    measure("a write lost in flight, with the shim", f"refused as uncertain after {seconds:.1f} s (tool timeout 60 s)")
    assert not answered(answer)
    assert answer["outcome_uncertain"] is True
    assert answer["error"].startswith("outcome uncertain"), answer
    assert server.executions("incr") == 1
    assert server.counter() == 1
    assert [type(error) for _, error in observed.giveups] == [OutcomeUncertain]
    # The connection was healed for the next call, which runs once.
    again, _ = hermes.call("incr", {})
    assert answered(again), again
    assert server.executions("incr") == 2
    assert server.counter() == 2


def test_a_write_lost_in_flight_waits_for_the_tool_timeout_without_the_shim(
    no_shim: None, hermes: Hermes, mcp_fault_server: Any, measure: Callable[[str, str], None]
) -> None:
    server = mcp_fault_server
    hermes.connect(server, timeout=SHORT_TIMEOUT)
    server.kill_during_next_call("incr", when="after")

    def bring_back() -> None:
        server.revive_when_dead(timeout=20).join(30)

    (answer,), seconds = hermes.call_many([("incr", {})], bring_back)
    measure("a write lost in flight, without the shim", f"{answer['error'][:80]!r} after {seconds:.1f} s")
    assert not answered(answer)
    assert "timed out" in answer["error"]
    assert server.executions("incr") == 1


def test_a_write_lost_in_flight_over_stdio(
    shimmed: bool, hermes: Hermes, mcp_stdio_fault_server: Any, observed: Observed, measure: Callable[[str, str], None]
) -> None:
    """hermes spawns the server; it dies right after running ``incr``. hermes alone retries any error
    that says "connection closed": the write runs twice. With the shim it runs once."""
    server = mcp_stdio_fault_server
    hermes.connect_stdio(server)
    server.kill_during_next_call("incr", when="after")
    answer, seconds = hermes.call("incr", {})
    runs = server.executions("incr")
    measure(f"a write lost in flight over stdio, {label(shimmed)}", f"ran {runs} time(s); answer after {seconds:.1f} s")
    if shimmed:
        assert answer["outcome_uncertain"] is True, answer
        assert runs == 1 and server.counter() == 1
        assert [type(error) for _, error in observed.giveups] == [OutcomeUncertain]
        again, _ = hermes.call("incr", {})  # the server was respawned by hermes: the next call runs
        assert answered(again) and server.counter() == 2
    else:
        assert answered(answer)  # a silent success...
        assert runs == 2 and server.counter() == 2  # ...of a write that ran twice


def test_a_read_lost_in_flight_is_replayed(
    shim: Any, hermes: Hermes, mcp_fault_server: Any, observed: Observed
) -> None:
    server = mcp_fault_server
    hermes.connect(server)
    server.kill_during_next_call("echo", when="after")

    def bring_back() -> None:
        server.revive_when_dead(timeout=20).join(30)

    (answer,), _ = hermes.call_many([("echo", {"text": "twice"})], bring_back)
    assert server_pid(answer) == server.pid  # replayed on the new process
    assert server.executions("echo") == 2  # read-only and idempotent: running it again is harmless
    assert len(observed.recovered) == 1


def test_resources_after_a_restart(shim: Any, hermes: Hermes, mcp_fault_server: Any, observed: Observed) -> None:
    server = mcp_fault_server
    names = hermes.connect(server)
    if "mcp__fault__list_resources" not in names:
        pytest.skip("the fault server advertises no resources")
    server.restart()
    answer, _ = hermes.call("list_resources", {})
    assert "error" not in answer, answer
    assert len(observed.reconnects) == 1
    assert observed.recovered[0].tool is None  # not a tool call: replayed as a read


def test_six_restarts_in_one_process(
    shimmed: bool, hermes: Hermes, mcp_fault_server: Any, observed: Observed, measure: Callable[[str, str], None]
) -> None:
    server = mcp_fault_server
    hermes.connect(server, timeout=20.0 if shimmed else SHORT_TIMEOUT)
    task = hermes.task
    tools = hermes.tools()
    in_flight = 0
    next_calls = 0
    for _ in range(6):
        answers, _ = hermes.call_many([("slow", {"seconds": 0.2})] * 3, restart_while_in_flight(server, after=0.1))
        in_flight += sum(answered(a) for a in answers)
        after, _ = hermes.call("echo", {"text": "next"})
        next_calls += answered(after)
    parked = hermes.task.session is None
    measure(
        f"six SIGKILL restarts in one process (3 calls in flight each), {label(shimmed)}",
        f"{in_flight}/18 in-flight calls and {next_calls}/6 next calls answered; "
        f"{len(hermes.tools())}/{len(tools)} tools registered; {'no session' if parked else 'session up'}",
    )
    if shimmed:
        assert in_flight == 18
        assert next_calls == 6
        assert hermes.tools() == tools
        assert hermes.task is task and not parked
        assert len(observed.reconnects) == 6
    else:
        assert in_flight < 18
