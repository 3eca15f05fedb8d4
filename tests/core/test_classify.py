"""Classification over REAL error objects of the installed SDK major (mcp 1.x or 2.x), wrapped the ways
frameworks wrap them, plus every spelling of FIELD_NOTES section 1.

Each row says what the error is (``Loss``); ``is_session_expired`` must agree with it.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest
from core_helpers import (
    CONNECTION_CLOSED,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    REQUEST_TIMEOUT,
    SDK_MAJOR,
    BaseExceptionGroup,
    ExceptionGroup,
    anyio,
    http_status_error,
    httpx,
    in_flight_error,
    isolated_pm,
    sdk_error,
    session_lost_error,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_hooks import Loss, SessionLostMark, classify, is_session_expired, mark_session_lost, session_lost_mark

REJECTED, IN_FLIGHT, NONE, INTERRUPTED = Loss.REJECTED, Loss.IN_FLIGHT, Loss.NONE, Loss.INTERRUPTED


class ToolError(Exception):
    """Shaped like fastmcp's ``ToolError``: a tool's own failure, whatever its text says."""


class ModelRetry(Exception):
    """Shaped like pydantic-ai's ``ModelRetry``: a framework's own error wrapping the SDK's."""


def _sdk_rows() -> list[tuple[str, BaseException, Loss]]:
    rows: list[tuple[str, BaseException, Loss]] = []
    if SDK_MAJOR >= 2:
        rows += [
            ("2.x python server 404", sdk_error(INVALID_REQUEST, "Session not found"), REJECTED),
            ("2.x go server bare 404", sdk_error(INVALID_REQUEST, "Session terminated"), REJECTED),
        ]
    else:
        rows += [
            ("1.x any 404", sdk_error(32600, "Session terminated"), REJECTED),
            ("1.x 404, other words", sdk_error(32600, "Not Found"), REJECTED),
        ]
    rows += [
        ("typescript server 404", sdk_error(-32001, "Session not found"), REJECTED),
        ("ts example 400", sdk_error(-32000, "Bad Request: No valid session ID provided"), REJECTED),
        ("connection closed", sdk_error(CONNECTION_CLOSED, "Connection closed"), IN_FLIGHT),
        ("sse ended", sdk_error(CONNECTION_CLOSED, "SSE stream ended without a response"), IN_FLIGHT),
        (
            "2.x server: terminated in flight",
            sdk_error(INTERNAL_ERROR, "Session terminated before the request completed"),
            IN_FLIGHT,
        ),
        ("2026-07-28 unsupported version", sdk_error(-32022, "Unsupported protocol version"), REJECTED),
        ("2026-07-28 header mismatch", sdk_error(-32020, "Mcp-Name header does not match"), REJECTED),
        ("2026-07-28 missing capability", sdk_error(-32021, "Missing required client capability"), NONE),
        ("request timed out", sdk_error(REQUEST_TIMEOUT, "Request timed out"), NONE),
        ("request 'tools/call' timed out", sdk_error(REQUEST_TIMEOUT, "Request 'tools/call' timed out"), NONE),
        ("method not found", sdk_error(METHOD_NOT_FOUND, "Method not found"), NONE),
        ("invalid params", sdk_error(INVALID_PARAMS, "Invalid params: 'x' is required"), NONE),
        ("a tool's own error", sdk_error(INTERNAL_ERROR, "division by zero"), NONE),
    ]
    return rows


def _http_rows() -> list[tuple[str, BaseException, Loss]]:
    return [
        ("404 with session id, empty body", http_status_error(404), REJECTED),
        ("404 with session id, odd body", http_status_error(404, body='{"error": "Connection closed"}'), REJECTED),
        ("404 without session id", http_status_error(404, session=False, body="Not Found"), NONE),
        (
            "400 naming the session",
            http_status_error(400, body='{"error": {"message": "Bad Request: No valid session ID provided"}}'),
            REJECTED,
        ),
        ("400 about something else", http_status_error(400, body='{"error": "Parse error"}'), NONE),
        ("410 with session id", http_status_error(410, body="Gone"), REJECTED),
        ("503 too many sessions", http_status_error(503, body="Too many open sessions"), NONE),
        ("503 session unknown", http_status_error(503, body="session is unknown on this API instance"), REJECTED),
        ("500 with session id", http_status_error(500, body="Internal Server Error"), NONE),
    ]


def _transport_rows() -> list[tuple[str, BaseException, Loss]]:
    return [
        ("httpx ConnectError", httpx.ConnectError("All connection attempts failed"), REJECTED),
        ("ConnectionRefusedError", ConnectionRefusedError(111, "Connection refused"), REJECTED),
        ("httpx RemoteProtocolError", httpx.RemoteProtocolError("peer closed connection"), IN_FLIGHT),
        ("httpx ReadError", httpx.ReadError("connection reset"), IN_FLIGHT),
        ("anyio ClosedResourceError", anyio.ClosedResourceError(), IN_FLIGHT),
        ("anyio BrokenResourceError", anyio.BrokenResourceError(), IN_FLIGHT),
        ("anyio EndOfStream", anyio.EndOfStream(), IN_FLIGHT),
        ("ConnectionResetError", ConnectionResetError(104, "Connection reset by peer"), IN_FLIGHT),
        # A bare message is not proof.
        ("bare 'Connection refused'", RuntimeError("Connection refused"), NONE),
        ("bare 'connection closed'", RuntimeError("connection closed"), NONE),
        ("bare 'Connection closed' ValueError", ValueError("Connection closed"), NONE),
        ("plain ValueError", ValueError("bad input"), NONE),
        ("KeyError", KeyError("session"), NONE),
    ]


# Every spelling of FIELD_NOTES section 1, as a framework would hand it on: only the text survived.
MESSAGE_ROWS = [
    ("Session not found", REJECTED),
    ("Session terminated", REJECTED),
    ("Bad Request: No valid session ID provided", REJECTED),
    ("Invalid or expired session", REJECTED),
    ("Unknown session: abc", REJECTED),
    ("Session expired", REJECTED),
    ("Server not initialized", REJECTED),
    ("503 session is unknown on this API instance", REJECTED),
    ("MCP session has been terminated or no longer exists on the server.", REJECTED),
    ("Tool call 'x' failed due to connection loss: Connection closed", IN_FLIGHT),
    ("Server session was closed unexpectedly", IN_FLIGHT),
    ("SSE stream ended without a response", IN_FLIGHT),
    ("Session terminated before the request completed", IN_FLIGHT),
    ("Request timed out", NONE),
    ("Connection refused", NONE),
    ("connection closed", NONE),
    ("the user's session with the travel agent ended", NONE),
]

TABLE = _sdk_rows() + _http_rows() + _transport_rows()


@pytest.fixture(scope="module")
def pm():
    return isolated_pm()


def _check(error: BaseException, expected: Loss, pm) -> None:
    verdict = classify(error)
    assert verdict.loss is expected, verdict
    assert bool(verdict) is (expected in (REJECTED, IN_FLIGHT))
    assert is_session_expired(error, plugin_manager_=pm) is (expected in (REJECTED, IN_FLIGHT))
    if expected is REJECTED:
        assert verdict.request_ran is False
    if expected in (REJECTED, IN_FLIGHT):
        assert verdict.reason
        assert verdict.evidence is not None


@pytest.mark.parametrize(("label", "error", "expected"), TABLE, ids=[row[0] for row in TABLE])
def test_real_error(label, error, expected, pm):
    _check(error, expected, pm)


@pytest.mark.parametrize(("label", "error", "expected"), TABLE, ids=[row[0] for row in TABLE])
def test_real_error_in_an_exception_group(label, error, expected, pm):
    group = ExceptionGroup("unhandled errors in a TaskGroup", [ValueError("unrelated teardown noise"), error])
    _check(group, expected, pm)
    nested = BaseExceptionGroup("outer", [ExceptionGroup("inner", [group])])
    _check(nested, expected, pm)


@pytest.mark.parametrize(("label", "error", "expected"), TABLE, ids=[row[0] for row in TABLE])
def test_real_error_raised_from(label, error, expected, pm):
    try:
        try:
            raise error
        except BaseException as inner:
            raise RuntimeError("tool call failed") from inner
    except RuntimeError as outer:
        _check(outer, expected, pm)


def _raised_while_handling(error: BaseException) -> BaseException:
    try:
        try:
            raise error
        except BaseException:
            raise ModelRetry("the tool failed, try again")  # noqa: B904 - implicit chaining is the point
    except ModelRetry as outer:
        return outer


@pytest.mark.parametrize(("label", "error", "expected"), TABLE, ids=[row[0] for row in TABLE])
def test_real_error_as_context(label, error, expected, pm):
    outer = _raised_while_handling(error)
    assert outer.__context__ is error
    assert outer.__cause__ is None
    _check(outer, expected, pm)


@pytest.mark.parametrize(("label", "error", "expected"), TABLE, ids=[row[0] for row in TABLE])
def test_real_error_under_a_tool_error(label, error, expected, pm):
    tool_error = ToolError(f"Error calling tool 'x': {error}")
    tool_error.__cause__ = error
    _check(tool_error, expected, pm)


@pytest.mark.parametrize(("text", "expected"), MESSAGE_ROWS, ids=[row[0] for row in MESSAGE_ROWS])
def test_message_spellings(text, expected, pm):
    _check(RuntimeError(text), expected, pm)
    _check(Exception(f"MCP error: {text}"), expected, pm)


@pytest.mark.parametrize(("text", "expected"), MESSAGE_ROWS, ids=[row[0] for row in MESSAGE_ROWS])
def test_message_spellings_in_a_real_sdk_error(text, expected, pm):
    # Under a generic server-error code only the words can tell.
    error = sdk_error(INTERNAL_ERROR, text)
    if text.lower() in ("connection closed",):
        expected = IN_FLIGHT  # the SDK's own "Connection closed" is proof, unlike a bare message
    _check(error, expected, pm)


def test_tool_error_text_alone_is_not_session_loss(pm):
    for text in ("session not found", "Session terminated", "Error calling tool: Session expired"):
        _check(ToolError(text), NONE, pm)
    # ... but the SDK error under it is.
    wrapped = ToolError("session not found")
    wrapped.__cause__ = session_lost_error()
    _check(wrapped, REJECTED, pm)


@settings(max_examples=60, deadline=None, database=None)
@given(st.text(max_size=80))
def test_positive_32600_is_session_loss_whatever_its_message(message):
    # mcp 1.x answers every 404 with the positive literal 32600, ignoring the body.
    error = sdk_error(32600, message)
    verdict = classify(error)
    assert verdict.is_session_loss
    assert is_session_expired(error, plugin_manager_=_PM)


_PM = isolated_pm()


@pytest.mark.parametrize("message", ["Session terminated", "Not Found", "", "Request timed out", "x"])
def test_positive_32600_is_rejected(message, pm):
    _check(sdk_error(32600, message), REJECTED, pm)


def test_mark_wins_over_wording(pm):
    # Wording says "not session loss"; the HTTP layer saw a 404 to a session-bearing request.
    error = sdk_error(REQUEST_TIMEOUT, "Request timed out")
    assert mark_session_lost(error, SessionLostMark(REJECTED, status=404, method="tools/call")) is error
    assert session_lost_mark(error) == SessionLostMark(REJECTED, status=404, method="tools/call")
    _check(error, REJECTED, pm)
    # Wording says "in flight"; the mark says the request was refused: the request did not run.
    closed = in_flight_error()
    mark_session_lost(closed, SessionLostMark(REJECTED, status=404))
    _check(closed, REJECTED, pm)
    # Wording says "refused"; the mark says the connection died in flight.
    refused = session_lost_error()
    mark_session_lost(refused, SessionLostMark(IN_FLIGHT, detail="stream dropped"))
    _check(refused, IN_FLIGHT, pm)
    assert classify(refused).reason == "stream dropped"


def test_mark_deeper_in_the_graph_wins_over_the_wording_around_it(pm):
    # The transport marked what it saw; the SDK then raised its own "Connection closed" around it.
    seen = http_status_error(404, body='{"jsonrpc": "2.0", "error": {"code": -32000, "message": "Connection closed"}}')
    mark_session_lost(seen, SessionLostMark(REJECTED, status=404, method="tools/call"))
    outer = in_flight_error()
    outer.__context__ = seen
    _check(outer, REJECTED, pm)
    group = ExceptionGroup("unhandled errors in a TaskGroup", [in_flight_error(), seen])
    _check(group, REJECTED, pm)


def test_mark_on_an_exception_without_dict_does_not_break():
    error = anyio.EndOfStream()
    assert mark_session_lost(error, SessionLostMark(REJECTED)) is error  # may or may not stick
    assert classify(error).is_session_loss


def test_cancelled_error_deep_in_the_graph_does_not_stop_recovery(pm):
    # mcp 1.x: anyio's teardown leaves a CancelledError in the context of a recoverable failure.
    error = session_lost_error()
    debris = asyncio.CancelledError("Cancelled by cancel scope 7f3c")
    debris.__context__ = anyio.ClosedResourceError()
    error.__context__ = debris
    _check(error, REJECTED, pm)
    # A group that still holds a CancelledError is a BaseException (the engine never catches it), but
    # the verdict on its contents is unchanged.
    group = BaseExceptionGroup("unhandled errors in a TaskGroup", [asyncio.CancelledError(), in_flight_error()])
    assert classify(group).loss is IN_FLIGHT
    outer = RuntimeError("tool call failed")
    outer.__cause__ = asyncio.CancelledError()
    outer.__cause__.__context__ = httpx.ConnectError("All connection attempts failed")
    _check(outer, REJECTED, pm)


def test_cancellation_raised_as_the_error_itself_is_never_session_loss(pm):
    for error in (asyncio.CancelledError(), KeyboardInterrupt(), SystemExit(1)):
        error.__context__ = session_lost_error()
        assert is_session_expired(error, plugin_manager_=pm) is False


@pytest.mark.parametrize("where", ["self", "cause", "context", "group", "deep"])
def test_interrupted_error_anywhere_wins(where, pm):
    error = session_lost_error()
    interrupted = InterruptedError("the user pressed stop")
    if where == "self":
        error = InterruptedError("Session not found")
    elif where == "cause":
        error.__cause__ = interrupted
    elif where == "context":
        error.__context__ = interrupted
    elif where == "group":
        error = ExceptionGroup("tg", [session_lost_error(), interrupted])
    else:
        chain = [RuntimeError(f"layer {i}") for i in range(50)]
        for upper, lower in itertools.pairwise(chain):
            upper.__cause__ = lower
        chain[0].__context__ = session_lost_error()
        chain[-1].__context__ = interrupted
        error = chain[0]
    _check(error, INTERRUPTED, pm)


def test_nearest_evidence_wins(pm):
    # The error raised to the caller says more than its history.
    outer = session_lost_error()
    outer.__context__ = in_flight_error()
    assert classify(outer).loss is REJECTED
    outer = in_flight_error()
    outer.__context__ = session_lost_error()
    assert classify(outer).loss is IN_FLIGHT


def test_a_broken_str_does_not_break_classification(pm):
    class Weird(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    error = Weird()
    assert classify(error).loss is NONE
    error.__cause__ = session_lost_error()
    assert classify(error).loss is REJECTED


def test_an_error_type_that_replaces_its_cause_link_is_walked_by_what_it_returns(pm):
    class Linked(Exception):
        # a framework that computes the cause (here once as garbage, once as a real session loss)
        @property
        def __cause__(self):  # type: ignore[override]
            return self.args[1] if len(self.args) > 1 else "not an exception"

    assert classify(Linked("x")).loss is NONE
    assert classify(Linked("x", session_lost_error())).loss is REJECTED
    assert classify(RuntimeError("Session terminated")).loss is REJECTED  # a plain type, by words alone


def test_errors_that_compare_equal_or_do_not_hash_are_each_walked(pm):
    class AllAlike(Exception):
        def __eq__(self, other: object) -> bool:
            return isinstance(other, AllAlike)

        def __hash__(self) -> int:
            return 1

    class Unhashable(Exception):
        __hash__ = None  # type: ignore[assignment]

    for cls in (AllAlike, Unhashable):
        outer, inner = cls("x"), cls("Session terminated")
        outer.__context__ = inner
        assert classify(outer).loss is REJECTED, cls
        group = ExceptionGroup("g", [cls("y"), cls("Session terminated")])
        assert classify(group).loss is REJECTED, cls


def test_verdict_properties():
    assert classify(ValueError("x")).request_ran is None
    assert classify(in_flight_error()).request_ran is None
    assert classify(session_lost_error()).request_ran is False
    assert not classify(ValueError("x"))
