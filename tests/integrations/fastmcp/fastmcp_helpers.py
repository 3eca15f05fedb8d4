"""Helpers for the fastmcp integration's tests (a unique module name: the test folders have no __init__.py)."""

from __future__ import annotations

import importlib.metadata
from typing import Any

import mcp_hooks_fastmcp
import pytest

from mcp_hooks.engine import gate_for

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
