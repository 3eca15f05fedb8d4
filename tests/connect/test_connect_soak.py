"""Soak: thousands of calls through ``connect()`` with the server SIGKILLed every hundred or so."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import pytest
from connect_helpers import SESSIONS, settle_tasks, value

import mcp_hooks

MAX_CALLS = 2500
MAX_SECONDS = 25.0
BATCH = 25
KILL_EVERY = 4  # batches, i.e. a session kill every hundred calls


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_soak_restarts(server: Any) -> None:
    tasks_before = await settle_tasks()
    echo_ok = 0
    put_ok: dict[str, str] = {}
    incr_ok: set[str] = set()
    incr_uncertain: set[str] = set()
    restarts = 0
    calls = 0
    n = 0
    started = time.monotonic()

    async def one(i: int) -> None:
        nonlocal echo_ok
        kind = i % 10
        if kind < 6:
            assert value(await s.call_tool("echo", {"text": f"e{i}"})) == f"e{i}"
            echo_ok += 1
        elif kind < 9:
            key, val = f"k{i}", f"v{i}"
            assert (await s.call_tool("put", {"key": key, "value": val})).content[0].text == f"{key}={val}"
            put_ok[key] = val
        else:
            key = f"c{i}"
            try:
                result = await s.call_tool("incr", {"key": key})
            except mcp_hooks.OutcomeUncertain:
                incr_uncertain.add(key)
            else:
                assert result.content[0].text == "1"
                incr_ok.add(key)

    async with mcp_hooks.connect(server.url, **SESSIONS) as s:
        batch_no = 0
        while calls < MAX_CALLS and time.monotonic() - started < MAX_SECONDS:
            batch_no += 1
            restart = None
            if batch_no % KILL_EVERY == 0:
                restart = asyncio.create_task(asyncio.to_thread(server.restart, signal.SIGKILL))
                restarts += 1
            batch = [one(n + j) for j in range(BATCH)]
            n += BATCH
            await asyncio.wait_for(asyncio.gather(*batch), 60)
            if restart is not None:
                await restart
            calls += BATCH
        reconnects = s.reconnects
    elapsed = time.monotonic() - started
    print(
        f"soak: {calls} calls, {restarts} restarts, {reconnects} reconnects, {elapsed:.1f} s, "
        f"{len(incr_uncertain)} uncertain incr"
    )

    assert calls >= 200, calls  # bounded by time on a shared 2-core machine
    assert restarts >= 2
    assert 1 <= reconnects <= restarts
    # no read-only call lost
    assert echo_ok == sum(1 for i in range(calls) if i % 10 < 6)
    # idempotent writes: every one answered and stored
    assert len(put_ok) == sum(1 for i in range(calls) if 6 <= i % 10 < 9)
    for key, val in put_ok.items():
        assert server.stored(key) == val
    # non-idempotent writes never ran twice; an answered one ran exactly once
    assert len(incr_ok) + len(incr_uncertain) == sum(1 for i in range(calls) if i % 10 == 9)
    for key in incr_ok:
        assert server.counter(key) == 1, key
    for key in incr_uncertain:
        assert server.counter(key) <= 1, key
    assert server.executions("incr") <= len(incr_ok) + len(incr_uncertain)
    assert server.executions("put") >= len(put_ok)
    # nothing leaked
    assert not await settle_tasks() - tasks_before
