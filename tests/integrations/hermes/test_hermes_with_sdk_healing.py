"""The hermes shim and ``mcp_hooks.instrument("mcp")`` on together (what ``mcp_hooks.instrument()`` and
``mcp-hooks run`` turn on): hermes' sessions are the shim's to heal, so one loss is rebuilt once, by the
shim through hermes' own connection task, and the SDK healing beneath stays out of it (the server task
opens its transport under ``bypass()``).
"""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest
from hermes_helpers import Hermes, Observed, answered, server_pid

from mcp_hooks import OutcomeUncertain

pytestmark = pytest.mark.timeout(120)


def test_a_restart_is_rebuilt_once_by_the_shim(
    shim: Any, sdk_healing: None, hermes: Hermes, mcp_fault_server: Any, observed: Observed
) -> None:
    server = mcp_fault_server
    hermes.connect(server)
    task = hermes.task
    first, _ = hermes.call("echo", {"text": "before"})
    server.restart(sig=signal.SIGKILL)
    answer, _ = hermes.call("echo", {"text": "after"})
    assert server_pid(answer) == server.pid != server_pid(first), answer
    time.sleep(0.5)  # a rebuild beneath the session would have started by now
    again, _ = hermes.call("echo", {"text": "again"})
    assert answered(again), again
    assert hermes.task is task  # hermes' own server object, rebuilt in place by its connection task
    assert [call.framework for call, _ in observed.reconnects] == ["hermes-agent"]
    assert not observed.giveups


def test_a_write_killed_in_flight_runs_once(
    shim: Any, sdk_healing: None, hermes: Hermes, mcp_fault_server: Any, observed: Observed
) -> None:
    server = mcp_fault_server
    hermes.connect(server, timeout=60.0)
    server.kill_during_next_call("incr", when="after")

    def bring_back() -> None:
        server.revive_when_dead(timeout=20).join(30)

    (answer,), _ = hermes.call_many([("incr", {})], bring_back)
    assert not answered(answer)
    assert answer["outcome_uncertain"] is True, answer  # the shim's verdict, not the SDK healing's
    assert server.executions("incr") == 1
    assert server.counter() == 1
    assert [type(error) for _, error in observed.giveups] == [OutcomeUncertain]
    again, _ = hermes.call("echo", {"text": "next"})
    assert answered(again), again
    assert server.executions("incr") == 1
    assert {call.framework for call, _ in observed.reconnects} == {"hermes-agent"}
