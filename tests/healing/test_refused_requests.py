"""A request the server refuses with 429 or 503 never ran: it is sent again after the server's
``Retry-After`` (or backoff), as the ``retry_refused`` hook says; a wait longer than the built-in cap is
not waited out. Under a session healed by ``instrument("mcp")`` and under ``connect()``, mcp 1.x and 2.x,
against the kit's real server (``FaultServer.throttle``)."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from healing_helpers import raw_session, text

import mcp_hooks
from mcp_hooks import hookimpl
from mcp_hooks.healing.watch import retry_after_seconds
from mcp_hooks.plugins.retry_after import retry_refused

pytestmark = [pytest.mark.usefixtures("healing"), pytest.mark.timeout(90)]


@contextlib.asynccontextmanager
async def opened(how: str, url: str) -> AsyncIterator[Any]:
    if how == "healed":
        async with raw_session(url) as session:
            yield session
    else:
        async with mcp_hooks.connect(url, deadline=20.0) as session:
            yield session


HOW = pytest.mark.parametrize("how", ["healed", "connect"])


@HOW
@pytest.mark.parametrize(("status", "retry_after"), [(429, 1), (503, None)], ids=["429-retry-after", "503-backoff"])
async def test_a_refused_write_is_sent_again_and_runs_once(
    server: Any, how: str, status: int, retry_after: int | None
) -> None:
    async with opened(how, server.url) as session:
        text(await session.call_tool("echo", {"text": "warm"}))
        before = server.executions("incr")
        server.throttle(status, retry_after=retry_after, count=2)
        answer = await asyncio.wait_for(session.call_tool("incr", {}), 20)
        assert not getattr(answer, "isError", False) and not getattr(answer, "is_error", False), answer
        assert server.health()["throttled"] == 2
        assert server.executions("incr") == before + 1
        if how == "connect":
            assert session.reconnects == 0  # a refusal is not session loss


@HOW
async def test_a_retry_after_longer_than_the_cap_is_not_waited_out(server: Any, how: str) -> None:
    async with opened(how, server.url) as session:
        text(await session.call_tool("echo", {"text": "warm"}))
        before = server.executions("incr")
        server.throttle(429, retry_after=120)
        started = time.monotonic()
        with pytest.raises(Exception) as caught:
            await asyncio.wait_for(session.call_tool("incr", {}), 20)
        assert time.monotonic() - started < 15, "the 120 s Retry-After was waited out"
        assert "429" in str(caught.value) or "429" in repr(getattr(caught.value, "error", "")), repr(caught.value)
        assert server.executions("incr") == before
        assert server.health()["throttled"] == 1
        if how == "healed":
            data = getattr(getattr(caught.value, "error", None), "data", None)
            assert data["mcp-hooks"]["outcome"] == "not-run" and data["mcp-hooks"]["reason"] == "refused", data
        # the session is not lost: the next call answers
        assert text(await asyncio.wait_for(session.call_tool("echo", {"text": "next"}), 20)).startswith("next")


async def test_connect_waits_a_retry_after_past_the_cap_when_it_fits_the_deadline(server: Any) -> None:
    """The cap of 10 s is for a request whose deadline is unknown; connect() knows its own."""
    async with mcp_hooks.connect(server.url, deadline=25.0) as session:
        text(await session.call_tool("echo", {"text": "warm"}))
        server.throttle(429, retry_after=11)
        started = time.monotonic()
        answer = await asyncio.wait_for(session.call_tool("incr", {}), 25)
        assert time.monotonic() - started >= 10.5
        assert not getattr(answer, "isError", False) and not getattr(answer, "is_error", False), answer
    assert server.executions("incr") == 1
    assert server.health()["throttled"] == 1


async def test_connect_never_waits_a_retry_after_past_its_deadline(server: Any) -> None:
    """A Retry-After of 5 s is under the cap, but not under a 3 s deadline: refused at once, never run."""
    async with mcp_hooks.connect(server.url, deadline=3.0) as session:
        text(await session.call_tool("echo", {"text": "warm"}))
        server.throttle(429, retry_after=5)
        started = time.monotonic()
        with pytest.raises(Exception) as caught:
            await asyncio.wait_for(session.call_tool("incr", {}), 20)
        assert time.monotonic() - started < 2.5, "the Retry-After was waited past the deadline"
        assert "429" in str(caught.value) or "429" in repr(getattr(caught.value, "error", "")), repr(caught.value)
        assert text(await asyncio.wait_for(session.call_tool("echo", {"text": "next"}), 20)).startswith("next")
    assert server.executions("incr") == 0


def test_the_built_in_plugin_fits_every_wait_in_the_time_left() -> None:
    call = mcp_hooks.ToolCall(server="http://127.0.0.1:1/mcp", tool="incr")
    assert retry_refused(call, 429, 5.0, 8.0) == 5.0
    assert retry_refused(call, 429, 5.0, 3.0) is False
    assert retry_refused(call, 429, 12.0, 30.0) == 12.0
    assert retry_refused(call, 429, 12.0, None) is False  # unknown deadline: the 10 s cap
    assert retry_refused(call, 429, 10.0, None) == 10.0
    assert retry_refused(call, 503, None, 0.2) is False  # the first backoff is 0.25 to 0.5 s
    assert 0.25 <= retry_refused(call, 503, None, None) <= 0.5
    assert retry_refused(call.replace(attempt=4), 429, 0.0, None) is False


class _NoRetry:
    @hookimpl
    def retry_refused(self, call: Any, status: int, retry_after: float | None) -> bool:
        self.seen = (call.tool, call.attempt, status, retry_after)
        return False


async def test_a_plugin_can_veto_the_retry(server: Any) -> None:
    plugin = _NoRetry()
    pm = mcp_hooks.plugin_manager()
    pm.register(plugin, name="test-no-retry")
    try:
        async with opened("healed", server.url) as session:
            text(await session.call_tool("echo", {"text": "warm"}))
            server.throttle(503, retry_after=1)
            with pytest.raises(Exception, match="503"):
                await asyncio.wait_for(session.call_tool("incr", {}), 20)
    finally:
        pm.unregister(name="test-no-retry")
    assert plugin.seen == ("incr", 1, 503, 1.0)
    assert server.executions("incr") == 0


def test_retry_after_is_read_as_seconds_or_an_http_date() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(" 0 ") == 0.0
    assert retry_after_seconds("-5") == 0.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    seconds = retry_after_seconds(later)
    assert seconds is not None and 25 <= seconds <= 31
    assert retry_after_seconds(email.utils.formatdate(time.time() - 30, usegmt=True)) == 0.0
