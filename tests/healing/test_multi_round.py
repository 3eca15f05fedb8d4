"""The 2026-07-28 protocol's multi-round-trip requests under ``instrument("mcp")``: an mcp 2.x ``Client``
drives the rounds itself (its elicitation callback answers each ``input_required``); when the server
restarts between the rounds, its new process refuses the old ``requestState`` (``-32602 "Invalid or
expired requestState"``). Beneath the Client, the healing layer sends the flow's first request again in
place of the refused round when the tool is safe to repeat, and the Client goes on with the new process's
question. Real fault server (``confirm_put`` asks the client to confirm before it stores, idempotent),
the SDK's own session-less Client, mcp 2.x."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from healing_helpers import Events, registered, text
from multi_round_helpers import restarting_on

from mcp_hooks import hookimpl
from mcp_hooks.healing.messages import MCP_MAJOR
from mcp_hooks.healing.traffic import FLOW_RESTARTS

pytestmark = [
    pytest.mark.usefixtures("healing"),
    pytest.mark.timeout(120),
    pytest.mark.skipif(MCP_MAJOR < 2, reason="multi-round-trip requests are the 2026-07-28 protocol (mcp 2.x)"),
]


@pytest.fixture
def confirming(session_less: Any) -> Any:
    server = session_less
    server.offer_confirm_tool(True)
    server.restart()
    return server


async def confirm_put(server: Any, on_elicit: Any, within: float, *, listed: bool = True, **options: Any) -> Any:
    """``confirm_put(k, v)`` through a session-less ``Client`` that listed the tools first, as frameworks
    do (``listed=False``: it did not): its result, or the exception it raised (caught inside the Client: the
    SDK wraps what leaves its ``async with`` in an ExceptionGroup)."""
    import mcp

    async with mcp.Client(server.url, elicitation_callback=on_elicit) as client:  # type: ignore[attr-defined]
        if listed:
            assert "confirm_put" in {tool.name for tool in (await client.list_tools()).tools}
        try:
            return await asyncio.wait_for(
                client.call_tool("confirm_put", {"key": "k", "value": "v"}, **options), within
            )
        except Exception as exc:
            return exc


def refused_for_its_state(outcome: Any) -> bool:
    return isinstance(outcome, Exception) and "Invalid or expired requestState" in str(outcome)


async def test_a_flow_whose_state_expired_is_started_again_and_completes(confirming: Any, events: Events) -> None:
    srv = confirming
    on_elicit, asked = restarting_on(srv, times=1)
    assert text(await confirm_put(srv, on_elicit, 30)) == "k=v"
    assert len(asked) == 2  # the user was asked again, by the new process
    assert srv.counter("confirm_asked") == 2
    assert srv.executions("confirm_put") == 1
    assert srv.stored("k") == "v"
    assert events.reconnects == []  # the server was up: no rebuild, only the flow started again


async def test_a_flow_of_a_tool_the_client_never_listed_is_judged_by_its_annotations(
    confirming: Any, events: Events
) -> None:
    """The Client calls the tool without listing the tools first: the layer lists them itself, beside the
    call, so the tool's annotations still say whether its flow may be started again."""
    srv = confirming
    on_elicit, asked = restarting_on(srv, times=1)
    assert text(await confirm_put(srv, on_elicit, 30, listed=False)) == "k=v"
    assert len(asked) == 2
    assert srv.executions("confirm_put") == 1
    assert srv.stored("k") == "v"


class _NothingIsSafe:
    @hookimpl(tryfirst=True)
    def is_replay_safe(self, call: Any, error: BaseException) -> bool:
        return False


@pytest.fixture
def nothing_is_safe() -> Iterator[None]:
    with registered(_NothingIsSafe(), "test-nothing-is-safe"):
        yield


@pytest.mark.usefixtures("nothing_is_safe")
async def test_a_flow_not_safe_to_repeat_is_given_back(confirming: Any) -> None:
    srv = confirming
    on_elicit, asked = restarting_on(srv, times=1)
    assert refused_for_its_state(await confirm_put(srv, on_elicit, 30))
    assert len(asked) == 1
    assert srv.executions("confirm_put") == 0 and srv.stored("k") is None


async def test_restarting_a_flow_is_bounded(confirming: Any) -> None:
    srv = confirming
    on_elicit, asked = restarting_on(srv, times=100)  # the state expires at every round
    assert refused_for_its_state(await confirm_put(srv, on_elicit, 60))
    assert len(asked) == FLOW_RESTARTS + 1
    assert srv.executions("confirm_put") == 0


async def test_a_flow_resumed_from_a_state_never_seen_is_not_started_again(confirming: Any) -> None:
    """A ``requestState`` the caller brought (a flow persisted by an earlier process) is the caller's to
    resume: refused, it is given back, never silently started from scratch."""
    srv = confirming
    on_elicit, asked = restarting_on(srv, times=0)
    assert refused_for_its_state(await confirm_put(srv, on_elicit, 30, request_state="sealed-elsewhere"))
    assert asked == [] and srv.counter("confirm_asked") == 0
    assert srv.executions("confirm_put") == 0
