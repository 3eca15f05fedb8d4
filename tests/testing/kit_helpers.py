"""Helpers shared by the testing-kit tests: raw HTTP to the fault server, the stale answers expected."""

from __future__ import annotations

import importlib.metadata
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from mcp_hooks.testing.server import STALE_RESPONSES

MCP_VERSION = tuple(int(part) for part in importlib.metadata.version("mcp").split(".")[:2])
MCP_MAJOR = MCP_VERSION[0]
# mcp <= 1.25 servers answered an unknown session id with a 400 text body (python-sdk #1727):
# the "python" style is the installed SDK's own answer, so it is that old answer there.
OLD_PYTHON_SDK = MCP_VERSION < (1, 26)


def raw_post(
    url: str,
    payload: dict[str, Any],
    *,
    session_id: str | None = None,
    method: str = "POST",
    extra_headers: dict[str, str] | None = None,
) -> tuple[int, str | None, bytes, str | None]:
    """One HTTP request with the stdlib: (status, content type, body, mcp-session-id of the answer)."""
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    headers.update(extra_headers or {})
    if session_id is not None:
        headers["mcp-session-id"] = session_id
    data = None if method == "DELETE" else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
            return response.status, response.headers.get("content-type"), body, response.headers.get("mcp-session-id")
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers.get("content-type"), exc.read(), exc.headers.get("mcp-session-id")


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw-probe", "version": "0"},
    },
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
TOOLS_LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
SESSIONLESS_VERSION = "2026-07-28"
#: What an mcp 2.x client in mode="auto" sends first: a session-less (2026-07-28) server/discover.
DISCOVER = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "server/discover",
    "params": {
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": SESSIONLESS_VERSION,
            "io.modelcontextprotocol/clientInfo": {"name": "raw-probe", "version": "0"},
            "io.modelcontextprotocol/clientCapabilities": {},
        }
    },
}
MODERN_HEADERS = {"mcp-protocol-version": SESSIONLESS_VERSION, "mcp-method": "server/discover"}


def raw_session(url: str) -> str:
    """Open a session with raw HTTP (no GET stream, so it can idle out); returns its id."""
    status, _, _, session_id = raw_post(url, INITIALIZE)
    assert status == 200
    assert session_id
    status, _, _, _ = raw_post(url, INITIALIZED, session_id=session_id)
    assert status == 202
    return session_id


def python_stale_body() -> dict[str, Any]:
    """The installed SDK's own answer to an unknown session id."""
    return {
        "jsonrpc": "2.0",
        "id": "server-error" if MCP_MAJOR == 1 else None,
        "error": {"code": -32600, "message": "Session not found"},
    }


def check_stale_answer(style: str, status: int, content_type: str | None, body: bytes) -> None:
    if style == "python" and OLD_PYTHON_SDK:
        style = "old-python"
    if style == "python":
        assert status == 404
        assert content_type == "application/json"
        assert json.loads(body) == python_stale_body()
        return
    want_status, want_type, want_body = STALE_RESPONSES[style]
    assert (status, content_type, body) == (want_status, want_type, want_body)


@asynccontextmanager
async def open_session(url: str, *, read_timeout: float = 10.0) -> AsyncIterator[Any]:
    """A raw ``ClientSession`` over streamable HTTP, initialized (works with mcp 1.x and 2.x)."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with streamable_http_client(url) as streams:  # 1.x yields 3 items, 2.x yields 2
        timeout: Any = timedelta(seconds=read_timeout) if MCP_MAJOR == 1 else read_timeout
        async with ClientSession(streams[0], streams[1], read_timeout_seconds=timeout) as session:
            await session.initialize()
            yield session


def text_of(result: Any) -> str:
    return str(result.content[0].text)


def is_error(result: Any) -> bool:
    return bool(getattr(result, "isError", None) or getattr(result, "is_error", None))


def code_and_message(exc: BaseException) -> tuple[int, str]:
    error = exc.error  # type: ignore[attr-defined]
    return int(error.code), str(error.message)


def pid_of(echo_text: str) -> int:
    return int(echo_text.rsplit("(pid ", 1)[1].rstrip(")"))
