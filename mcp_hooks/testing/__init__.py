"""Testing kit: a fault-injecting MCP server and the controller that drives it from tests.

``FaultServer`` starts the server (``python -m mcp_hooks.testing.server``) on loopback, restarts or
kills it, expires its sessions (at once, or after ``post_idle_ttl`` seconds without a POST, like a
gateway), arms a SIGKILL during the next tool call and counts tool executions across processes. It
records the ``logging/setLevel`` and ``resources/subscribe`` a session made, with the pid that answered,
and can offer an ``extra`` tool from the next start on (so a restart changes the tool list).
``legacy_only=True`` keeps mcp 2.x clients on sessions (the server refuses the session-less
2026-07-28 protocol as a pre-2026 server does). The pytest plugin (``mcp_hooks.testing.pytest_plugin``,
registered through the ``pytest11`` entry point) provides the ``mcp_fault_server``,
``mcp_fault_server_factory``, ``mcp_shared_fault_server`` and ``mcp_stdio_fault_server`` fixtures, and
``mcp_recovery_events`` (what the observer hooks heard during the test: :mod:`.events`).
Importing this package never imports ``mcp``.
"""

from mcp_hooks.testing.controller import (
    STALE_STYLES,
    FaultServer,
    FaultServerError,
    StdioParameters,
)

__all__ = ["STALE_STYLES", "FaultServer", "FaultServerError", "StdioParameters"]
