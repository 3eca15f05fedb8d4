"""Helpers for the fastmcp integration's tests (a unique module name: the test folders have no __init__.py)."""

from __future__ import annotations

import importlib.metadata
import threading
import time
from typing import Any

import mcp_hooks_fastmcp
import pytest

from mcp_hooks.engine import gate_for
from mcp_hooks.testing import FaultServer

pytest.importorskip("fastmcp")

FASTMCP_VERSION = mcp_hooks_fastmcp.mcp_hooks_integration.framework_version() or "0"
FASTMCP_MAJOR = int(FASTMCP_VERSION.split(".")[0])
MCP_MAJOR = int(importlib.metadata.version("mcp").split(".")[0])


def session_client(url: str, **kwargs: Any) -> Any:
    """A fastmcp Client that keeps an MCP session: fastmcp 4 would otherwise negotiate the session-less
    2026-07-28 protocol against an mcp 2.x server, where a restart is invisible."""
    from fastmcp import Client

    if FASTMCP_MAJOR >= 4:
        kwargs.setdefault("mode", "legacy")
    return Client(url, **kwargs)


def rebuilds(client: Any) -> int:
    """How many times mcp-hooks rebuilt ``client``'s session."""
    return gate_for(client, "").rebuilds


def text_of(result: Any) -> str:
    """The text of a fastmcp ``call_tool`` result."""
    return str(result.content[0].text)


def start_again_when_dead(srv: FaultServer, limit: float = 30.0) -> threading.Thread:
    """Once the server died (``kill_during_next_call``), start it again, in a thread (bounded)."""

    def run() -> None:
        give_up = time.monotonic() + limit
        while srv.running and time.monotonic() < give_up:
            time.sleep(0.02)
        if not srv.running:
            srv.start()

    thread = threading.Thread(target=run, name="start-again", daemon=True)
    thread.start()
    return thread


TOOLS = ("echo", "incr", "put", "slow", "fail")


class Ran:
    """How many times each tool ran on the server since this object was made (the server is shared)."""

    def __init__(self, srv: FaultServer) -> None:
        self.srv = srv
        self.base = {tool: srv.executions(tool) for tool in TOOLS}

    def __call__(self, tool: str) -> int:
        return self.srv.executions(tool) - self.base[tool]
