"""mcp-hooks: survive MCP session loss in any Python agent framework.

Detect session loss (every spelling, structurally first), rebuild the session once for all concurrent
callers, and replay a call only when that is safe. Decisions are pluggy hooks; the built-in plugins
answer last, so any plugin can add or veto a case.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .attach import AttachHandle, attach, with_mcp_recovery
from .calls import CallTimeout, OutcomeUncertain, ToolCall
from .classify import Loss, SessionLostMark, Verdict, classify, mark_session_lost, session_lost_mark
from .engine import CircuitOpen, CredentialsRefused
from .hookspecs import hookimpl, hookspec
from .integration import Integration, instrument, integrations, uninstrument
from .manager import (
    ENTRY_POINT_GROUP,
    McpHooksPluginManager,
    PluginOrigin,
    build_plugin_manager,
    is_session_expired,
    plugin_manager,
    reset_plugin_manager,
)
from .patch import Patch

if TYPE_CHECKING:
    from .connection import ResilientSession, connect

__version__ = "0.1.0"

__all__ = [
    "ENTRY_POINT_GROUP",
    "AttachHandle",
    "CallTimeout",
    "CircuitOpen",
    "CredentialsRefused",
    "Integration",
    "Loss",
    "McpHooksPluginManager",
    "OutcomeUncertain",
    "Patch",
    "PluginOrigin",
    "ResilientSession",
    "SessionLostMark",
    "ToolCall",
    "Verdict",
    "__version__",
    "attach",
    "build_plugin_manager",
    "classify",
    "connect",
    "hookimpl",
    "hookspec",
    "instrument",
    "integrations",
    "is_session_expired",
    "mark_session_lost",
    "plugin_manager",
    "reset_plugin_manager",
    "session_lost_mark",
    "uninstrument",
    "with_mcp_recovery",
]

#: Loaded on first use: they stand on the MCP SDK (and its anyio), which the hooks, the classifier, the
#: engine and attachment never need, so ``import mcp_hooks`` works (and stays light) without it.
_ON_THE_SDK = frozenset({"connect", "ResilientSession"})


def __getattr__(name: str) -> Any:
    if name not in _ON_THE_SDK:
        raise AttributeError(f"module 'mcp_hooks' has no attribute {name!r}")
    try:
        from . import connection
    except ImportError as exc:
        return _without_the_sdk(name, exc)
    value = getattr(connection, name)
    globals()[name] = value
    return value


def _without_the_sdk(name: str, missing: ImportError) -> Any:
    """What ``name`` is where the SDK cannot be imported: every public name still imports (``from mcp_hooks
    import connect`` works everywhere); using it raises an ``ImportError`` that names the SDK. Not kept: a
    later look-up tries the SDK again."""
    message = f"mcp_hooks.{name} needs the MCP SDK (pip install mcp): {missing}"

    def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise ImportError(message) from missing

    if name == "connect":
        unavailable.__name__ = unavailable.__qualname__ = "connect"
        unavailable.__doc__ = message
        return unavailable
    return type(name, (), {"__init__": unavailable, "__doc__": message, "__module__": __name__})
