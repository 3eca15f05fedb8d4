"""The pydantic-ai integration as an object: registered like a plugin, idempotent, reversible, version-gated."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

import mcp_hooks_fastmcp
import mcp_hooks_pydantic_ai
import pytest
from pydantic_ai.mcp import MCPToolset

import mcp_hooks

pytestmark = pytest.mark.timeout(60)

METHOD = "_call_tool_checked"


def test_registered_through_the_entry_point() -> None:
    found = mcp_hooks.integrations()
    assert found["pydantic-ai"] is mcp_hooks_pydantic_ai.mcp_hooks_integration
    assert found["fastmcp"] is mcp_hooks_fastmcp.mcp_hooks_integration


def test_instrument_twice_wraps_once_and_uninstrument_restores_exactly(no_shim: None) -> None:
    original = vars(MCPToolset)[METHOD]
    fastmcp = mcp_hooks_fastmcp.mcp_hooks_integration
    try:
        assert mcp_hooks.instrument("pydantic-ai") == {"pydantic-ai": True}
        wrapped = vars(MCPToolset)[METHOD]
        assert mcp_hooks.instrument("pydantic-ai") == {"pydantic-ai": True}
        assert vars(MCPToolset)[METHOD] is wrapped is not original
        assert wrapped.__wrapped__ is original
        assert fastmcp.enabled  # the recovery underneath is the fastmcp integration's
    finally:
        mcp_hooks.uninstrument("pydantic-ai")
    assert vars(MCPToolset)[METHOD] is original
    assert not fastmcp.enabled  # it turned it on, so it turned it off
    mcp_hooks.uninstrument("pydantic-ai")  # twice is fine


def test_leaves_the_fastmcp_integration_on_when_the_user_turned_it_on(no_shim: None) -> None:
    fastmcp = mcp_hooks_fastmcp.mcp_hooks_integration
    try:
        assert fastmcp.instrument()
        assert mcp_hooks.instrument("pydantic-ai") == {"pydantic-ai": True}
        mcp_hooks.uninstrument("pydantic-ai")
        assert fastmcp.enabled
    finally:
        fastmcp.uninstrument()


def test_steps_aside_when_pydantic_ai_is_missing(
    no_shim: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    original = vars(MCPToolset)[METHOD]
    integration = mcp_hooks_pydantic_ai.mcp_hooks_integration
    monkeypatch.setattr(integration, "framework_version", lambda: None)
    with caplog.at_level(logging.INFO, logger="mcp_hooks"):
        assert integration.instrument() is False
        assert integration.instrument() is False
    lines = [r.getMessage() for r in caplog.records if "steps aside" in r.getMessage()]
    assert lines == ["mcp_hooks: integration 'pydantic-ai' steps aside: pydantic-ai-slim is not installed"]
    assert vars(MCPToolset)[METHOD] is original
    assert not mcp_hooks_fastmcp.mcp_hooks_integration.enabled


def test_steps_aside_on_pydantic_ai_1(no_shim: None, monkeypatch: pytest.MonkeyPatch) -> None:
    integration = mcp_hooks_pydantic_ai.mcp_hooks_integration
    monkeypatch.setattr(integration, "framework_version", lambda: "1.107.10")
    assert integration.instrument() is False
    assert integration.why_not is not None and "1.107.10" in integration.why_not
    assert vars(MCPToolset)[METHOD].__class__.__name__ == "function"


def test_instrumenting_before_pydantic_ai_is_imported_wraps_it_on_import() -> None:
    code = textwrap.dedent(
        """
        import sys
        import mcp_hooks
        assert "pydantic_ai.mcp" not in sys.modules
        assert mcp_hooks.instrument("pydantic-ai") == {"pydantic-ai": True}
        from pydantic_ai.mcp import MCPToolset
        wrapper = vars(MCPToolset)["_call_tool_checked"]
        assert type(wrapper).__name__ == "FunctionWrapper", type(wrapper)
        mcp_hooks.uninstrument("pydantic-ai")
        assert vars(MCPToolset)["_call_tool_checked"] is wrapper.__wrapped__
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
