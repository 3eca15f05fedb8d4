"""Helpers for the hermes-agent shim tests: hermes' real MCP client, driven the way its agent drives it.

hermes connects to a fault server on loopback with ``tools.mcp_tool.register_mcp_servers`` (what its
start-up does with the ``mcp_servers`` section of ``config.yaml``), and every tool call goes through
``tools.registry.registry.dispatch``, the dispatcher the agent loop uses (no model involved).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# hermes keeps logs and state under HERMES_HOME: never the real home directory in tests.
HOME = os.environ.setdefault("HERMES_HOME", tempfile.mkdtemp(prefix="mcp-hooks-hermes-home-"))

from tools import mcp_tool  # noqa: E402
from tools.registry import registry  # noqa: E402

import mcp_hooks  # noqa: E402

SERVER = "fault"
#: (what, value) pairs printed at the end of the run; never asserted.
MEASUREMENTS: list[tuple[str, str]] = []


@dataclass
class Observed:
    """What the observer hooks saw."""

    errors: list[tuple[Any, BaseException]] = field(default_factory=list)
    reconnects: list[tuple[Any, BaseException]] = field(default_factory=list)
    recovered: list[Any] = field(default_factory=list)
    giveups: list[tuple[Any, BaseException]] = field(default_factory=list)


class Recorder:
    def __init__(self, seen: Observed) -> None:
        self.seen = seen

    @mcp_hooks.hookimpl
    def on_tool_error(self, call: Any, error: BaseException) -> None:
        self.seen.errors.append((call, error))

    @mcp_hooks.hookimpl
    def on_reconnect(self, call: Any, error: BaseException) -> None:
        self.seen.reconnects.append((call, error))

    @mcp_hooks.hookimpl
    def on_recovered(self, call: Any) -> None:
        self.seen.recovered.append(call)

    @mcp_hooks.hookimpl
    def on_giveup(self, call: Any, error: BaseException) -> None:
        self.seen.giveups.append((call, error))


class Hermes:
    """hermes' MCP client, driven the way the agent drives it."""

    def __init__(self) -> None:
        self.connected = False

    def connect(self, server: Any, *, timeout: float = 20.0, **config: Any) -> list[str]:
        """Connect to ``server`` like hermes does for an ``mcp_servers.fault`` entry in config.yaml."""
        names = mcp_tool.register_mcp_servers(
            {SERVER: {"url": server.url, "timeout": timeout, "connect_timeout": 20, **config}}
        )
        self.connected = True
        assert f"mcp__{SERVER}__echo" in names, names
        return names

    def connect_stdio(self, server: Any, *, timeout: float = 20.0) -> list[str]:
        """Connect to a stdio fault server: hermes spawns it (``command``/``args``/``env`` in config.yaml)."""
        params = server.stdio_parameters()
        names = mcp_tool.register_mcp_servers(
            {
                SERVER: {
                    "command": params.command,
                    "args": list(params.args),
                    "env": dict(params.env),
                    "timeout": timeout,
                }
            }
        )
        self.connected = True
        assert f"mcp__{SERVER}__echo" in names, names
        return names

    @property
    def task(self) -> Any:
        """hermes' ``MCPServerTask`` for the server."""
        return mcp_tool._servers[SERVER]

    def tools(self) -> list[str]:
        return [name for name in registry.get_all_tool_names() if name.startswith(f"mcp__{SERVER}__")]

    def dispatch(self, tool: str, arguments: dict[str, Any] | None = None) -> str:
        """One tool call through the registry, as the agent loop makes it; the JSON string it returns."""
        result = registry.dispatch(f"mcp__{SERVER}__{tool}", dict(arguments or {}))
        assert isinstance(result, str), result
        return result

    def call(self, tool: str, arguments: dict[str, Any] | None = None) -> tuple[dict[str, Any], float]:
        """``dispatch`` parsed, and how long it took."""
        started = time.monotonic()
        answer = json.loads(self.dispatch(tool, arguments))
        return answer, time.monotonic() - started

    def call_many(
        self, calls: list[tuple[str, dict[str, Any]]], during: Callable[[], None], *, wait: float = 90.0
    ) -> tuple[list[dict[str, Any]], float]:
        """Start ``calls`` in parallel (one agent worker thread each), run ``during`` while they are in
        flight, and return every answer and the time until the last one came back."""
        with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
            started = time.monotonic()
            futures = [pool.submit(self.dispatch, tool, args) for tool, args in calls]
            during()
            answers = [json.loads(f.result(timeout=wait)) for f in futures]
            return answers, time.monotonic() - started

    def close(self) -> None:
        mcp_tool.shutdown_mcp_servers()
        with mcp_tool._lock:
            mcp_tool._servers.clear()
        mcp_tool._server_error_counts.clear()
        mcp_tool._server_breaker_opened_at.clear()
        self.connected = False


def answered(answer: dict[str, Any]) -> bool:
    return "error" not in answer and "result" in answer


def result_text(answer: dict[str, Any]) -> str:
    assert answered(answer), answer
    value = answer["result"]
    return value if isinstance(value, str) else json.dumps(value)


def server_pid(answer: dict[str, Any]) -> int:
    """The pid in an ``echo`` answer: which server process answered."""
    text = result_text(answer)
    return int(text.rsplit("(pid ", 1)[1].rstrip(")"))
