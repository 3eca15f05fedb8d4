"""Fixtures: the real OpenTelemetry SDK with in-memory span and metric exporters, the integration on
for the test and off after, and a kit server that keeps sessions under either mcp major."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import mcp_hooks_opentelemetry
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otel_helpers import Telemetry

import mcp_hooks


@pytest.fixture
def otel() -> Iterator[Telemetry]:
    """``instrument("opentelemetry")`` reporting to in-memory exporters of the real SDK."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    mcp_hooks_opentelemetry.configure(tracer_provider=provider, meter_provider=meters, capture_content=False)
    assert mcp_hooks.instrument("opentelemetry") == {"opentelemetry": True}
    try:
        yield Telemetry(exporter, reader, provider)
    finally:
        mcp_hooks.uninstrument("opentelemetry")
        mcp_hooks_opentelemetry.configure(tracer_provider=None, meter_provider=None, capture_content=False)
        provider.shutdown()
        meters.shutdown()


@pytest.fixture
def healing() -> Iterator[None]:
    assert mcp_hooks.instrument("mcp") == {"mcp": True}
    try:
        yield
    finally:
        mcp_hooks.uninstrument("mcp")


@pytest.fixture
def server(mcp_fault_server_factory: Any) -> Any:
    return mcp_fault_server_factory(legacy_only=True)
