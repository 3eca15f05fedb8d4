"""The plugin manager: isolated managers, refusing ``async def`` hooks, blocking by name, and a real
third-party plugin found through a real entry point."""

from __future__ import annotations

import importlib
import logging
import sys
import textwrap
import uuid
from typing import Any

import pluggy
import pytest
from core_helpers import http_status_error, isolated_pm, session_lost_error

import mcp_hooks
from mcp_hooks import (
    ENTRY_POINT_GROUP,
    McpHooksPluginManager,
    PluginOrigin,
    ToolCall,
    build_plugin_manager,
    hookimpl,
    is_session_expired,
    plugin_manager,
    reset_plugin_manager,
)
from mcp_hooks.hookspecs import DECISION_HOOKS, OBSERVER_HOOKS

BUILTINS = ("session-expiry", "replay-safety", "recovery-log", "retry-after", "circuit-breaker")


@pytest.fixture
def fresh_default():
    """The process-wide manager is rebuilt for the test and forgotten after it."""
    reset_plugin_manager()
    yield
    reset_plugin_manager()


def test_markers_are_pluggy_markers_of_the_project():
    assert isinstance(mcp_hooks.hookspec, pluggy.HookspecMarker)
    assert isinstance(mcp_hooks.hookimpl, pluggy.HookimplMarker)
    assert mcp_hooks.hookspec.project_name == mcp_hooks.hookimpl.project_name == ENTRY_POINT_GROUP == "mcp_hooks"


def test_isolated_managers_are_independent():
    first = build_plugin_manager(entry_points=False)
    second = build_plugin_manager(entry_points=False)
    assert first is not second
    assert isinstance(first, pluggy.PluginManager)

    class Veto:
        @hookimpl
        def should_reconnect(self, call, error):
            return False

    first.register(Veto(), name="veto")
    assert is_session_expired(session_lost_error(), plugin_manager_=first) is False
    assert is_session_expired(session_lost_error(), plugin_manager_=second) is True
    assert first.get_plugin("veto") is not None
    assert second.get_plugin("veto") is None
    assert first.origins["veto"] == PluginOrigin("veto", "registered")
    first.unregister(name="veto")
    assert "veto" not in first.origins
    for name in BUILTINS:
        assert first.origins[name].source == "built-in"
        assert first.origins[name].distribution == "mcp-hooks"


def test_every_hookspec_is_registered():
    pm = build_plugin_manager(builtins=False, entry_points=False)
    assert set(DECISION_HOOKS) | set(OBSERVER_HOOKS) == set(vars(pm.hook))


def test_plugin_manager_is_process_wide_and_lazy(fresh_default):
    first = plugin_manager()
    assert plugin_manager() is first
    assert isinstance(first, McpHooksPluginManager)
    for name in BUILTINS:
        assert first.get_plugin(name) is not None
    reset_plugin_manager()
    assert plugin_manager() is not first


@pytest.mark.parametrize("hook", ["should_reconnect", "is_replay_safe", "on_tool_error", "on_giveup"])
def test_async_def_hook_is_refused_at_registration_saying_why(hook):
    namespace: dict = {"hookimpl": hookimpl}
    exec(  # a plugin class whose `hook` is an async def
        textwrap.dedent(
            f"""
            class AsyncPlugin:
                @hookimpl
                async def {hook}(self, call, error):
                    return True
            """
        ),
        namespace,
    )
    pm = isolated_pm()
    with pytest.raises(pluggy.PluginValidationError) as info:
        pm.register(namespace["AsyncPlugin"](), name="async-plugin")
    message = str(info.value)
    assert hook in message
    assert "async def" in message
    assert "plain def" in message
    if hook in DECISION_HOOKS:
        assert "hide every other plugin" in message
    assert pm.get_plugin("async-plugin") is None
    assert is_session_expired(session_lost_error(), plugin_manager_=pm) is True


def test_async_reconnect_hook_is_allowed():
    class AsyncReconnect:
        @hookimpl
        async def reconnect(self, call):
            return True

    pm = isolated_pm()
    assert pm.register(AsyncReconnect(), name="async-reconnect") == "async-reconnect"


def _builtins_of(hook: Any) -> list[str]:
    """The built-in plugins implementing ``hook`` (an installed integration's entry point may too)."""
    return [impl.plugin_name for impl in hook.get_hookimpls() if impl.plugin_name in BUILTINS]


@pytest.mark.parametrize("blocked", BUILTINS)
def test_disable_blocks_a_builtin_by_name(blocked, monkeypatch, fresh_default):
    monkeypatch.setenv("MCP_HOOKS_DISABLE", f" {blocked} , some-other-plugin")
    for pm in (build_plugin_manager(entry_points=False), plugin_manager()):
        assert pm.get_plugin(blocked) is None
        assert pm.is_blocked(blocked)
        assert "MCP_HOOKS_DISABLE" in pm.not_loaded[blocked]
        other = next(name for name in BUILTINS if name != blocked)
        assert pm.get_plugin(other) is not None
    pm = plugin_manager()
    if blocked == "session-expiry":
        assert is_session_expired(session_lost_error()) is False
    elif blocked == "replay-safety":
        assert is_session_expired(session_lost_error()) is True
        assert _builtins_of(pm.hook.is_replay_safe) == []
    elif blocked == "retry-after":
        assert is_session_expired(session_lost_error()) is True
        assert _builtins_of(pm.hook.retry_refused) == []
    elif blocked == "circuit-breaker":
        assert is_session_expired(session_lost_error()) is True
        assert _builtins_of(pm.hook.open_circuit) == []
    else:
        assert is_session_expired(session_lost_error()) is True
        assert "recovery-log" not in [i.plugin_name for i in pm.hook.on_rebuilt.get_hookimpls()]


def test_disable_argument_overrides_the_environment(monkeypatch):
    monkeypatch.setenv("MCP_HOOKS_DISABLE", "session-expiry")
    pm = build_plugin_manager(entry_points=False, disable=())
    assert pm.get_plugin("session-expiry") is not None


# --- a third-party plugin through a real entry point ------------------------------------------------


PLUGIN_SOURCE = """
from mcp_hooks import hookimpl

seen = []


@hookimpl
def should_reconnect(call, error):
    seen.append(call.tool)
    if "gateway lost your session" in str(error):
        return True
    return None


@hookimpl
def on_giveup(call, error):
    seen.append(("giveup", call.tool))
"""

ASYNC_PLUGIN_SOURCE = """
from mcp_hooks import hookimpl


@hookimpl
async def should_reconnect(call, error):
    return True
"""


@pytest.fixture
def installed_distribution(tmp_path):
    """Write a distribution (``*.dist-info`` with METADATA and entry_points.txt, plus its modules) into a
    temporary folder on ``sys.path``, as an installer would. Yields (name, modules); cleans up after."""
    suffix = uuid.uuid4().hex[:8]
    dist = f"myplug_{suffix}"
    good, broken, refused = f"myplug_{suffix}", f"brokenplug_{suffix}", f"asyncplug_{suffix}"
    (tmp_path / f"{good}.py").write_text(PLUGIN_SOURCE)
    (tmp_path / f"{broken}.py").write_text("raise ImportError('this plugin needs a library that is missing')\n")
    (tmp_path / f"{refused}.py").write_text(ASYNC_PLUGIN_SOURCE)
    info = tmp_path / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nmyplug = {good}\nbrokenplug = {broken}\nasyncplug = {refused}\n"
    )
    sys.path.insert(0, str(tmp_path))
    importlib.invalidate_caches()
    try:
        yield dist, {"good": good, "broken": broken, "refused": refused}
    finally:
        sys.path.remove(str(tmp_path))
        for module in (good, broken, refused):
            sys.modules.pop(module, None)
        importlib.invalidate_caches()


def test_a_third_party_plugin_is_loaded_through_its_entry_point(installed_distribution, caplog):
    dist, modules = installed_distribution
    with caplog.at_level(logging.WARNING, logger="mcp_hooks"):
        pm = build_plugin_manager(disable=())
    plugin = pm.get_plugin("myplug")
    assert plugin is sys.modules[modules["good"]]
    assert pm.origins["myplug"] == PluginOrigin(
        "myplug", "entry point", distribution=dist, version="0.1", value=modules["good"]
    )
    # It decides: a case the built-ins do not know.
    call = ToolCall(server="http://gw/mcp", tool="search")
    assert is_session_expired(RuntimeError("the gateway lost your session"), call=call, plugin_manager_=pm)
    assert plugin.seen == ["search"]
    assert not is_session_expired(RuntimeError("the gateway lost your session"), plugin_manager_=isolated_pm())
    # The plugin that fails to import is logged and skipped, never fatal.
    assert pm.get_plugin("brokenplug") is None
    assert "failed to import" in pm.not_loaded["brokenplug"]
    assert "library that is missing" in pm.not_loaded["brokenplug"]
    # The plugin with an async decision hook is refused, logged and skipped.
    assert pm.get_plugin("asyncplug") is None
    assert "async def" in pm.not_loaded["asyncplug"]
    logged = " ".join(record.getMessage() for record in caplog.records)
    assert "brokenplug" in logged
    assert "failed to import" in logged
    assert "asyncplug" in logged
    # The built-ins are still there, and still answer.
    assert is_session_expired(http_status_error(404), plugin_manager_=pm)


def test_entry_point_plugins_can_be_blocked(installed_distribution, monkeypatch):
    monkeypatch.setenv("MCP_HOOKS_DISABLE", "myplug")
    pm = build_plugin_manager()
    assert pm.get_plugin("myplug") is None
    assert pm.is_blocked("myplug")
    monkeypatch.setenv("MCP_HOOKS_DISABLE", "all-entry-points")
    pm = build_plugin_manager()
    assert pm.get_plugin("myplug") is None
    assert "all-entry-points" in pm.not_loaded
    for name in BUILTINS:
        assert pm.get_plugin(name) is not None
    _dist, modules = installed_distribution
    assert modules["good"] not in sys.modules  # skipped entry points are not even imported
    pm = build_plugin_manager(entry_points=False, disable=())
    assert pm.get_plugin("myplug") is None


def test_the_process_wide_manager_loads_entry_points(installed_distribution, monkeypatch, fresh_default):
    monkeypatch.delenv("MCP_HOOKS_DISABLE", raising=False)
    pm = plugin_manager()
    assert pm.get_plugin("myplug") is not None
    assert is_session_expired(RuntimeError("the gateway lost your session"))
