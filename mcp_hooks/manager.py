"""The plugin manager: built-in plugins, entry-point plugins, blocking, error-isolated hook calls, and
:func:`is_session_expired` (the hooks' verdict, for code that handles errors itself).

pluggy calls every implementation of a hook in one go and lets the first exception escape. Here a
broken plugin must never change a call's result, so the engine calls implementations one at a time in
pluggy's order (:func:`decide` and :func:`notify`): a decision hook that raises counts as no opinion,
an observer that raises is logged and skipped.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import inspect
import logging
import os
import threading
from collections.abc import Iterable
from typing import Any

import pluggy

from . import hookspecs
from .calls import ToolCall
from .classify import is_interrupted
from .hookspecs import DECISION_HOOKS, OBSERVER_HOOKS, PROJECT_NAME
from .plugins import BUILTIN_PLUGINS

__all__ = [
    "ENTRY_POINT_GROUP",
    "ENV_DISABLE",
    "McpHooksPluginManager",
    "PluginOrigin",
    "build_plugin_manager",
    "decide",
    "is_session_expired",
    "notify",
    "plugin_manager",
    "reset_plugin_manager",
]

log = logging.getLogger("mcp_hooks.hooks")

ENTRY_POINT_GROUP = "mcp_hooks"
ENV_DISABLE = "MCP_HOOKS_DISABLE"
ALL_ENTRY_POINTS = "all-entry-points"

# Hooks that may hand back an awaitable; an ``async def`` implementation is fine there.
_AWAITABLE_HOOKS = frozenset({"reconnect"})


@dataclasses.dataclass(frozen=True)
class PluginOrigin:
    """Where a registered plugin came from."""

    name: str
    source: str  # "built-in", "entry point" or "registered"
    distribution: str | None = None
    version: str | None = None
    value: str | None = None  # the entry point's "module:attr"


class McpHooksPluginManager(pluggy.PluginManager):
    """A ``pluggy.PluginManager`` for project ``mcp_hooks`` that refuses ``async def`` decision hooks
    and remembers where each plugin came from and which were blocked or failed."""

    def __init__(self) -> None:
        super().__init__(PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self.origins: dict[str, PluginOrigin] = {}
        #: plugin name -> why it is not registered (blocked by the environment, failed to import, ...)
        self.not_loaded: dict[str, str] = {}

    def register(self, plugin: object, name: str | None = None) -> str | None:
        self._refuse_async_hooks(plugin, name)
        registered = super().register(plugin, name)
        if registered is not None and registered not in self.origins:
            self.origins[registered] = PluginOrigin(registered, "registered")
        return registered

    def unregister(self, plugin: object | None = None, name: str | None = None) -> Any:
        removed = super().unregister(plugin, name)
        live = {registered for registered, _ in self.list_name_plugin()}
        for key in [key for key in self.origins if key not in live]:
            del self.origins[key]
        return removed

    def _refuse_async_hooks(self, plugin: object, name: str | None) -> None:
        for attr in dir(plugin):
            try:
                opts = self.parse_hookimpl_opts(plugin, attr)
            except Exception:  # pluggy reports it during register()
                continue
            if opts is None or attr in _AWAITABLE_HOOKS:
                continue
            function = getattr(plugin, attr, None)
            if inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function):
                who = name or getattr(plugin, "__name__", repr(plugin))
                kind = "decision" if attr in DECISION_HOOKS else "observer"
                raise pluggy.PluginValidationError(
                    plugin,
                    f"plugin {who!r}: hook {attr!r} is an async def. mcp_hooks hooks are plain "
                    f"functions (pluggy is synchronous): an async {kind} hook would return a coroutine "
                    "that is never awaited"
                    + (
                        ", a truthy non-None answer that would hide every other plugin's decision"
                        if kind == "decision"
                        else ""
                    )
                    + ". Make it a plain def; only 'reconnect' may return an awaitable.",
                )

    def register_origin(self, plugin: object, origin: PluginOrigin) -> str | None:
        name = self.register(plugin, origin.name)
        if name is not None:
            self.origins[name] = origin
        return name


def _disabled_names(disable: Iterable[str] | str | None) -> set[str]:
    if disable is None:
        disable = os.environ.get(ENV_DISABLE, "")
    if isinstance(disable, str):
        disable = disable.split(",")
    return {name.strip() for name in disable if name and name.strip()}


def build_plugin_manager(
    *,
    builtins: bool = True,
    entry_points: bool = True,
    disable: Iterable[str] | str | None = None,
) -> McpHooksPluginManager:
    """A new, independent plugin manager (for tests and embedding).

    :param builtins: register ``session-expiry`` and ``replay-safety``.
    :param entry_points: load the plugins of the entry-point group ``mcp_hooks``.
    :param disable: plugin names to block; defaults to ``MCP_HOOKS_DISABLE`` from the environment.
        The name ``all-entry-points`` skips every entry point.
    """
    pm = McpHooksPluginManager()
    blocked = _disabled_names(disable)
    for name in blocked:
        if name != ALL_ENTRY_POINTS:
            pm.set_blocked(name)
            pm.not_loaded[name] = f"blocked by {ENV_DISABLE}"
    if builtins:
        try:
            own_version: str | None = importlib.metadata.version("mcp-hooks")
        except importlib.metadata.PackageNotFoundError:
            own_version = None
        for name, plugin in BUILTIN_PLUGINS.items():
            if name not in blocked:
                pm.register_origin(plugin, PluginOrigin(name, "built-in", "mcp-hooks", own_version))
    if entry_points:
        if ALL_ENTRY_POINTS in blocked:
            pm.not_loaded[ALL_ENTRY_POINTS] = f"entry points skipped by {ENV_DISABLE}"
        else:
            _load_entry_points(pm, blocked)
    return pm


def _load_entry_points(pm: McpHooksPluginManager, blocked: set[str]) -> None:
    try:
        found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception:
        log.exception("mcp_hooks: could not list entry points of group %r", ENTRY_POINT_GROUP)
        return
    seen: set[str] = set()
    for ep in found:
        if ep.name in seen:
            continue
        seen.add(ep.name)
        dist = getattr(ep, "dist", None)
        origin = PluginOrigin(
            ep.name,
            "entry point",
            getattr(dist, "name", None),
            getattr(dist, "version", None),
            ep.value,
        )
        if ep.name in blocked or pm.is_blocked(ep.name):
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # a plugin that fails to import is skipped
            pm.not_loaded[ep.name] = f"failed to import: {type(exc).__name__}: {exc}"
            log.warning("mcp_hooks: plugin %r (%s) failed to import and is skipped: %r", ep.name, ep.value, exc)
            continue
        try:
            pm.register_origin(plugin, origin)
        except Exception as exc:  # nor does one that cannot register
            pm.not_loaded[ep.name] = f"refused: {exc}"
            log.warning("mcp_hooks: plugin %r (%s) was refused and is skipped: %s", ep.name, ep.value, exc)


_default: McpHooksPluginManager | None = None
_default_lock = threading.Lock()


def plugin_manager() -> McpHooksPluginManager:
    """The process-wide plugin manager: built-ins registered, entry points loaded once, on first use."""
    pm = _default
    if pm is not None:
        return pm
    return _build_default()


def _build_default() -> McpHooksPluginManager:
    global _default
    with _default_lock:
        if _default is None:
            _default = build_plugin_manager()
        return _default


def reset_plugin_manager() -> None:
    """Forget the process-wide manager; the next :func:`plugin_manager` call builds a new one."""
    global _default
    with _default_lock:
        _default = None


def implementations(pm: pluggy.PluginManager, hook_name: str) -> list[Any]:
    """The non-wrapper implementations of a hook, in the order pluggy would call them."""
    caller = getattr(pm.hook, hook_name)
    # pluggy calls the last registered (and tryfirst) implementations first.
    return [
        impl
        for impl in reversed(caller.get_hookimpls())
        if not getattr(impl, "hookwrapper", False) and not getattr(impl, "wrapper", False)
    ]


def decide(pm: pluggy.PluginManager, hook_name: str, **kwargs: Any) -> Any:
    """Call a ``firstresult`` hook with error isolation: the first non-``None`` answer wins; an
    implementation that raises is logged and counts as no opinion."""
    for impl in implementations(pm, hook_name):
        try:
            result = impl.function(*[kwargs[arg] for arg in impl.argnames])
        except Exception:
            log.exception("mcp_hooks: plugin %r raised in %s; counted as no opinion", impl.plugin_name, hook_name)
            continue
        if result is not None:
            return result
    return None


def notify(pm: pluggy.PluginManager, hook_name: str, **kwargs: Any) -> None:
    """Call an observer hook on every implementation; one that raises is logged and skipped."""
    assert hook_name in OBSERVER_HOOKS, hook_name
    for impl in implementations(pm, hook_name):
        try:
            impl.function(*[kwargs[arg] for arg in impl.argnames])
        except Exception:
            log.exception("mcp_hooks: observer %r raised in %s; ignored", impl.plugin_name, hook_name)


def is_session_expired(
    error: BaseException,
    *,
    call: ToolCall | None = None,
    plugin_manager_: pluggy.PluginManager | None = None,
) -> bool:
    """``True`` when the hooks (``should_reconnect``) say the session or its connection is gone and must
    be rebuilt. Every spelling the built-in plugin knows counts, and so does every installed plugin.
    Cancellation and an ``InterruptedError`` anywhere in the error graph are never session loss."""
    if not isinstance(error, Exception) or is_interrupted(error):
        return False
    pm = plugin_manager_ if plugin_manager_ is not None else plugin_manager()
    if call is None:
        call = ToolCall(server="unknown", framework="unknown")
    return decide(pm, "should_reconnect", call=call, error=error) is True
