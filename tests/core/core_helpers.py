"""Shared helpers of the core tests: real SDK errors of the installed major, isolated plugin managers.

Imported by the test modules of this folder (pytest puts the folder on ``sys.path``).
"""

from __future__ import annotations

import importlib.metadata
import sys
from typing import Any

import anyio
import mcp.shared.exceptions as sdk_exceptions

import mcp_hooks

if sys.version_info >= (3, 11):
    from builtins import BaseExceptionGroup, ExceptionGroup
else:  # pragma: no cover - anyio brings the backport on 3.10
    from exceptiongroup import BaseExceptionGroup, ExceptionGroup

try:  # mcp 2.x speaks httpx2
    import httpx2 as httpx
except ImportError:  # mcp 1.x speaks httpx
    import httpx  # type: ignore[no-redef]

SDK_MAJOR = int(importlib.metadata.version("mcp").split(".")[0])

# JSON-RPC codes, as the installed SDK spells them.
if SDK_MAJOR >= 2:
    from mcp_types import CONNECTION_CLOSED, INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND
else:
    from mcp.types import CONNECTION_CLOSED, INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND

REQUEST_TIMEOUT = -32001

__all__ = [
    "CONNECTION_CLOSED",
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "REQUEST_TIMEOUT",
    "SDK_MAJOR",
    "BaseExceptionGroup",
    "ExceptionGroup",
    "anyio",
    "httpx",
    "http_status_error",
    "in_flight_error",
    "isolated_pm",
    "sdk_error",
    "session_lost_error",
]


def sdk_error(code: int, message: str) -> Exception:
    """The error the installed SDK raises for a JSON-RPC error ``code``/``message``."""
    if SDK_MAJOR >= 2:
        return sdk_exceptions.MCPError(code, message)
    return sdk_exceptions.McpError(sdk_exceptions.ErrorData(code=code, message=message))


def session_lost_error() -> Exception:
    """What the installed SDK raises when the server answered 404 to a stale session id."""
    if SDK_MAJOR >= 2:
        return sdk_error(INVALID_REQUEST, "Session not found")
    return sdk_error(32600, "Session terminated")  # mcp 1.x: the positive literal, whatever the body


def in_flight_error() -> Exception:
    """What the installed SDK raises when the connection closed with the request outstanding."""
    return sdk_error(CONNECTION_CLOSED, "Connection closed")


def http_status_error(status: int, *, session: bool = True, body: str = "") -> Exception:
    """A real ``HTTPStatusError`` with real ``Request``/``Response`` objects."""
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    if session:
        headers["mcp-session-id"] = "5f1c0a9e7d3b4c2a"
    request = httpx.Request("POST", "http://127.0.0.1:8000/mcp", headers=headers, content=b"{}")
    response = httpx.Response(status, request=request, text=body)
    return httpx.HTTPStatusError(f"HTTP {status} for url {request.url}", request=request, response=response)


def isolated_pm(*plugins: Any, builtins: bool = True) -> mcp_hooks.McpHooksPluginManager:
    """A fresh plugin manager with the built-ins (no entry points, nothing blocked) plus ``plugins``."""
    pm = mcp_hooks.build_plugin_manager(builtins=builtins, entry_points=False, disable=())
    for plugin in plugins:
        pm.register(plugin)
    return pm
