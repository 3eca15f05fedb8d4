"""The README's OpenTelemetry block, run as written: after it, a raw SDK session's call across a lost
session is one span with its recovery events, and a rebuild span, in the provider the block set up."""

from __future__ import annotations

import asyncio
from typing import Any

import mcp_hooks_opentelemetry
import pytest
import readme_blocks
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otel_helpers import raw_session, text

import mcp_hooks

pytestmark = pytest.mark.timeout(90)

BLOCKS = readme_blocks.blocks_for("opentelemetry")


def test_there_is_one_opentelemetry_block() -> None:
    assert len(BLOCKS) == 1


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.where)
async def test_the_readme_block_traces_a_recovery(block: Any, server: Any) -> None:
    namespace: dict[str, Any] = {}
    try:
        await readme_blocks.run(block, namespace)
        assert mcp_hooks_opentelemetry.mcp_hooks_integration.enabled
        exporter = InMemorySpanExporter()
        namespace["provider"].add_span_processor(SimpleSpanProcessor(exporter))
        async with raw_session(server.url) as session:
            text(await session.call_tool("echo", {"text": "a"}))
            assert server.expire_sessions() >= 1
            assert text(await asyncio.wait_for(session.call_tool("echo", {"text": "b"}), 20)).startswith("b")
        spans = exporter.get_finished_spans()
        calls = [s for s in spans if s.name == "tools/call echo"]
        assert len(calls) == 2
        assert "mcp_hooks.replayed" in [e.name for e in calls[1].events]
        assert [s for s in spans if s.name.startswith("mcp_hooks.rebuild ")]
    finally:
        mcp_hooks.uninstrument("opentelemetry", "mcp")
        mcp_hooks_opentelemetry.configure(tracer_provider=None)
        if "provider" in namespace:
            namespace["provider"].shutdown()
