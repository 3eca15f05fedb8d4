"""``instrument("mcp", deadline=..., max_reconnects=..., breaker_after=..., replay_safe_tools=...)``: the
healing layer takes ``connect()``'s recovery options, checked as ``connect()`` checks them, for the
sessions opened afterwards. mcp 1.x and 2.x, against the kit's real server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from healing_helpers import Events, error_text, outcome, raw_session, text

import mcp_hooks
from mcp_hooks.healing import settings

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def heal_with() -> Iterator[Any]:
    """``instrument("mcp", **options)`` for the test; the SDK (and the defaults) its own again afterwards."""

    def on(**options: Any) -> None:
        assert mcp_hooks.instrument("mcp", **options) == {"mcp": True}

    try:
        yield on
    finally:
        mcp_hooks.uninstrument("mcp")


@pytest.mark.parametrize(
    ("options", "error", "named"),
    [
        ({"dedline": 5}, TypeError, "'dedline'"),
        ({"deadline": -1}, ValueError, "'deadline'"),
        ({"deadline": "5"}, TypeError, "'deadline'"),
        ({"max_reconnects": -1}, ValueError, "'max_reconnects'"),
        ({"breaker_after": 0}, ValueError, "'breaker_after'"),
        ({"breaker_after": True}, ValueError, "'breaker_after'"),
        ({"replay_safe_tools": "incr"}, TypeError, "'replay_safe_tools'"),
    ],
)
def test_a_bad_option_fails_at_once_naming_it_and_changes_nothing(
    options: dict[str, Any], error: type[Exception], named: str
) -> None:
    mcp_hooks.instrument("mcp", deadline=7, replay_safe_tools=["search"])
    try:
        before = settings.current()
        with pytest.raises(error, match=named) as caught:
            mcp_hooks.instrument("mcp", **options)
        assert "instrument('mcp')" in str(caught.value)
        assert settings.current() == before
    finally:
        mcp_hooks.uninstrument("mcp")
    assert settings.current() == settings.HealSettings(), "uninstrument left options behind"


async def test_deadline_bounds_the_wait_on_a_down_server(server: Any, heal_with: Any) -> None:
    """With ``deadline=1`` and no breaker, a call to a killed server is answered with an error well before
    the default 15 s; the next call waits for a rebuild again rather than failing fast; and once the server
    is back, the same session answers."""
    heal_with(deadline=1, breaker_after=None)
    async with raw_session(server.url) as session:
        text(await session.call_tool("echo", {"text": "warm"}))
        server.kill()
        for _ in range(2):
            with pytest.raises(Exception) as caught:
                await asyncio.wait_for(session.call_tool("echo", {"text": "down"}), 8)
            message = error_text(caught.value)
            assert "could not rebuild the session within 1 s" in message, message
            assert "unreachable since" not in message, message
            assert outcome(caught.value) == ("not-run", "unreachable")
        server.start()
        assert text(await asyncio.wait_for(session.call_tool("echo", {"text": "up"}), 20)).startswith("up")


async def test_breaker_after_counts_the_whole_outage(server: Any, heal_with: Any) -> None:
    """``breaker_after`` longer than the deadline: the first calls each wait their deadline; once the server
    has been unreachable that long, calls fail at once naming since when."""
    heal_with(deadline=0.5, breaker_after=1.5)
    async with raw_session(server.url) as session:
        text(await session.call_tool("echo", {"text": "warm"}))
        server.kill()
        messages, outcomes = [], []
        for _ in range(12):
            with pytest.raises(Exception) as caught:
                await asyncio.wait_for(session.call_tool("echo", {"text": "down"}), 8)
            messages.append(error_text(caught.value))
            outcomes.append(outcome(caught.value))
            if "unreachable since" in messages[-1]:
                break
        assert "could not rebuild the session within 0.5 s" in messages[0], messages
        assert "unreachable since" not in messages[0], messages
        assert "unreachable since" in messages[-1], messages
        assert outcomes[0] == ("not-run", "unreachable") and outcomes[-1] == ("not-run", "circuit-open"), outcomes


async def test_breaker_after_shorter_than_the_deadline_fails_calls_at_once_then_recovers(
    server: Any, heal_with: Any
) -> None:
    """``breaker_after`` shorter than the deadline: a call to a dead server is answered once the server has
    been unreachable that long, not after the whole deadline; the next calls fail at once; and once the
    server is back, a probe finds it and the same session answers again."""
    heal_with(deadline=30, breaker_after=1)
    async with raw_session(server.url) as session:
        text(await session.call_tool("echo", {"text": "warm"}))
        server.kill()
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(Exception) as caught:
            await asyncio.wait_for(session.call_tool("echo", {"text": "down"}), 20)
        waited = loop.time() - started
        assert "unreachable since" in error_text(caught.value), error_text(caught.value)
        assert outcome(caught.value) == ("not-run", "circuit-open")
        assert waited < 15, f"answered after {waited:.1f} s: the breaker waited out the deadline"
        started = loop.time()
        with pytest.raises(Exception) as again:
            await asyncio.wait_for(session.call_tool("echo", {"text": "still down"}), 20)
        assert outcome(again.value) == ("not-run", "circuit-open")
        assert loop.time() - started < 15
        server.start()
        answer, refusals = None, []
        for _ in range(40):  # a probe is let through at most every BREAKER_PROBE_MAX s
            try:
                answer = text(await asyncio.wait_for(session.call_tool("echo", {"text": "up"}), 20))
                break
            except Exception as exc:
                refusals.append(outcome(exc))
                await asyncio.sleep(0.5)
        assert answer is not None and answer.startswith("up"), "the session never answered again"
        assert set(refusals) <= {("not-run", "circuit-open")}, refusals


async def test_replay_safe_tools_replays_a_write_lost_in_flight(server: Any, heal_with: Any, events: Events) -> None:
    heal_with(replay_safe_tools=["incr"])
    ran = server.executions_from_now()
    async with raw_session(server.url) as session:
        text(await session.call_tool("echo", {"text": "warm"}))
        server.kill_during_next_call("incr")
        reviver = server.revive_when_dead()
        result = await asyncio.wait_for(session.call_tool("incr", {"key": "named-safe"}), 20)
        reviver.join(10)
        assert not getattr(result, "isError", False) and not getattr(result, "is_error", False), result
    assert ran("incr") == 2  # the lost run and its replay
    assert [c.tool for c in events.recovered] == ["incr"]
    assert events.giveups == []


async def test_max_reconnects_zero_answers_a_lost_request_and_heals_for_the_next(
    server: Any, heal_with: Any, events: Events
) -> None:
    heal_with(max_reconnects=0)
    ran = server.executions_from_now()
    async with raw_session(server.url) as session:
        text(await session.call_tool("echo", {"text": "warm"}))
        server.expire_sessions()
        with pytest.raises(Exception) as caught:
            await asyncio.wait_for(session.call_tool("echo", {"text": "refused"}), 20)
        message = error_text(caught.value)
        assert "lost 1 time during this request; gave up (max_reconnects=0)" in message, message
        assert outcome(caught.value) == ("not-run", "max-reconnects")  # refused: it never ran
        assert text(await asyncio.wait_for(session.call_tool("echo", {"text": "next"}), 20)).startswith("next")
    assert ran("echo") == 2  # warm and next: the refused one never ran
    assert [c.tool for c, _ in events.giveups] == ["echo"]


async def test_options_reach_only_sessions_opened_afterwards(server: Any, heal_with: Any) -> None:
    """A session keeps the options it opened with; one opened after ``instrument("mcp", ...)`` has the new."""
    heal_with(replay_safe_tools=["incr"])
    ran = server.executions_from_now()
    async with raw_session(server.url) as before:
        mcp_hooks.instrument("mcp", replay_safe_tools=[])
        text(await before.call_tool("echo", {"text": "warm"}))
        server.kill_during_next_call("incr")
        reviver = server.revive_when_dead()
        await asyncio.wait_for(before.call_tool("incr", {"key": "kept"}), 20)  # replayed: opened before
        reviver.join(10)
        async with raw_session(server.url) as after:
            text(await after.call_tool("echo", {"text": "warm"}))
            server.kill_during_next_call("incr")
            reviver = server.revive_when_dead()
            with pytest.raises(Exception) as caught:
                await asyncio.wait_for(after.call_tool("incr", {"key": "new"}), 20)
            reviver.join(10)
            assert error_text(caught.value).startswith("outcome uncertain"), error_text(caught.value)
    assert ran("incr") == 3
