"""The OpenTelemetry integration's cost on the happy path, against tracing off, in the same run.

Run it where mcp-hooks-opentelemetry and the OpenTelemetry SDK are installed (``nox -s bench-opentelemetry``)::

    python -m benchmarks.otel [--quick] [--out PATH]

One raw SDK ``ClientSession`` over loopback streamable HTTP to the testing kit's server calls ``echo``;
the integration's reporting is switched call by call between the setups below (interleaved, so drift
of the machine hits every setup alike), and each figure is the median call:

- on, spans recorded by the OpenTelemetry SDK (a ``BatchSpanProcessor``, as an application runs it, to
  an exporter that keeps nothing), against the same with a no-op tracer provider, i.e. tracing off (what
  OpenTelemetry gives when no SDK is configured): the target is at most 1.05x;
- the same recording, against the integration not installed at all (the whole cost of tracing a call);
- on, reporting to a no-op tracer provider, against not installed: the instrumentation's own cost;
- not installed, but the call carries a W3C trace context in ``params._meta`` (as every traced call
  does): what propagating the context costs by itself (mostly the server's side: the mcp 2.x server
  opens its own span under the context it reads); the recording figures include it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import mcp_hooks_opentelemetry
from mcp_hooks_opentelemetry._tracer import OtelTracer
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import NoOpTracerProvider

import mcp_hooks
from benchmarks.common import Figure, Suite, arguments, fail, fmt_ratio, median, ratio
from mcp_hooks.healing.messages import MCP_MAJOR
from mcp_hooks.testing import FaultServer

GROUP = "OpenTelemetry integration, happy path"
ECHO = ("echo", {"text": "bench"})
#: A valid W3C trace context, as a traced call carries it (the ids are arbitrary).
TRACE_CONTEXT = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}


@contextlib.asynccontextmanager
async def raw_session(url: str) -> AsyncIterator[Any]:
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with streamable_http_client(url) as streams, ClientSession(streams[0], streams[1]) as session:
        await session.initialize()
        yield session


def _switch(tracer: Any) -> None:
    """Turn the integration's reporting on (a tracer) or off (``None``) without re-patching: one call
    each way is measured in turn, so drift of the machine hits every setup alike."""
    from mcp_hooks import telemetry

    integration = mcp_hooks_opentelemetry.mcp_hooks_integration
    if integration.tracer is not None:
        telemetry.uninstall(integration.tracer)
    integration.tracer = tracer
    if tracer is not None:
        telemetry.install(tracer)


class _Counting(SpanExporter):  # type: ignore[misc]
    """Ships nowhere and keeps nothing, as an exporter to a collector would: counts the call spans."""

    def __init__(self) -> None:
        self.calls = 0

    def export(self, spans: Any) -> Any:
        self.calls += sum(1 for span in spans if span.name == "tools/call echo")
        return SpanExportResult.SUCCESS


async def _call(session: Any, meta: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    result = await (session.call_tool(*ECHO, meta=meta) if meta else session.call_tool(*ECHO))
    elapsed = time.perf_counter() - started
    if getattr(result, "isError", False) or getattr(result, "is_error", False):
        fail(f"echo answered with an error: {result!r}")
    return elapsed


async def measure(suite: Suite, url: str) -> None:
    calls = 200 if suite.quick else 3000
    exporter = _Counting()
    recording = TracerProvider()
    recording.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=200))
    mcp_hooks_opentelemetry.configure(tracer_provider=recording, meter_provider=MeterProvider())
    if not mcp_hooks.instrument("opentelemetry")["opentelemetry"]:
        fail("the opentelemetry integration did not turn on")
    sdk_tracer = mcp_hooks_opentelemetry.mcp_hooks_integration.tracer
    noop_tracer = OtelTracer(tracer_provider=NoOpTracerProvider(), meter_provider=NoOpMeterProvider())
    setups = {"off": None, "on, SDK": sdk_tracer, "on, no-op": noop_tracer, "off, context": None}
    samples: dict[str, list[float]] = {name: [] for name in setups}
    try:
        async with raw_session(url) as session:
            for name, tracer in setups.items():  # warm each
                _switch(tracer)
                await _call(session, TRACE_CONTEXT if name == "off, context" else None)
            names = list(setups)
            for i in range(calls):
                for name in names if i % 2 == 0 else list(reversed(names)):
                    _switch(setups[name])
                    samples[name].append(await _call(session, TRACE_CONTEXT if name == "off, context" else None))
    finally:
        _switch(sdk_tracer)
        mcp_hooks.uninstrument("opentelemetry")
        mcp_hooks_opentelemetry.configure(tracer_provider=None, meter_provider=None)
    recording.force_flush()
    if exporter.calls != calls + 1:
        fail(f"expected {calls + 1} spans of the recorded calls, got {exporter.calls}")
    off = median(samples["off"])
    noop = median(samples["on, no-op"])
    figures = (  # id, setup, baseline, label, target
        (
            "otel.sdk",
            "on, SDK",
            noop,
            "integration on, spans recorded (SDK) vs tracing off (no-op provider)",
            "<= 1.05x",
        ),
        ("otel.sdk_vs_bare", "on, SDK", off, "integration on, spans recorded (SDK) vs not installed", ""),
        ("otel.noop", "on, no-op", off, "integration on, no-op provider vs not installed", ""),
        ("otel.context", "off, context", off, "not installed, a trace context in params._meta vs none", ""),
    )
    for figure_id, name, baseline, label, target in figures:
        ours = median(samples[name])
        r = ratio(ours, baseline)
        suite.add(
            Figure(
                figure_id,
                GROUP,
                f"loopback streamable-HTTP call: {label}",
                ours * 1e6,
                baseline * 1e6,
                "us",
                f"{fmt_ratio(r)} ({ours * 1e6:.0f} vs {baseline * 1e6:.0f} us, {(ours - baseline) * 1e6:+.0f} us)",
                target,
                (r <= 1.05) if target else None,
                note=f"median of {calls} calls each, interleaved call by call; mcp {MCP_MAJOR}.x",
            )
        )


def main() -> None:
    args = arguments(__doc__.splitlines()[0])
    suite = Suite(f"opentelemetry-mcp{MCP_MAJOR}", quick=args.quick, distributions=("opentelemetry-sdk",))
    with FaultServer(legacy_only=True) as server:
        asyncio.run(measure(suite, server.url))
    suite.write(args.out)


if __name__ == "__main__":
    main()
