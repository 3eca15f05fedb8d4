"""The recovery engine through ``with_mcp_recovery``: single flight across tasks and threads,
cancellation, deadlines, backoff, pass-through of other errors, hooks, replay safety."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from typing import Any

import pytest
from core_helpers import (
    ExceptionGroup,
    httpx,
    in_flight_error,
    isolated_pm,
    sdk_error,
    session_lost_error,
)
from engine_helpers import HookCounter, SessionOwner, owner_class

import mcp_hooks.engine as engine
from mcp_hooks import OutcomeUncertain, ToolCall, hookimpl, is_session_expired, with_mcp_recovery

pytestmark = pytest.mark.timeout(60)


# --- single flight ----------------------------------------------------------------------------------


async def test_100_tasks_and_8_threads_on_one_dead_session_cause_one_reconnect():
    counter = HookCounter()
    pm = isolated_pm(counter)
    owner = owner_class(pm)(expected_failures=108)
    owner.kill()
    loop = asyncio.get_running_loop()
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        in_threads = [
            loop.run_in_executor(pool, lambda i=i: owner.call_tool_sync("echo", {"i": 1000 + i})) for i in range(8)
        ]
        in_tasks = [asyncio.ensure_future(owner.call_tool("echo", {"i": i})) for i in range(100)]
        results = await asyncio.wait_for(asyncio.gather(*in_tasks, *in_threads), timeout=30)
    assert owner.failures == 108  # every call really failed on the dead session ...
    assert owner.reconnects_started == 1  # ... and the session was rebuilt once
    assert owner.reconnects == 1
    assert owner.max_active == 1
    assert results == [("echo", 1)] * 108
    assert counter.calls["on_reconnect"] == 1
    assert counter.calls["on_tool_error"] == 108
    assert counter.calls["on_recovered"] == 108
    assert counter.calls["on_giveup"] == 0


def test_sync_function_called_from_8_threads_at_once():
    pm = isolated_pm()
    owner = owner_class(pm)(expected_failures=8)
    owner.kill()
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(owner.call_tool_sync, "echo", {"i": i}) for i in range(8)]
        results = [future.result(timeout=20) for future in futures]
    assert results == [("echo", 1)] * 8
    assert owner.failures == 8
    assert owner.reconnects_started == 1


def test_sync_function_with_async_reconnect_from_8_threads():
    pm = isolated_pm()
    owner = owner_class(pm, sync_reconnect="async")(expected_failures=8)
    owner.kill()
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(owner.call_tool_sync, "echo", {"i": i}) for i in range(8)]
        results = [future.result(timeout=20) for future in futures]
    assert results == [("echo", 1)] * 8
    assert owner.reconnects_started == 1
    assert owner.reconnects == 1


def test_sync_function_with_sync_and_async_reconnect():
    for flavour in ("sync", "async"):
        pm = isolated_pm()
        owner = owner_class(pm, sync_reconnect=flavour)()
        owner.kill()
        assert owner.call_tool_sync("echo") == ("echo", 1), flavour
        assert owner.reconnects == 1
        assert owner.call_tool_sync("echo") == ("echo", 1)  # healed: no second reconnect
        assert owner.reconnects == 1


async def test_sync_function_cannot_wait_for_an_async_reconnect_inside_a_running_loop(monkeypatch):
    monkeypatch.setattr(engine, "_backoff", lambda rebuilds: 0.001)
    pm = isolated_pm()
    owner = owner_class(pm, sync_reconnect="async", max_reconnects=1)()
    owner.kill()
    with pytest.raises(RuntimeError, match="cannot wait for an async reconnect"):
        owner.call_tool_sync("echo")
    assert owner.reconnects_started == 0  # the coroutine was closed, never run (and never leaked)


async def test_separate_owners_reconnect_separately():
    pm = isolated_pm()
    cls = owner_class(pm)
    owners = [cls() for _ in range(3)]
    for owner in owners:
        owner.kill()
    results = await asyncio.wait_for(asyncio.gather(*(owner.call_tool("x") for owner in owners)), 10)
    assert results == [("x", 1)] * 3
    assert [owner.reconnects for owner in owners] == [1, 1, 1]


async def test_a_second_loss_after_healing_reconnects_again():
    pm = isolated_pm()
    owner = owner_class(pm)()
    owner.kill()
    assert await owner.call_tool("x") == ("x", 1)
    owner.kill()
    assert await owner.call_tool("x") == ("x", 2)
    assert owner.reconnects == 2


# --- cancellation -----------------------------------------------------------------------------------


class _GatedOwner(SessionOwner):
    """The first rebuild waits for ``release``; later ones go straight through."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def areconnect(self, call=None) -> None:
        first = self.reconnects_started == 0
        self._enter(call)
        healed = False
        try:
            if first:
                self.entered.set()
                await self.release.wait()
            await asyncio.sleep(0)
            healed = True
        except asyncio.CancelledError:
            with self.lock:
                self.reconnects_cancelled += 1
            raise
        finally:
            self._leave(healed)


def _gated_owner(pm, count: int) -> _GatedOwner:
    class Owner(_GatedOwner):
        @with_mcp_recovery(reconnect=lambda call: call.owner.areconnect(call), plugin_manager=pm)
        async def call_tool(self, name, arguments=None):
            return await self._call_async(name, arguments)

    owner = Owner(expected_failures=count)
    owner.kill()
    return owner


async def _wait_until(predicate, timeout: float = 10.0) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), timeout)


async def test_task_cancelled_while_waiting_for_the_rebuild_is_cancelled_and_others_recover():
    counter = HookCounter()
    pm = isolated_pm(counter)
    owner = _gated_owner(pm, 6)
    tasks = {i: asyncio.ensure_future(owner.call_tool("echo", {"i": i})) for i in range(6)}
    await asyncio.wait_for(owner.entered.wait(), 10)
    await _wait_until(lambda: owner.failures == 6 and counter.calls["on_tool_error"] == 6)
    await asyncio.sleep(0.05)  # let the followers reach the wait
    leader = owner.leaders[0]
    victim = next(i for i in tasks if i != leader)
    tasks[victim].cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(tasks[victim], 10)
    assert tasks[victim].cancelled()
    owner.release.set()
    others = [task for i, task in tasks.items() if i != victim]
    assert await asyncio.wait_for(asyncio.gather(*others), 10) == [("echo", 1)] * 5
    assert owner.reconnects_started == 1
    assert owner.reconnects == 1
    assert counter.calls["on_recovered"] == 5
    assert "CancelledError" not in repr(dict(counter.errors))  # no hook saw the cancellation


async def test_leader_cancelled_during_the_rebuild_does_not_wedge_the_others():
    pm = isolated_pm()
    owner = _gated_owner(pm, 6)
    tasks = {i: asyncio.ensure_future(owner.call_tool("echo", {"i": i})) for i in range(6)}
    await asyncio.wait_for(owner.entered.wait(), 10)
    await _wait_until(lambda: owner.failures == 6)
    await asyncio.sleep(0.05)
    leader = owner.leaders[0]
    tasks[leader].cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(tasks[leader], 10)
    others = [task for i, task in tasks.items() if i != leader]
    # Nobody releases the first rebuild: it went with its leader, and a follower leads a new one.
    assert await asyncio.wait_for(asyncio.gather(*others), 10) == [("echo", 1)] * 5
    assert owner.reconnects_cancelled == 1
    assert owner.reconnects == 1
    assert owner.reconnects_started == 2
    assert owner.max_active == 1  # never two rebuilds of one session at once


async def test_cancelled_error_raised_by_the_function_is_never_retried_and_no_hook_sees_it():
    counter = HookCounter()
    pm = isolated_pm(counter)
    rebuilds = []
    calls = 0

    @with_mcp_recovery(reconnect=rebuilds.append, plugin_manager=pm)
    async def call_tool(name):
        nonlocal calls
        calls += 1
        raise asyncio.CancelledError() from session_lost_error()

    with pytest.raises(asyncio.CancelledError):
        await call_tool("x")
    assert calls == 1
    assert rebuilds == []
    assert sum(counter.calls.values()) == 0


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
async def test_keyboard_interrupt_and_system_exit_pass_straight_through(exc_type):
    counter = HookCounter()
    pm = isolated_pm(counter)
    rebuilds = []
    raised = exc_type()
    raised.__context__ = session_lost_error()

    @with_mcp_recovery(reconnect=rebuilds.append, plugin_manager=pm)
    async def call_async(name):
        raise raised

    @with_mcp_recovery(reconnect=rebuilds.append, plugin_manager=pm)
    def call_sync(name):
        raise raised

    with pytest.raises(exc_type) as info:
        await call_async("x")
    assert info.value is raised
    with pytest.raises(exc_type) as info:
        call_sync("x")
    assert info.value is raised
    assert rebuilds == []
    assert sum(counter.calls.values()) == 0


@pytest.mark.parametrize("where", ["cause", "context", "group", "self"])
async def test_interrupted_error_in_the_graph_is_never_retried(where):
    counter = HookCounter()
    pm = isolated_pm(counter)
    rebuilds = []
    error: BaseException = session_lost_error()
    if where == "cause":
        error.__cause__ = InterruptedError("stop")
    elif where == "context":
        error.__context__ = InterruptedError("stop")
    elif where == "group":
        error = ExceptionGroup("tg", [session_lost_error(), InterruptedError("stop")])
    else:
        error = InterruptedError("Session not found")
    calls = 0

    @with_mcp_recovery(reconnect=rebuilds.append, plugin_manager=pm)
    async def call_tool(name):
        nonlocal calls
        calls += 1
        raise error

    with pytest.raises(type(error)) as info:
        await call_tool("x")
    assert info.value is error
    assert calls == 1
    assert rebuilds == []
    assert counter.calls["on_reconnect"] == 0
    assert is_session_expired(error, plugin_manager_=pm) is False
    assert not getattr(error, "__notes__", None)


# --- deadlines and attempts -------------------------------------------------------------------------


async def test_a_rebuild_that_never_heals_gives_up_by_the_deadline_with_the_error_and_a_note():
    counter = HookCounter()
    pm = isolated_pm(counter)
    state = {"cancelled": 0}
    error = session_lost_error()

    async def never_heals(call):
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            state["cancelled"] += 1
            raise

    @with_mcp_recovery(reconnect=never_heals, deadline=1.0, plugin_manager=pm, server="http://stuck/mcp")
    async def call_tool(name):
        raise error

    started = time.monotonic()
    with pytest.raises(type(error)) as info:
        await asyncio.wait_for(call_tool("x"), 10)
    elapsed = time.monotonic() - started
    assert info.value is error
    assert elapsed < 1.0 + 2.0
    notes = "\n".join(getattr(error, "__notes__", []))
    assert "mcp-hooks" in notes
    assert "http://stuck/mcp" in notes
    assert "1 rebuild(s)" in notes
    assert "1 s deadline" in notes
    assert state["cancelled"] == 1  # the hung rebuild was cancelled, not leaked
    assert counter.errors["on_giveup"] == [error]


async def test_a_rebuild_that_keeps_failing_gives_up_with_the_last_real_error():
    pm = isolated_pm()
    failures: list[Exception] = []

    def refused(call):
        failures.append(httpx.ConnectError(f"All connection attempts failed (#{len(failures) + 1})"))
        raise failures[-1]

    @with_mcp_recovery(reconnect=refused, deadline=1.0, max_reconnects=1000, plugin_manager=pm)
    async def call_tool(name):
        raise session_lost_error()

    started = time.monotonic()
    with pytest.raises(httpx.ConnectError) as info:
        await asyncio.wait_for(call_tool("x"), 10)
    assert time.monotonic() - started < 1.0 + 2.0
    assert len(failures) >= 2
    assert info.value is failures[-1]
    notes = "\n".join(info.value.__notes__)
    assert f"{len(failures)} rebuild(s)" in notes
    assert "at most 1000" in notes


def test_sync_rebuild_that_keeps_failing_gives_up_by_the_deadline():
    pm = isolated_pm()
    failures: list[Exception] = []

    def refused(call):
        failures.append(httpx.ConnectError("All connection attempts failed"))
        raise failures[-1]

    @with_mcp_recovery(reconnect=refused, deadline=0.5, max_reconnects=1000, plugin_manager=pm)
    def call_tool(name):
        raise session_lost_error()

    started = time.monotonic()
    with pytest.raises(httpx.ConnectError) as info:
        call_tool("x")
    assert time.monotonic() - started < 0.5 + 2.0
    assert info.value is failures[-1]
    assert "giving up" in "\n".join(info.value.__notes__)


@pytest.mark.parametrize("flavour", ["async", "sync"])
async def test_max_reconnects_zero_never_rebuilds(flavour):
    counter = HookCounter()
    pm = isolated_pm(counter)
    rebuilds = []
    error = session_lost_error()

    if flavour == "async":

        @with_mcp_recovery(reconnect=rebuilds.append, max_reconnects=0, plugin_manager=pm)
        async def call_tool(name):
            raise error

        with pytest.raises(type(error)) as info:
            await call_tool("x")
    else:

        @with_mcp_recovery(reconnect=rebuilds.append, max_reconnects=0, plugin_manager=pm)
        def call_tool(name):
            raise error

        with pytest.raises(type(error)) as info:
            call_tool("x")
    assert info.value is error
    assert rebuilds == []
    assert "0 rebuild(s)" in "\n".join(error.__notes__)
    assert counter.calls["on_giveup"] == 1
    assert counter.calls["on_reconnect"] == 0


async def test_max_reconnects_bounds_the_rebuilds_of_a_session_that_keeps_dying(monkeypatch):
    monkeypatch.setattr(engine, "_backoff", lambda rebuilds: 0.001)
    pm = isolated_pm()
    rebuilds = []
    errors: list[Exception] = []

    @with_mcp_recovery(reconnect=rebuilds.append, max_reconnects=2, plugin_manager=pm)
    async def call_tool(name):
        errors.append(session_lost_error())
        raise errors[-1]

    with pytest.raises(Exception) as info:
        await asyncio.wait_for(call_tool("x"), 10)
    assert len(rebuilds) == 2
    assert len(errors) == 3
    assert info.value is errors[-1]
    assert [call.attempt for call in rebuilds] == [1, 2]
    assert "2 rebuild(s)" in "\n".join(info.value.__notes__)


# --- backoff ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", range(1, 12))
def test_backoff_bounds(k):
    ceiling = min(2.0, 0.1 * 2 ** (k - 1))
    samples = [engine._backoff(k) for _ in range(300)]
    assert all(ceiling / 2 <= pause <= ceiling for pause in samples)
    assert max(samples) - min(samples) > 0  # jittered


async def test_no_pause_before_the_first_rebuild_and_bounded_pauses_after(monkeypatch):
    events: list[tuple[str, float]] = []
    real_sleep = asyncio.sleep

    async def spy_sleep(delay, result=None):
        events.append(("sleep", delay))
        return await real_sleep(0, result)

    monkeypatch.setattr(asyncio, "sleep", spy_sleep)
    pm = isolated_pm()

    def refused(call):
        events.append(("rebuild", 0.0))
        raise RuntimeError("the gateway refused the new session")

    @with_mcp_recovery(reconnect=refused, max_reconnects=8, deadline=120, plugin_manager=pm)
    async def call_tool(name):
        raise session_lost_error()

    with pytest.raises(RuntimeError, match="gateway"):
        await call_tool("x")
    assert [kind for kind, _ in events] == ["rebuild"] + ["sleep", "rebuild"] * 7
    pauses = [delay for kind, delay in events if kind == "sleep"]
    for k, pause in enumerate(pauses, start=1):
        ceiling = min(2.0, 0.1 * 2 ** (k - 1))
        assert ceiling / 2 <= pause <= ceiling, (k, pause)


def test_sync_pauses_are_bounded_too(monkeypatch):
    events: list[tuple[str, float]] = []
    monkeypatch.setattr(time, "sleep", lambda delay: events.append(("sleep", delay)))
    pm = isolated_pm()

    def refused(call):
        events.append(("rebuild", 0.0))
        raise RuntimeError("the gateway refused the new session")

    @with_mcp_recovery(reconnect=refused, max_reconnects=4, deadline=120, plugin_manager=pm)
    def call_tool(name):
        raise session_lost_error()

    with pytest.raises(RuntimeError, match="gateway"):
        call_tool("x")
    assert [kind for kind, _ in events] == ["rebuild"] + ["sleep", "rebuild"] * 3
    pauses = [delay for kind, delay in events if kind == "sleep"]
    for k, pause in enumerate(pauses, start=1):
        ceiling = min(2.0, 0.1 * 2 ** (k - 1))
        assert ceiling / 2 <= pause <= ceiling


# --- pass-through -----------------------------------------------------------------------------------


NOT_SESSION_LOSS = [
    ("ValueError", lambda: ValueError("bad input")),
    ("request timed out", lambda: sdk_error(-32001, "Request timed out")),
    ("method not found", lambda: sdk_error(-32601, "Method not found")),
    ("invalid params", lambda: sdk_error(-32602, "Invalid params")),
    ("bare connection refused", lambda: RuntimeError("Connection refused")),
    ("bare connection closed", lambda: RuntimeError("connection closed")),
    ("group of plain errors", lambda: ExceptionGroup("tg", [ValueError("a"), KeyError("b")])),
]


@pytest.mark.parametrize(("label", "make"), NOT_SESSION_LOSS, ids=[row[0] for row in NOT_SESSION_LOSS])
async def test_errors_that_are_not_session_loss_pass_through_as_the_same_object(label, make):
    counter = HookCounter()
    pm = isolated_pm(counter)
    rebuilds = []
    error = make()
    calls = 0

    @with_mcp_recovery(reconnect=rebuilds.append, plugin_manager=pm)
    async def call_async(name):
        nonlocal calls
        calls += 1
        raise error

    @with_mcp_recovery(reconnect=rebuilds.append, plugin_manager=pm)
    def call_sync(name):
        nonlocal calls
        calls += 1
        raise error

    with pytest.raises(type(error)) as info:
        await call_async("x")
    assert info.value is error
    assert type(info.value) is type(error)
    with pytest.raises(type(error)) as info:
        call_sync("x")
    assert info.value is error
    assert calls == 2
    assert rebuilds == []
    assert not getattr(error, "__notes__", None)
    assert counter.calls["on_tool_error"] == 2  # observed, not acted on
    assert counter.calls["on_reconnect"] == counter.calls["on_giveup"] == 0


# --- hooks ------------------------------------------------------------------------------------------


async def test_no_hook_is_called_on_success():
    counter = HookCounter()
    pm = isolated_pm(counter)
    owner = owner_class(pm)()
    assert await owner.call_tool("x") == ("x", 0)
    assert owner.call_tool_sync("x") == ("x", 0)
    assert sum(counter.calls.values()) == 0


async def test_hooks_seen_by_one_recovered_call():
    counter = HookCounter()
    pm = isolated_pm(counter)
    seen: list[ToolCall] = []

    class Recorder:
        @hookimpl
        def on_recovered(self, call):
            seen.append(call)

    pm.register(Recorder())
    owner = owner_class(pm, server="http://srv/mcp", framework="unit")()
    owner.kill()
    assert await owner.call_tool("search", {"q": "x"}) == ("search", 1)
    assert dict(counter.calls) == {
        "on_tool_error": 1,
        "should_reconnect": 1,
        "on_reconnect": 1,
        "is_replay_safe": 1,
        "on_recovered": 1,
    }
    (call,) = seen
    assert call.server == "http://srv/mcp"
    assert call.framework == "unit"
    assert call.tool == "search"
    assert call.arguments == {"q": "x"}
    assert call.attempt == 2
    assert call.owner is owner


async def test_reconnect_hook_used_when_no_reconnect_option():
    owners_rebuilt = []

    class Integration:
        @hookimpl
        def reconnect(self, call):
            if isinstance(call.owner, SessionOwner):
                owners_rebuilt.append(call.owner)
                return call.owner.areconnect(call)  # a coroutine: the engine awaits it
            return None

    pm = isolated_pm(Integration())

    class Owner(SessionOwner):
        @with_mcp_recovery(plugin_manager=pm)
        async def call_tool(self, name, arguments=None):
            return await self._call_async(name, arguments)

    owner = Owner()
    owner.kill()
    assert await owner.call_tool("x") == ("x", 1)
    assert owners_rebuilt == [owner]
    assert owner.reconnects == 1


async def test_without_any_reconnect_the_call_is_replayed_as_is():
    pm = isolated_pm()
    attempts = 0

    @with_mcp_recovery(plugin_manager=pm)
    async def call_tool(name):
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise session_lost_error()
        return "fresh session"

    assert await call_tool("x") == "fresh session"
    assert attempts == 2


async def test_observers_that_raise_are_logged_and_change_nothing(caplog):
    class Broken:
        @hookimpl
        def on_tool_error(self, call, error):
            raise RuntimeError("observer bug 1")

        @hookimpl
        def on_reconnect(self, call, error):
            raise RuntimeError("observer bug 2")

        @hookimpl
        def on_recovered(self, call):
            raise RuntimeError("observer bug 3")

        @hookimpl
        def on_giveup(self, call, error):
            raise RuntimeError("observer bug 4")

    counter = HookCounter()
    pm = isolated_pm(Broken(), counter)
    owner = owner_class(pm)()
    owner.kill()
    with caplog.at_level(logging.ERROR, logger="mcp_hooks"):
        assert await owner.call_tool("x") == ("x", 1)
    logged = [r for r in caplog.records if "observer" in r.getMessage() and r.exc_info]
    assert {str(r.exc_info[1]) for r in logged} == {"observer bug 1", "observer bug 2", "observer bug 3"}
    assert counter.calls["on_recovered"] == 1  # the others still ran

    caplog.clear()
    error = ValueError("not session loss")

    @with_mcp_recovery(plugin_manager=pm, max_reconnects=0)
    async def fails(name):
        raise error

    with caplog.at_level(logging.ERROR, logger="mcp_hooks"), pytest.raises(ValueError) as info:
        await fails("x")
    assert info.value is error

    lost = session_lost_error()

    @with_mcp_recovery(plugin_manager=pm, max_reconnects=0)
    async def gives_up(name):
        raise lost

    with caplog.at_level(logging.ERROR, logger="mcp_hooks"), pytest.raises(type(lost)) as info:
        await gives_up("x")
    assert info.value is lost
    assert any("observer bug 4" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


async def test_a_decision_hook_that_raises_counts_as_no_opinion(caplog):
    class Broken:
        @hookimpl(tryfirst=True)
        def should_reconnect(self, call, error):
            raise RuntimeError("decision bug")

        @hookimpl(tryfirst=True)
        def is_replay_safe(self, call, error):
            raise RuntimeError("replay bug")

    pm = isolated_pm(Broken())
    owner = owner_class(pm)()
    owner.kill()
    with caplog.at_level(logging.ERROR, logger="mcp_hooks"):
        assert await owner.call_tool("x") == ("x", 1)  # the built-ins decided
    messages = [str(r.exc_info[1]) for r in caplog.records if r.exc_info]
    assert "decision bug" in messages
    assert "replay bug" in messages
    assert is_session_expired(session_lost_error(), plugin_manager_=pm) is True


async def test_a_plugin_vetoes_reconnecting():
    class Veto:
        @hookimpl
        def should_reconnect(self, call, error):
            return False

    counter = HookCounter()
    pm = isolated_pm(Veto(), counter)
    owner = owner_class(pm)()
    owner.kill()
    with pytest.raises(Exception) as info:
        await owner.call_tool("x")
    assert classify_loss(info.value) == "rejected"
    assert owner.reconnects_started == 0
    assert counter.calls["on_reconnect"] == 0
    assert not getattr(info.value, "__notes__", None)
    assert is_session_expired(session_lost_error(), plugin_manager_=pm) is False


def classify_loss(error: BaseException) -> str:
    from mcp_hooks import classify

    return classify(error).loss.value


class GatewayLost(Exception):
    pass


class AddsACase:
    @hookimpl
    def should_reconnect(self, call, error):
        return True if "gateway lost your session" in str(error) else None


async def test_a_plugin_adds_a_case():
    pm = isolated_pm(AddsACase())
    assert is_session_expired(GatewayLost("the gateway lost your session"), plugin_manager_=pm) is True
    assert is_session_expired(GatewayLost("the gateway lost your session"), plugin_manager_=isolated_pm()) is False
    rebuilds = []
    attempts = 0

    @with_mcp_recovery(reconnect=rebuilds.append, plugin_manager=pm, replay_safe_tools=["search"])
    async def call_tool(name):
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise GatewayLost("the gateway lost your session")
        return name

    assert await call_tool("search") == "search"
    assert len(rebuilds) == 1
    # A case the built-ins do not know says nothing about whether the request ran: not replayed.
    attempts = 0
    with pytest.raises(OutcomeUncertain) as info:
        await call_tool("create_issue")
    assert isinstance(info.value.__cause__, GatewayLost)
    assert attempts == 1
    assert len(rebuilds) == 2


async def test_is_replay_safe_plugin_overrides_the_built_in():
    class SafeSearch:
        @hookimpl
        def is_replay_safe(self, call, error):
            if call.tool == "search":
                return True
            if call.tool == "charge_card":
                return False
            return None

    pm = isolated_pm(SafeSearch())
    executions: list[str] = []

    def make(error_factory):
        @with_mcp_recovery(reconnect=lambda call: None, plugin_manager=pm)
        async def call_tool(name):
            executions.append(name)
            if executions.count(name) == 1:
                raise error_factory()
            return name

        return call_tool

    lost_in_flight = make(in_flight_error)
    assert await lost_in_flight("search") == "search"  # in flight, but the plugin says safe
    assert executions.count("search") == 2
    with pytest.raises(OutcomeUncertain):
        await lost_in_flight("write_file")  # the built-in: not annotated, not safe
    assert executions.count("write_file") == 1
    refused = make(session_lost_error)
    with pytest.raises(OutcomeUncertain):
        await refused("charge_card")  # refused before running, but the plugin vetoes the replay
    assert executions.count("charge_card") == 1
    assert await refused("write_file") == "write_file"  # refused before running: safe


async def test_replay_safe_tools_are_replayed_after_an_in_flight_loss():
    pm = isolated_pm()
    executions: list[str] = []

    @with_mcp_recovery(reconnect=lambda call: None, plugin_manager=pm, replay_safe_tools={"get_weather"})
    async def call_tool(name):
        executions.append(name)
        if executions.count(name) == 1:
            raise in_flight_error()
        return name

    assert await call_tool("get_weather") == "get_weather"
    assert executions == ["get_weather", "get_weather"]


@pytest.mark.parametrize(
    "make",
    [
        in_flight_error,
        lambda: sdk_error(-32603, "Session terminated before the request completed"),
        lambda: httpx.RemoteProtocolError("peer closed connection without sending complete message body"),
    ],
)
async def test_outcome_uncertain_after_an_in_flight_loss(make):
    counter = HookCounter()
    pm = isolated_pm(counter)
    owner_cls = owner_class(pm, server="http://api.example/mcp")
    error = make()
    executions = 0

    class Writer(owner_cls):
        @with_mcp_recovery(
            reconnect=lambda call: call.owner.areconnect(call), plugin_manager=pm, server="http://api.example/mcp"
        )
        async def create_issue(self, name, arguments=None):
            nonlocal executions
            executions += 1
            raise error

    owner = Writer()
    with pytest.raises(OutcomeUncertain) as info:
        await owner.create_issue("create_issue", {"title": "t"})
    uncertain = info.value
    assert uncertain.server == "http://api.example/mcp"
    assert uncertain.tool == "create_issue"
    assert uncertain.__cause__ is error
    assert "check whether" in str(uncertain)
    assert executions == 1  # not replayed
    assert owner.reconnects == 1  # but the session was healed for the next call
    assert counter.errors["on_giveup"] == [uncertain]
    assert await owner.call_tool("next") == ("next", 1)


async def test_a_rebuild_that_fails_once_still_replays_a_refused_call(monkeypatch):
    """The replay decision is about the call's own loss, not about how the rebuild went."""
    monkeypatch.setattr(engine, "_backoff", lambda rebuilds: 0.001)
    pm = isolated_pm()
    rebuilds = 0
    executions = 0

    def flaky_rebuild(call):
        nonlocal rebuilds
        rebuilds += 1
        if rebuilds == 1:
            raise RuntimeError("server still starting")

    @with_mcp_recovery(reconnect=flaky_rebuild, plugin_manager=pm)
    async def call_tool(name):
        nonlocal executions
        executions += 1
        if executions == 1:
            raise session_lost_error()  # refused before it ran: safe to replay
        return name

    assert await asyncio.wait_for(call_tool("create_issue"), 10) == "create_issue"
    assert rebuilds == 2
    assert executions == 2


async def test_a_rebuild_raising_an_error_is_seen_as_a_failed_rebuild(monkeypatch):
    monkeypatch.setattr(engine, "_backoff", lambda rebuilds: 0.001)

    class Failing:
        @hookimpl
        def reconnect(self, call):
            raise RuntimeError("initialize failed")

    pm = isolated_pm(Failing())

    @with_mcp_recovery(plugin_manager=pm, max_reconnects=2)
    async def call_tool(name):
        raise session_lost_error()

    with pytest.raises(RuntimeError, match="initialize failed") as info:
        await asyncio.wait_for(call_tool("x"), 10)
    assert "2 rebuild(s)" in "\n".join(info.value.__notes__)


@pytest.mark.parametrize("flavour", ["async", "sync"])
async def test_waiting_for_a_restarting_server_is_one_rebuild(monkeypatch, flavour):
    """Refused connections while the server restarts don't use up max_reconnects: the wait for the
    server is retried with backoff until the deadline, and the call answers when it is back."""
    monkeypatch.setattr(engine, "_backoff", lambda attempts: 0.001)
    attempts: list[int] = []

    def reconnect(call):
        attempts.append(call.attempt)
        if len(attempts) <= 5:  # the server is still coming back
            raise httpx.ConnectError("All connection attempts failed")

    state = {"calls": 0}

    def body(name):
        state["calls"] += 1
        if state["calls"] == 1:
            raise session_lost_error()
        return "answered"

    policy = {"reconnect": reconnect, "max_reconnects": 1, "deadline": 10, "plugin_manager": isolated_pm()}
    if flavour == "async":

        @with_mcp_recovery(**policy)
        async def call_tool(name):
            return body(name)

        assert await call_tool("x") == "answered"
    else:

        @with_mcp_recovery(**policy)
        def call_tool(name):
            return body(name)

        assert call_tool("x") == "answered"
    assert len(attempts) == 6
    assert state["calls"] == 2


async def test_a_server_that_stays_unreachable_is_tried_a_bounded_number_of_times(monkeypatch):
    monkeypatch.setattr(engine, "_backoff", lambda attempts: 0.0001)
    refused: list[Exception] = []

    def reconnect(call):
        refused.append(httpx.ConnectError("All connection attempts failed"))
        raise refused[-1]

    @with_mcp_recovery(reconnect=reconnect, max_reconnects=1, deadline=60, plugin_manager=isolated_pm())
    async def call_tool(name):
        raise session_lost_error()

    with pytest.raises(httpx.ConnectError) as info:
        await asyncio.wait_for(call_tool("x"), 30)
    assert len(refused) == engine.UNREACHABLE_LIMIT
    assert info.value is refused[-1]
    notes = "\n".join(info.value.__notes__)
    assert f"{engine.UNREACHABLE_LIMIT} of them found the server unreachable" in notes


def test_outcome_uncertain_survives_pickling():
    import pickle

    uncertain = OutcomeUncertain("http://api.example/mcp", "create_issue", "connection closed")
    copy = pickle.loads(pickle.dumps(uncertain))
    assert type(copy) is OutcomeUncertain
    assert (copy.server, copy.tool, str(copy)) == (uncertain.server, uncertain.tool, str(uncertain))


async def test_an_async_rebuild_runs_in_the_failing_calls_own_task() -> None:
    """So that it may close and reopen anyio contexts (an SDK session) that task entered."""
    tasks: list[asyncio.Task[Any] | None] = []
    attempts = 0

    async def rebuild(call: ToolCall) -> None:
        tasks.append(asyncio.current_task())

    @with_mcp_recovery(reconnect=rebuild, deadline=5)
    async def call_tool(name: str, arguments: dict[str, Any]) -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("Session terminated")
        return "answered"

    assert await call_tool("echo", {}) == "answered"
    assert tasks == [asyncio.current_task()]


async def test_an_async_rebuild_past_the_deadline_is_cut_in_the_calling_task() -> None:
    cancelled = asyncio.Event()

    async def rebuild(call: ToolCall) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    @with_mcp_recovery(reconnect=rebuild, deadline=0.3)
    async def call_tool(name: str, arguments: dict[str, Any]) -> str:
        raise RuntimeError("Session terminated")

    with pytest.raises(RuntimeError, match="Session terminated") as raised:
        await call_tool("echo", {})
    assert cancelled.is_set()
    assert "giving up" in "".join(getattr(raised.value, "__notes__", []))
    assert asyncio.current_task() is not None and not asyncio.current_task().cancelling()  # type: ignore[union-attr]
