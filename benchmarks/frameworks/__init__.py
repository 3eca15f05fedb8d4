"""Framework suites: a real agent framework, shim off and on, against the testing kit's fault server.

``python -m benchmarks.frameworks.hermes`` and ``python -m benchmarks.frameworks.openai_agents`` (each in
its framework's own environment: ``nox -s bench-hermes``, ``nox -s bench-openai-agents``) drive the
framework through its real tool-call path, restart the server under it, and measure the framework
alone and with its mcp-hooks shim in the same run, against the same server, by the same procedure.
Latencies are also given as a ratio to a brand-new raw-SDK connect + initialize + call to the same
restarted server, measured in the same round.

This module holds what both suites share: that fresh connect, a plugin counting rebuilds, library
logs sent to a file, and formatting.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import logging
import statistics
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import mcp_hooks

MCP_MAJOR = int(importlib.metadata.version("mcp").split(".")[0])

#: Bound on every raw-SDK step of a fresh connect (the server is up: it takes well under a second).
FRESH_TIMEOUT = 20.0


async def fresh_call(url: str, tool: str = "echo", arguments: dict[str, Any] | None = None) -> float:
    """Seconds for a brand-new raw-SDK connection to ``url``: connect, initialize, one ``tool`` call.

    The teardown (closing the session) is not counted. mcp 2.x uses its default protocol negotiation
    (what a framework on mcp 2.x does too). Raises if the call fails or takes over ``FRESH_TIMEOUT``.
    """
    import anyio

    sdk: Any = importlib.import_module("mcp")
    args = {"text": "fresh"} if arguments is None and tool == "echo" else dict(arguments or {})
    with anyio.fail_after(FRESH_TIMEOUT):
        async with contextlib.AsyncExitStack() as stack:
            started = time.perf_counter()
            if MCP_MAJOR >= 2:
                session = await stack.enter_async_context(sdk.Client(url))
            else:
                from mcp.client.streamable_http import streamable_http_client

                streams = await stack.enter_async_context(streamable_http_client(url))
                session = await stack.enter_async_context(sdk.ClientSession(streams[0], streams[1]))
                await session.initialize()
            result = await session.call_tool(tool, args)
            took = time.perf_counter() - started
    if getattr(result, "isError", False):
        raise RuntimeError(f"the fresh connection's {tool} call failed: {result}")
    return took


class ReconnectCounter:
    """A plugin counting the session rebuilds the mcp-hooks engine starts for one framework
    (``on_reconnect``: one per shared rebuild, however many calls were waiting on it)."""

    def __init__(self, framework: str) -> None:
        self.framework = framework
        self.count = 0

    @mcp_hooks.hookimpl
    def on_reconnect(self, call: mcp_hooks.ToolCall, error: BaseException) -> None:
        if call.framework == self.framework:
            self.count += 1


@contextlib.contextmanager
def counting_reconnects(framework: str) -> Iterator[ReconnectCounter]:
    counter = ReconnectCounter(framework)
    pm = mcp_hooks.plugin_manager()
    name = f"bench-reconnect-counter-{id(counter)}"
    pm.register(counter, name=name)
    try:
        yield counter
    finally:
        pm.unregister(counter)


def log_to_file(path: Path) -> None:
    """Send library logs (the framework's, the SDK's, mcp-hooks') to ``path`` instead of the terminal:
    the runs without the shim fail on purpose, and say so at length."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def med(values: Iterable[float]) -> float:
    found = list(values)
    return statistics.median(found) if found else float("nan")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def times(value: float) -> str:
    """A ratio the way the table shows it: ``3.4x``."""
    return f"{value:.1f}x"


def spread_ms(values: Iterable[float]) -> str:
    """``median 104 ms (88-131)`` for a list of seconds."""
    found = sorted(values)
    if not found:
        return "none"
    return f"median {ms(med(found))} ({found[0] * 1000:.0f}-{found[-1] * 1000:.0f})"


def switch_shim(name: str, integration: Any, on: bool) -> None:
    """Turn a framework's shim on (as a user does, ``mcp_hooks.instrument(name)``) or off, and check it."""
    from benchmarks.common import fail

    if on:
        enabled = mcp_hooks.instrument(name)
        if enabled != {name: True}:
            fail(f"mcp_hooks.instrument({name!r}) answered {enabled}: {integration.why_not}")
    else:
        mcp_hooks.uninstrument(name)
        if integration.enabled:
            fail(f"the {name} shim is still on after uninstrument()")
