"""Spans and metrics of real MCP sessions (a raw SDK session healed by ``instrument("mcp")``, and
``connect()``) against the kit's server, restarted, expired and killed under them, with the real
OpenTelemetry SDK and its in-memory exporters (mcp 1.x and 2.x)."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode
from otel_helpers import MCP_MAJOR, Telemetry, events, raw_session, text

import mcp_hooks

pytestmark = pytest.mark.timeout(90)
SESSIONS = {"mode": "legacy"} if MCP_MAJOR >= 2 else {}


@pytest.mark.usefixtures("healing")
async def test_a_call_is_one_client_span_named_and_attributed_by_the_conventions(server: Any, otel: Telemetry) -> None:
    tracer = otel.provider.get_tracer("test")
    async with raw_session(server.url) as session:
        with tracer.start_as_current_span("agent step") as parent:
            assert text(await session.call_tool("echo", {"text": "hi"})).startswith("hi")
        failed_result = await session.call_tool("fail", {"message": "boom"})
        assert getattr(failed_result, "isError", None) or getattr(failed_result, "is_error", None)
    (span,) = otel.calls("tools/call echo")
    assert span.kind is SpanKind.CLIENT
    attributes = dict(span.attributes)
    assert attributes["mcp.method.name"] == "tools/call"
    assert attributes["gen_ai.tool.name"] == "echo"
    assert attributes["gen_ai.operation.name"] == "execute_tool"
    assert attributes["server.address"] == "127.0.0.1" and attributes["server.port"] == server.port
    assert attributes["mcp_hooks.server"] == server.url
    assert attributes["mcp.session.id"]
    assert "mcp_hooks.recovery" not in attributes and "error.type" not in attributes
    assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id
    assert span.context.trace_id == parent.get_span_context().trace_id
    (failed,) = otel.calls("tools/call fail")
    assert failed.attributes["error.type"] == "tool_error"
    assert failed.status.status_code is StatusCode.ERROR
    assert otel.calls("initialize"), "the handshake is a request too"
    points = otel.metrics()["mcp.client.operation.duration"]
    assert any(p.attributes.get("gen_ai.tool.name") == "echo" and p.count == 1 for p in points)
    assert any(p.attributes.get("error.type") == "tool_error" for p in points)
    assert sum(p.count for p in otel.metrics()["mcp.client.session.duration"]) == 1


@pytest.mark.usefixtures("healing")
async def test_a_call_across_a_lost_session_is_one_span_with_what_happened(server: Any, otel: Telemetry) -> None:
    async with raw_session(server.url) as session:
        text(await session.call_tool("echo", {"text": "warm"}))
        assert server.expire_sessions() >= 1
        assert text(await asyncio.wait_for(session.call_tool("echo", {"text": "after"}), 20)).startswith("after")
    spans = otel.calls("tools/call echo")
    assert len(spans) == 2, [s.name for s in spans]
    span = spans[1]
    names = events(span)
    assert names[:4] == [
        "mcp_hooks.session_lost",
        "mcp_hooks.rebuild_started",
        "mcp_hooks.rebuilt",
        "mcp_hooks.replayed",
    ], names
    lost = span.events[0].attributes
    assert lost["mcp_hooks.loss"] == "rejected" and lost["mcp_hooks.attempt"] == 1
    rebuilt = span.events[2].attributes
    assert rebuilt["mcp_hooks.outcome"] == "rebuilt" and rebuilt["mcp_hooks.seconds"] > 0
    assert rebuilt["mcp_hooks.generation"] == 1
    assert span.attributes["mcp_hooks.replayed"] is True
    assert span.attributes["mcp_hooks.reconnects"] == 1
    assert span.attributes["mcp_hooks.recovery"] == "recovered"
    assert span.status.status_code is StatusCode.UNSET
    (rebuild,) = otel.rebuilds()
    assert rebuild.kind is SpanKind.INTERNAL and rebuild.attributes["mcp_hooks.outcome"] == "rebuilt"
    assert rebuild.attributes["mcp_hooks.cause"] == "rejected"
    assert rebuild.parent is None, "a rebuild is its own operation"
    assert [link.context.span_id for link in rebuild.links] == [span.context.span_id]
    assert otel.total("mcp_hooks.rebuilds") == 1
    assert otel.total("mcp_hooks.replays") == 1
    assert sum(p.count for p in otel.metrics()["mcp_hooks.recovery.duration"]) == 1


@pytest.mark.usefixtures("healing")
async def test_twenty_concurrent_calls_across_a_restart_are_twenty_spans_and_one_rebuild(
    server: Any, otel: Telemetry
) -> None:
    async with raw_session(server.url) as session:
        text(await session.call_tool("echo", {"text": "warm"}))
        await asyncio.to_thread(server.restart, signal.SIGKILL)
        results = await asyncio.wait_for(
            asyncio.gather(*(session.call_tool("echo", {"text": f"n{i}"}) for i in range(20))), 30
        )
    assert [text(r).split(" ", 1)[0] for r in results] == [f"n{i}" for i in range(20)]
    spans = otel.calls("tools/call echo")[1:]
    assert len(spans) == 20
    assert all(s.status.status_code is StatusCode.UNSET for s in spans)
    assert len({s.context.span_id for s in spans}) == 20
    (rebuild,) = otel.rebuilds()
    assert rebuild.attributes["mcp_hooks.outcome"] == "rebuilt"
    assert otel.total("mcp_hooks.rebuilds") == 1


@pytest.mark.usefixtures("healing")
async def test_a_write_lost_in_flight_shows_the_uncertain_outcome(server: Any, otel: Telemetry) -> None:
    ran = server.executions_from_now()
    async with raw_session(server.url) as session:
        text(await session.call_tool("echo", {"text": "warm"}))
        server.kill_during_next_call("incr")
        reviver = server.revive_when_dead()
        with pytest.raises(Exception, match="outcome uncertain"):
            await asyncio.wait_for(session.call_tool("incr", {"key": "otel-lost"}), 20)
        reviver.join(10)
    assert ran("incr") == 1
    (span,) = otel.calls("tools/call incr")
    names = events(span)
    assert "mcp_hooks.session_lost" in names and "mcp_hooks.outcome_uncertain" in names
    assert "mcp_hooks.replayed" not in names
    assert span.events[names.index("mcp_hooks.session_lost")].attributes["mcp_hooks.loss"] == "in-flight"
    assert span.attributes["mcp_hooks.recovery"] == "uncertain"
    assert span.attributes["mcp_hooks.outcome"] == "uncertain" and span.attributes["mcp_hooks.reason"] == "in-flight"
    assert span.attributes["mcp_hooks.replayed"] is False
    assert span.attributes["error.type"] == "-32603"
    assert span.attributes["rpc.response.status_code"] == "-32603"
    assert span.status.status_code is StatusCode.ERROR
    assert otel.total("mcp_hooks.uncertain") == 1 and otel.total("mcp_hooks.replays") == 0


@pytest.mark.usefixtures("healing")
async def test_a_refused_request_is_an_error_not_an_uncertain_outcome(server: Any, otel: Telemetry) -> None:
    """A 429 not sent again is answered with mcp-hooks' own error, which says the request did not run: the
    span shows the error, not the uncertain outcome of a request lost in flight."""
    async with raw_session(server.url) as session:
        text(await session.call_tool("echo", {"text": "warm"}))
        server.throttle(429, retry_after=120)
        with pytest.raises(Exception, match="429"):
            await asyncio.wait_for(session.call_tool("incr", {}), 20)
    (span,) = otel.calls("tools/call incr")
    assert span.attributes["error.type"] == "-32029"
    assert span.attributes.get("mcp_hooks.recovery") != "uncertain", dict(span.attributes)
    assert span.attributes["mcp_hooks.outcome"] == "not-run" and span.attributes["mcp_hooks.reason"] == "refused"
    assert otel.total("mcp_hooks.uncertain") == 0


async def test_connect_keeps_every_attempt_of_a_call_in_one_span(server: Any, otel: Telemetry) -> None:
    async with mcp_hooks.connect(server.url, heal=False, **SESSIONS) as session:
        await session.call_tool("echo", {"text": "warm"})
        assert server.expire_sessions() >= 1
        result = await asyncio.wait_for(session.call_tool("echo", {"text": "after"}), 20)
        assert not (getattr(result, "isError", None) or getattr(result, "is_error", None))
        assert session.reconnects == 1
    spans = otel.calls("tools/call echo")
    assert len(spans) == 2, [s.name for s in otel.spans()]
    span = spans[1]
    names = events(span)
    assert names[:4] == [
        "mcp_hooks.session_lost",
        "mcp_hooks.rebuild_started",
        "mcp_hooks.rebuilt",
        "mcp_hooks.replayed",
    ], names
    assert span.attributes["mcp_hooks.recovery"] == "recovered"
    assert span.attributes["mcp_hooks.server"] == server.url
    assert "error.type" not in span.attributes
    (rebuild,) = otel.rebuilds()
    assert [link.context.span_id for link in rebuild.links] == [span.context.span_id]
    assert not otel.calls("initialize"), "connect()'s own handshakes belong to no call"


async def test_connect_uncertain_write_is_one_span_saying_so(server: Any, otel: Telemetry) -> None:
    ran = server.executions_from_now()
    async with mcp_hooks.connect(server.url, **SESSIONS) as session:
        await session.call_tool("echo", {"text": "warm"})
        server.kill_during_next_call("incr")
        reviver = server.revive_when_dead()
        with pytest.raises(mcp_hooks.OutcomeUncertain):
            await asyncio.wait_for(session.call_tool("incr", {"key": "otel-connect"}), 20)
        reviver.join(10)
    assert ran("incr") == 1
    (span,) = otel.calls("tools/call incr")
    assert "mcp_hooks.outcome_uncertain" in events(span)
    assert span.attributes["mcp_hooks.recovery"] == "uncertain"
    assert span.attributes["error.type"] == "OutcomeUncertain"
    assert otel.total("mcp_hooks.uncertain") == 1


async def test_a_background_heal_is_a_rebuild_span_and_no_call_span(server: Any, otel: Telemetry) -> None:
    async with mcp_hooks.connect(server.url, **SESSIONS) as session:
        await session.call_tool("echo", {"text": "warm"})
        calls_before = len(otel.calls())
        await asyncio.to_thread(server.restart, signal.SIGKILL)
        for _ in range(150):  # healed in the background (bounded wait)
            if session.reconnects == 1 and otel.rebuilds():
                break
            await asyncio.sleep(0.1)
        assert session.reconnects == 1
        (rebuild,) = otel.rebuilds()
        assert rebuild.attributes["mcp_hooks.outcome"] == "rebuilt"
        assert rebuild.links == () or list(rebuild.links) == []
        assert len(otel.calls()) == calls_before, [s.name for s in otel.calls()[calls_before:]]


async def test_the_integration_off_leaves_the_sdk_exactly_as_it_was(server: Any, otel: Telemetry) -> None:
    from mcp.client.session import ClientSession

    mcp_hooks.uninstrument("opentelemetry")
    assert "send_request" not in vars(ClientSession) or not hasattr(vars(ClientSession)["send_request"], "__wrapped__")
    async with raw_session(server.url) as session:
        text(await session.call_tool("echo", {"text": "quiet"}))
    assert otel.spans() == []
    assert mcp_hooks.instrument("opentelemetry") == {"opentelemetry": True}
    assert mcp_hooks.instrument("opentelemetry") == {"opentelemetry": True}  # twice is harmless
    async with raw_session(server.url) as session:
        text(await session.call_tool("echo", {"text": "loud"}))
    assert len(otel.calls("tools/call echo")) == 1


class _Recording:
    """The SDK transport's write stream, recording every message the session writes to it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.sent: list[Any] = []

    async def send(self, item: Any) -> None:
        self.sent.append(item)
        await self.inner.send(item)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def __aenter__(self) -> _Recording:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.inner.aclose()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_the_trace_context_goes_out_in_params_meta(server: Any, otel: Telemetry) -> None:
    import mcp
    from mcp.client.streamable_http import streamable_http_client

    async with streamable_http_client(server.url) as streams:
        recording = _Recording(streams[1])
        async with mcp.ClientSession(streams[0], recording) as session:
            await session.initialize()
            text(await session.call_tool("echo", {"text": "traced"}))
    (span,) = otel.calls("tools/call echo")
    (message,) = [
        m for m in recording.sent if getattr(m.message, "root", m.message).__dict__.get("method") == "tools/call"
    ]
    params = getattr(message.message, "root", message.message).params
    traceparent = params["_meta"]["traceparent"]
    version, trace_id, parent_id, _flags = traceparent.split("-")
    assert version == "00" and int(trace_id, 16) == span.context.trace_id
    # mcp 1.x: our span's own id; mcp 2.x: the SDK injects its own per-attempt span, a child of ours
    # (non-recording without a global provider, so it carries our span's id)
    assert int(parent_id, 16) == span.context.span_id
