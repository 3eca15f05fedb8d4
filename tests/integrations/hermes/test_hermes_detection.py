"""hermes' session-expiry detector (``tools.mcp_tool._is_session_expired_error``) with and without the shim.

The errors are real objects of the SDK hermes pins (mcp 1.26), httpx and anyio, in the shapes a
client sees when a session is lost (FIELD_NOTES section 1), wrapped the ways they arrive.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
from hermes_helpers import MEASUREMENTS
from mcp import ClientSession
from mcp.shared.exceptions import McpError
from mcp.types import ErrorData
from tools import mcp_tool

import mcp_hooks

if sys.version_info < (3, 11):  # pragma: no cover - hermes needs 3.11
    from exceptiongroup import ExceptionGroup


def mcp_error(code: int, message: str) -> McpError:
    return McpError(ErrorData(code=code, message=message))


def http_error(status: int, body: str = "", *, session: bool = True) -> httpx.HTTPStatusError:
    headers = {"mcp-session-id": "0c1d2e3f"} if session else {}
    request = httpx.Request("POST", "http://127.0.0.1:9/mcp", headers=headers)
    response = httpx.Response(status, text=body, request=request)
    return httpx.HTTPStatusError(
        f"Client error '{status}' for url 'http://127.0.0.1:9/mcp'", request=request, response=response
    )


def caused(outer: BaseException, cause: BaseException) -> BaseException:
    outer.__cause__ = cause
    return outer


def raised_in_task_group(error: BaseException) -> BaseException:
    """What anyio's task group of the mcp 1.x transport raises around a failed POST."""
    return ExceptionGroup("unhandled errors in a TaskGroup", [error])


# name, error: every one of them means the session (or its connection) is gone.
LOSS_SHAPES: list[tuple[str, BaseException]] = [
    ("mcp 1.x 404: 32600 Session terminated", mcp_error(32600, "Session terminated")),
    ("typescript server 404: -32001 Session not found", mcp_error(-32001, "Session not found")),
    (
        "ts-example 400: -32000 No valid session ID provided",
        mcp_error(-32000, "Bad Request: No valid session ID provided"),
    ),
    ("Connection closed (-32000)", mcp_error(-32000, "Connection closed")),
    ("SSE stream ended without a response", mcp_error(-32000, "SSE stream ended without a response")),
    ("Invalid or expired session", RuntimeError("Invalid or expired session")),
    ("400 naming the session, in a task group", raised_in_task_group(http_error(400, "No valid session ID provided"))),
    ("404 to a session-bearing request, in a task group", raised_in_task_group(http_error(404))),
    ("410 Gone to a session-bearing request", raised_in_task_group(http_error(410))),
    ("bare anyio ClosedResourceError", anyio.ClosedResourceError()),
    ("bare anyio BrokenResourceError", anyio.BrokenResourceError()),
    ("httpx ConnectError (server down)", httpx.ConnectError("All connection attempts failed")),
    ("httpx RemoteProtocolError mid-answer", httpx.RemoteProtocolError("peer closed connection")),
    (
        "a framework error caused by 'Session terminated'",
        caused(RuntimeError("tool failed"), mcp_error(32600, "Session terminated")),
    ),
    ("Unknown session: ...", RuntimeError("Unknown session: 8f2e")),
]

NOT_LOSS: list[tuple[str, BaseException]] = [
    ("invalid params", mcp_error(-32602, "Invalid params: 'text' is required")),
    ("method not found", mcp_error(-32601, "Method not found")),
    ("a plain error", ValueError("bad input")),
    (
        "the user interrupted",
        caused(InterruptedError("User sent a new message"), mcp_error(32600, "Session terminated")),
    ),
]

# What the issue names hermes as missing; each must be False without the shim and True with it.
MISSED_BY_HERMES = {
    "ts-example 400: -32000 No valid session ID provided",
    "400 naming the session, in a task group",
    "404 to a session-bearing request, in a task group",
    "bare anyio ClosedResourceError",
    "a framework error caused by 'Session terminated'",
}


def detect(error: BaseException) -> bool:
    return bool(mcp_tool._is_session_expired_error(error))


@pytest.mark.parametrize(("name", "error"), LOSS_SHAPES, ids=[n for n, _ in LOSS_SHAPES])
def test_every_loss_shape_is_detected_with_the_shim(shim: Any, name: str, error: BaseException) -> None:
    assert detect(error) is True, name


@pytest.mark.parametrize(("name", "error"), NOT_LOSS, ids=[n for n, _ in NOT_LOSS])
def test_other_errors_stay_undetected_with_the_shim(shim: Any, name: str, error: BaseException) -> None:
    assert detect(error) is False, name


@pytest.mark.parametrize("name", sorted(MISSED_BY_HERMES))
def test_hermes_alone_misses_what_the_issue_names(no_shim: None, name: str) -> None:
    error = dict(LOSS_SHAPES)[name]
    assert detect(error) is False, f"hermes 0.19 now detects {name!r}: update the issue's list"


def test_detection_counts(no_shim: None) -> None:
    """How many loss shapes hermes alone recognizes (reported, and pinned so a change is noticed)."""
    hermes_alone = [name for name, error in LOSS_SHAPES if detect(error)]
    MEASUREMENTS.append(
        (
            "detection of real loss shapes",
            f"hermes alone {len(hermes_alone)}/{len(LOSS_SHAPES)}, with the shim {len(LOSS_SHAPES)}/{len(LOSS_SHAPES)}",
        )
    )
    assert not MISSED_BY_HERMES & set(hermes_alone)
    assert len(hermes_alone) < len(LOSS_SHAPES)


class _Plugin:
    """A third-party plugin: adds one spelling, vetoes another."""

    @mcp_hooks.hookimpl
    def should_reconnect(self, call: Any, error: BaseException) -> bool | None:
        text = str(error)
        if "gateway lost your session" in text:
            return True
        if "Session terminated" in text and call.framework == "hermes-agent":
            return False
        return None


@pytest.fixture
def third_party() -> Iterator[None]:
    pm = mcp_hooks.plugin_manager()
    plugin = _Plugin()
    pm.register(plugin, name="hermes-test-third-party")
    try:
        yield
    finally:
        pm.unregister(plugin)


def test_a_third_party_plugin_decides_for_hermes(shim: Any, third_party: None) -> None:
    assert detect(RuntimeError("502: gateway lost your session")) is True
    assert detect(mcp_error(32600, "Session terminated")) is False  # vetoed


def test_hermes_own_spellings_still_count(shim: Any) -> None:
    # "end of file" and "broken pipe" on any error are hermes' markers, not the classifier's.
    assert detect(RuntimeError("unexpected end of file")) is True
    assert detect(RuntimeError("write failed: broken pipe")) is True


async def test_a_request_never_handed_to_a_closed_transport_is_known_not_sent(shim: Any) -> None:
    """mcp 1.x raises a bare ClosedResourceError when the transport is gone before the request is
    handed over: detected, and marked as not sent (safe to replay) rather than lost in flight."""
    to_transport, from_session = anyio.create_memory_object_stream[Any](1)
    to_session, from_transport = anyio.create_memory_object_stream[Any](1)
    session = ClientSession(from_transport, to_transport)
    await to_transport.aclose()
    with pytest.raises(anyio.ClosedResourceError) as raised:
        await session.send_ping()
    error = raised.value
    assert detect(error) is True
    assert mcp_hooks.classify(error).loss is mcp_hooks.Loss.REJECTED
    bare = anyio.ClosedResourceError()
    assert detect(bare) is True
    assert mcp_hooks.classify(bare).loss is mcp_hooks.Loss.IN_FLIGHT  # raised anywhere else: it may have run
    for stream in (from_session, to_session, from_transport):
        await stream.aclose()


def test_hermes_spellings_are_a_plugin_answering_last(shim: Any) -> None:
    pm = mcp_hooks.plugin_manager()
    names = {name for name, _ in pm.list_name_plugin()}
    assert "hermes" in names
    impls = {impl.plugin_name: impl for impl in pm.hook.should_reconnect.get_hookimpls()}
    assert impls["hermes"].trylast
    assert mcp_hooks.is_session_expired(RuntimeError("unexpected end of file")) is False  # not a hermes call
