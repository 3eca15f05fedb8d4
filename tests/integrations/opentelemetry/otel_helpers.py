"""What the tests read back from the in-memory exporters, and a raw SDK session opened the SDK's way."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import mcp
from mcp.client.streamable_http import streamable_http_client

from mcp_hooks.sdk import MCP_MAJOR

__all__ = ["MCP_MAJOR", "Telemetry", "raw_session", "text"]


@dataclasses.dataclass
class Telemetry:
    exporter: Any
    reader: Any
    provider: Any

    def spans(self) -> list[Any]:
        return list(self.exporter.get_finished_spans())

    def calls(self, name: str | None = None) -> list[Any]:
        """The CLIENT spans (one per MCP request), optionally by name."""
        from opentelemetry.trace import SpanKind

        return [s for s in self.spans() if s.kind is SpanKind.CLIENT and (name is None or s.name == name)]

    def rebuilds(self) -> list[Any]:
        return [s for s in self.spans() if s.name.startswith("mcp_hooks.rebuild ")]

    def metrics(self) -> dict[str, list[Any]]:
        """Metric name -> its data points."""
        data = self.reader.get_metrics_data()
        found: dict[str, list[Any]] = {}
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    found.setdefault(metric.name, []).extend(metric.data.data_points)
        return found

    def total(self, name: str) -> float:
        points = self.metrics().get(name, [])
        return sum(getattr(p, "value", None) or getattr(p, "count", 0) for p in points)

    def everything(self) -> str:
        """Every span (names, attributes, events, links, status) and metric point, as one text."""
        parts: list[str] = []
        for span in self.spans():
            parts.append(span.to_json())
        data = self.reader.get_metrics_data()
        if data is not None:
            parts.append(data.to_json())
        return "\n".join(parts)


def events(span: Any) -> list[str]:
    return [e.name for e in span.events]


@contextlib.asynccontextmanager
async def raw_session(url: str, **session_kwargs: Any) -> AsyncIterator[Any]:
    async with (
        streamable_http_client(url) as streams,
        mcp.ClientSession(streams[0], streams[1], **session_kwargs) as session,
    ):
        await session.initialize()
        yield session


def text(result: Any) -> str:
    assert not getattr(result, "isError", False) and not getattr(result, "is_error", False), result
    return str(result.content[0].text)
