"""The installed MCP SDK: its major version, the HTTP library it is built on, and every private part of
it that mcp-hooks touches.

mcp-hooks keeps to the SDK's public surface wherever it can. Where it cannot (the id a request is about to
get, the era a session negotiated), it reads or changes a private attribute, always guarded: a missing one
turns that one feature off and never fails a user's call. So that a rename in a new SDK release fails a
test instead of silently turning a feature off, every such part is listed in :data:`PRIVATE`, and
``tests/core/test_sdk.py`` checks each one against the installed SDK, on a live session.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
from typing import Any

__all__ = ["HTTPX", "MCP_MAJOR", "MCP_VERSION", "PRIVATE", "Private"]

#: The installed SDK's version (``"1.30.0"``) and major (1 or 2).
MCP_VERSION = importlib.metadata.version("mcp")
MCP_MAJOR = int(MCP_VERSION.split(".", 1)[0])
#: The HTTP library the SDK's transports are built on (``httpx``; mcp 2.x vendors it as ``httpx2``).
HTTPX: Any = importlib.import_module("httpx2" if MCP_MAJOR >= 2 else "httpx")


@dataclasses.dataclass(frozen=True)
class Private:
    """One private part of the SDK that mcp-hooks touches."""

    #: the SDK major it exists in (0: both)
    major: int
    #: a module (``"mcp.client._probe"``), or a path from ``"session"`` (``"session._dispatcher"``): an
    #: attribute of a live ``ClientSession`` (or of what it holds) over streamable HTTP
    owner: str
    name: str
    #: what stops working without it
    used_for: str


PRIVATE: tuple[Private, ...] = (
    Private(
        0,
        "mcp.shared._httpx_utils",
        "create_mcp_http_client",
        "instrument('mcp'): the HTTP client of a healed transport that was handed none",
    ),
    Private(
        1,
        "session",
        "_progress_callbacks",
        "connect(call_timeout=): the id of a call given up, for notifications/cancelled",
    ),
    Private(1, "session", "_request_id", "instrument('mcp'): a request its caller gave up is forgotten"),
    Private(
        1, "session", "_response_streams", "shims (healing.settle): requests pending on a closing session answered"
    ),
    Private(1, "session", "_write_stream", "instrument('mcp'): the healing relay beneath a session"),
    Private(2, "session", "_dispatcher", "instrument('mcp'): the healing relay beneath a session"),
    Private(2, "session._dispatcher", "_write_stream", "instrument('mcp'): the healing relay beneath a session"),
    Private(
        2,
        "mcp.shared._context_streams",
        "ContextSendStream",
        "instrument('mcp'): a request handed to the transport without a loop turn (healing.link.put_at_once)",
    ),
    Private(
        2,
        "session._dispatcher._write_stream",
        "_inner",
        "instrument('mcp'): a request handed to the transport without a loop turn (healing.link.put_at_once)",
    ),
    Private(2, "session", "_stamp", "instrument('mcp'): the era a request was sent in, reset to negotiate again"),
    Private(2, "session", "_negotiated_version", "instrument('mcp'): whether a session is session-less"),
    Private(2, "mcp.client.session", "_preconnect_stamp", "instrument('mcp'): negotiating the era again"),
    Private(2, "mcp.client._probe", "negotiate_auto", "instrument('mcp'): negotiating the era again"),
    Private(2, "mcp_types.version", "MODERN_PROTOCOL_VERSIONS", "instrument('mcp'): which eras are session-less"),
    Private(
        2,
        "session",
        "_tool_output_validators",
        "connect(): a rebuilt session keeps the compiled output-schema validators",
    ),
    Private(2, "session", "_tool_output_schemas", "connect(): a rebuilt session keeps the compiled validators"),
)
