"""The shim's lifecycle: registered like any plugin, idempotent, reversible, version-gated."""

from __future__ import annotations

import importlib.metadata
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import wrapt
from mcp.client.streamable_http import StreamableHTTPTransport
from mcp.shared.session import BaseSession
from mcp_hooks_hermes import HermesIntegration, mcp_hooks_integration
from tools import mcp_tool

import mcp_hooks

# (owner, attribute) of everything the shim patches.
PATCHED = [
    (mcp_tool, "_is_session_expired_error"),
    (mcp_tool, "_handle_session_expired_and_retry"),
    (mcp_tool, "_handle_auth_error_and_retry"),
    (mcp_tool, "_wait_for_server_session_ready"),
    (mcp_tool, "_make_tool_handler"),
    (mcp_tool, "_make_list_resources_handler"),
    (mcp_tool, "_make_read_resource_handler"),
    (mcp_tool, "_make_list_prompts_handler"),
    (mcp_tool, "_make_get_prompt_handler"),
    (mcp_tool.MCPServerTask, "_run_http"),
    (mcp_tool.MCPServerTask, "_run_stdio"),
    (StreamableHTTPTransport, "_handle_post_request"),
    (BaseSession, "__aexit__"),
]


def originals() -> list[Any]:
    return [vars(owner)[name] for owner, name in PATCHED]


def test_registered_through_its_entry_point() -> None:
    (entry,) = [e for e in importlib.metadata.entry_points(group="mcp_hooks") if e.name == "hermes"]
    assert entry.value == "mcp_hooks_hermes"
    assert mcp_hooks.integrations()["hermes"] is mcp_hooks_integration
    pm = mcp_hooks.plugin_manager()
    hooks = {impl.plugin_name for impl in pm.hook.reconnect.get_hookimpls()}
    assert "hermes" in hooks
    assert mcp_hooks_integration.instrumentation_dependencies() == ["hermes-agent>=0.19,<0.20"]


def test_instrument_twice_wraps_once_and_uninstrument_restores_exactly(no_shim: None) -> None:
    before = originals()
    assert not any(isinstance(o, wrapt.FunctionWrapper) for o in before)
    try:
        assert mcp_hooks.instrument("hermes") == {"hermes": True}
        first = originals()
        assert mcp_hooks.instrument("hermes") == {"hermes": True}
        assert originals() == first
        for (_owner, name), wrapper, original in zip(PATCHED, first, before, strict=True):
            assert isinstance(wrapper, wrapt.FunctionWrapper), name
            assert wrapper.__wrapped__ is original, f"{name} is wrapped more than once"
    finally:
        mcp_hooks.uninstrument("hermes")
    for (owner, name), original in zip(PATCHED, before, strict=True):
        assert vars(owner)[name] is original, name
    mcp_hooks.uninstrument("hermes")  # twice is fine
    assert originals() == before


def test_steps_aside_with_one_line_when_hermes_is_missing(
    no_shim: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    before = originals()
    integration = HermesIntegration()
    monkeypatch.setattr(integration, "framework_version", lambda: None)
    with caplog.at_level(logging.INFO, logger="mcp_hooks"):
        assert integration.instrument() is False
        assert integration.instrument() is False
    lines = [r.getMessage() for r in caplog.records if "steps aside" in r.getMessage()]
    assert lines == ["mcp_hooks: integration 'hermes' steps aside: hermes-agent is not installed"]
    assert originals() == before


@pytest.mark.parametrize("version", ["0.18.2", "0.20.0"])
def test_steps_aside_outside_the_checked_versions(no_shim: None, monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    before = originals()
    integration = HermesIntegration()
    monkeypatch.setattr(integration, "framework_version", lambda: version)
    assert integration.instrument() is False
    assert "outside the supported range" in (integration.why_not or "")
    assert originals() == before


def _run(code: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_instrumented_before_hermes_is_imported(tmp_path: Path) -> None:
    """Patched when ``tools.mcp_tool`` is imported later (post-import hook), in a fresh process."""
    out = _run(
        """
        import sys, wrapt, mcp_hooks
        assert "tools.mcp_tool" not in sys.modules
        assert mcp_hooks.instrument("hermes") == {"hermes": True}
        from tools import mcp_tool
        assert isinstance(vars(mcp_tool)["_is_session_expired_error"], wrapt.FunctionWrapper)
        assert isinstance(vars(mcp_tool)["_make_tool_handler"], wrapt.FunctionWrapper)
        print(mcp_tool._is_session_expired_error(RuntimeError("Unknown session: 42")))
        """,
        {"HERMES_HOME": str(tmp_path)},
    )
    assert out.split() == ["True"]


@pytest.mark.parametrize("enabled", [True, False])
def test_hermes_own_plugin_loader_turns_it_on(tmp_path: Path, enabled: bool) -> None:
    """``plugins: {enabled: [mcp-hooks]}`` in hermes' config.yaml: hermes loads the shim itself."""
    (tmp_path / "config.yaml").write_text(f"plugins:\n  enabled: [{'mcp-hooks' if enabled else ''}]\n")
    out = _run(
        """
        from hermes_cli.plugins import discover_plugins
        discover_plugins()
        import mcp_hooks_hermes
        print(mcp_hooks_hermes.mcp_hooks_integration.enabled)
        """,
        {"HERMES_HOME": str(tmp_path)},
    )
    assert out.split()[-1] == str(enabled)
