"""The integration never changes a call and never records a credential; wrong options fail at once."""

from __future__ import annotations

import asyncio
import base64
import logging
import signal
from typing import Any

import mcp_hooks_opentelemetry
import pytest
from mcp_hooks_opentelemetry import _tracer
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from otel_helpers import MCP_MAJOR, Telemetry, raw_session, text

import mcp_hooks

pytestmark = pytest.mark.timeout(90)
SESSIONS = {"mode": "legacy"} if MCP_MAJOR >= 2 else {}
SECRETS = ("hunter2", "s3cret-q", "tok-SECRET-123", base64.b64encode(b"user:hunter2").decode())


async def test_no_credential_reaches_a_span_a_metric_or_a_log(
    server: Any, otel: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = server.url.replace("http://", "http://user:hunter2@") + "?token=s3cret-q"
    headers = {"Authorization": "Bearer tok-SECRET-123", "X-Api-Key": "tok-SECRET-123"}
    async with mcp_hooks.connect(url, headers=headers, heal=False, **SESSIONS) as session:
        await session.call_tool("echo", {"text": "warm"})
        assert server.expire_sessions() >= 1
        await asyncio.wait_for(session.call_tool("echo", {"text": "after expiry"}), 20)
        await asyncio.to_thread(server.restart, signal.SIGKILL)
        await asyncio.wait_for(session.call_tool("echo", {"text": "after restart"}), 20)
        assert session.reconnects == 2
    spans = otel.calls("tools/call echo")
    assert len(spans) == 3 and otel.rebuilds(), "the scan must cover recovery, not only a quiet call"
    assert any(e.name == "mcp_hooks.session_lost" for s in spans for e in s.events)
    assert spans[0].attributes["server.address"] == "127.0.0.1"
    everything = otel.everything()
    ours = [r for r in caplog.records if r.name.startswith("mcp_hooks")]  # the SDK's own logs are not ours
    logged = "\n".join(r.getMessage() + str(r.exc_info or "") for r in ours)
    assert any("rebuil" in r.getMessage() for r in ours), "the scan must read the recovery's log lines"
    for secret in SECRETS:
        assert secret not in everything, secret
        assert secret not in logged, secret


def test_error_texts_lose_their_credentials() -> None:
    from mcp_hooks.redact import text as redact

    said = redact(
        "Client error '404 Not Found' for url 'https://bob:pa55@example.com/mcp?api_key=k3y#x'; "
        "Authorization: Bearer abc.def-ghi token=xyz123 password=pw!"
    )
    assert "pa55" not in said and "k3y" not in said and "abc.def-ghi" not in said
    assert "xyz123" not in said and "pw!" not in said
    assert "https://example.com/mcp" in said
    assert len(redact("x" * 5000)) == _tracer._redact.MAX_TEXT


class _Exploding(SpanExporter):
    def export(self, spans: Any) -> Any:
        raise RuntimeError("the collector is down")

    def shutdown(self) -> None:
        return None


@pytest.mark.usefixtures("healing")
async def test_an_exporter_that_raises_changes_no_result(server: Any, otel: Telemetry) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_Exploding()))
    mcp_hooks_opentelemetry.configure(tracer_provider=provider)
    ran = server.executions_from_now()
    async with raw_session(server.url) as session:
        assert text(await session.call_tool("echo", {"text": "a"})).startswith("a (pid")
        assert server.expire_sessions() >= 1
        assert text(await asyncio.wait_for(session.call_tool("echo", {"text": "b"}), 20)).startswith("b (pid")
        result = await session.call_tool("fail", {"message": "boom"})
        assert getattr(result, "isError", None) or getattr(result, "is_error", None)
    assert ran("echo") == 2


@pytest.mark.usefixtures("healing")
async def test_a_failure_inside_the_instrumentation_is_logged_once_and_the_call_goes_on(
    server: Any, otel: Telemetry, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("instrumentation bug")

    monkeypatch.setattr(_tracer.OtelTracer, "begin", broken)
    monkeypatch.setattr(_tracer.OtelTracer, "lost", broken)
    mcp_hooks_opentelemetry.mcp_hooks_integration._complained.clear()
    async with raw_session(server.url) as session:
        for word in ("one", "two", "three"):
            assert text(await session.call_tool("echo", {"text": word})).startswith(word)
        assert server.expire_sessions() >= 1
        assert text(await asyncio.wait_for(session.call_tool("echo", {"text": "four"}), 20)).startswith("four")
    complaints = [r for r in caplog.records if "OpenTelemetry instrumentation failed" in r.getMessage()]
    assert len([r for r in complaints if "send_request (start)" in r.getMessage()]) == 1
    assert len([r for r in complaints if " lost" in r.getMessage()]) == 1


@pytest.mark.usefixtures("healing")
async def test_tool_arguments_and_results_only_with_the_opt_in(server: Any, otel: Telemetry) -> None:
    async with raw_session(server.url) as session:
        text(await session.call_tool("echo", {"text": "private words"}))
        mcp_hooks_opentelemetry.configure(capture_content=True)
        text(await session.call_tool("echo", {"text": "shared words"}))
    quiet, loud = otel.calls("tools/call echo")
    assert "private words" not in quiet.to_json()
    assert "gen_ai.tool.call.arguments" not in quiet.attributes
    assert "shared words" in loud.attributes["gen_ai.tool.call.arguments"]
    assert "shared words" in loud.attributes["gen_ai.tool.call.result"]


def test_wrong_options_fail_at_once_naming_the_option() -> None:
    with pytest.raises(TypeError, match="'capture_contents'"):
        mcp_hooks_opentelemetry.configure(capture_contents=True)
    with pytest.raises(TypeError, match="capture_content must be True or False"):
        mcp_hooks_opentelemetry.configure(capture_content="yes")
    assert mcp_hooks_opentelemetry.mcp_hooks_integration.options["capture_content"] is False


@pytest.mark.parametrize("first", ["opentelemetry", "mcp"])
async def test_tracing_and_healing_compose_in_either_order(server: Any, first: str) -> None:
    """Both wrap the SDK session's ``send_request`` (tracing for its spans, healing for what lives in the
    session object): turned on in either order, a call across a lost session is one well-named span and
    is healed; turned off in the reverse order, the SDK has its own function back."""
    import mcp
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    own = mcp.ClientSession.__dict__.get("send_request")  # None under mcp 1.x: inherited
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    mcp_hooks_opentelemetry.configure(tracer_provider=provider)
    order = [first, "mcp" if first == "opentelemetry" else "opentelemetry"]
    try:
        for name in order:
            assert mcp_hooks.instrument(name) == {name: True}
        async with raw_session(server.url) as session:
            assert text(await session.call_tool("echo", {"text": "a"})).startswith("a (pid")
            assert server.expire_sessions() >= 1
            assert text(await asyncio.wait_for(session.call_tool("echo", {"text": "b"}), 20)).startswith("b (pid")
        calls = [span for span in exporter.get_finished_spans() if span.name == "tools/call echo"]
        assert len(calls) == 2
        assert "mcp_hooks.replayed" in [event.name for event in calls[1].events]
    finally:
        for name in reversed(order):
            mcp_hooks.uninstrument(name)
        mcp_hooks_opentelemetry.configure(tracer_provider=None)
        provider.shutdown()
    assert mcp.ClientSession.__dict__.get("send_request") is own
