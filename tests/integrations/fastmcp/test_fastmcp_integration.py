"""The fastmcp integration as an object: registered like a plugin, idempotent, reversible, version-gated."""

from __future__ import annotations

import importlib
import logging
import subprocess
import sys
import textwrap
from typing import Any

import mcp_hooks_fastmcp
import pytest
from fastmcp_helpers import MCP_MAJOR
from mcp_hooks_fastmcp import _mcp1_sse, _mcp1_stdio

import mcp_hooks

pytestmark = pytest.mark.timeout(60)


def _owner() -> Any:
    from fastmcp.client.mixins.tools import ClientToolsMixin

    return ClientToolsMixin


def _sse_class() -> Any:
    from mcp.client.streamable_http import StreamableHTTPTransport

    return StreamableHTTPTransport


def _stdio_module() -> Any:
    return importlib.import_module(_mcp1_stdio.MODULE)


def _client() -> Any:
    from fastmcp.client.client import Client

    return Client


def test_registered_through_the_entry_point() -> None:
    assert mcp_hooks.integrations()["fastmcp"] is mcp_hooks_fastmcp.mcp_hooks_integration
    names = dict(mcp_hooks.plugin_manager().list_name_plugin())
    assert names["fastmcp"] is mcp_hooks_fastmcp


def test_instrument_twice_wraps_once_and_uninstrument_restores_exactly(no_shim: None) -> None:
    owner = _owner()
    originals = {name: vars(owner)[name] for name in ("call_tool_mcp", "list_tools_mcp")}
    sse_original = vars(_sse_class())[_mcp1_sse.METHOD]
    runner_original = vars(_client())["_session_runner"]
    stdio_original = vars(_stdio_module())[_mcp1_stdio.FUNCTION]
    integration = mcp_hooks_fastmcp.mcp_hooks_integration
    try:
        assert mcp_hooks.instrument("fastmcp") == {"fastmcp": True}
        wrapped = {name: vars(owner)[name] for name in originals}
        assert mcp_hooks.instrument("fastmcp") == {"fastmcp": True}
        for name, original in originals.items():
            assert vars(owner)[name] is wrapped[name] is not original
            assert vars(owner)[name].__wrapped__ is original  # one layer, not two
        assert vars(_client())["_session_runner"].__wrapped__ is runner_original  # opens transports under bypass()
        if MCP_MAJOR == 1:
            assert vars(_sse_class())[_mcp1_sse.METHOD] is not sse_original
            assert vars(_sse_class())[_mcp1_sse.METHOD].__wrapped__ is sse_original
            assert vars(_stdio_module())[_mcp1_stdio.FUNCTION].__wrapped__ is stdio_original
        else:
            assert vars(_sse_class())[_mcp1_sse.METHOD] is sse_original
            assert vars(_stdio_module())[_mcp1_stdio.FUNCTION] is stdio_original
    finally:
        integration.uninstrument()
    for name, original in originals.items():
        assert vars(owner)[name] is original
    assert vars(_sse_class())[_mcp1_sse.METHOD] is sse_original
    assert vars(_stdio_module())[_mcp1_stdio.FUNCTION] is stdio_original
    assert vars(_client())["_session_runner"] is runner_original
    integration.uninstrument()  # twice is fine
    assert integration.enabled is False


def test_steps_aside_when_fastmcp_is_missing(
    no_shim: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    owner = _owner()
    original = vars(owner)["call_tool_mcp"]
    integration = mcp_hooks_fastmcp.mcp_hooks_integration
    monkeypatch.setattr(integration, "framework_version", lambda: None)
    with caplog.at_level(logging.INFO, logger="mcp_hooks"):
        assert integration.instrument() is False
        assert integration.instrument() is False
    lines = [r.getMessage() for r in caplog.records if "steps aside" in r.getMessage()]
    assert lines == ["mcp_hooks: integration 'fastmcp' steps aside: fastmcp is not installed"]
    assert vars(owner)["call_tool_mcp"] is original
    assert not _mcp1_sse.installed()
    assert not _mcp1_stdio.installed()


@pytest.mark.parametrize("version", ["2.14.7", "5.0.0"])
def test_steps_aside_outside_the_supported_versions(
    no_shim: None, monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    integration = mcp_hooks_fastmcp.mcp_hooks_integration
    monkeypatch.setattr(integration, "framework_version", lambda: version)
    assert integration.instrument() is False
    assert integration.why_not is not None and version in integration.why_not
    assert vars(_owner())["call_tool_mcp"].__class__.__name__ == "function"


def test_hooks_leave_other_frameworks_alone() -> None:
    call = mcp_hooks.ToolCall(server="s", tool="t", owner=object(), framework="fastmcp")
    assert mcp_hooks_fastmcp.reconnect(call) is None
    assert mcp_hooks_fastmcp.should_reconnect(call, RuntimeError("Client is not connected")) is None
    assert mcp_hooks_fastmcp.is_replay_safe(call, RuntimeError("Client is not connected")) is None


def test_instrumenting_before_fastmcp_is_imported_wraps_it_on_import() -> None:
    code = textwrap.dedent(
        """
        import sys
        import mcp_hooks
        assert "fastmcp" not in sys.modules
        assert mcp_hooks.instrument("fastmcp") == {"fastmcp": True}
        assert "fastmcp" not in sys.modules  # instrument() never imports the framework itself
        from fastmcp.client.client import Client
        from fastmcp.client.mixins.tools import ClientToolsMixin
        wrapper = vars(ClientToolsMixin)["call_tool_mcp"]
        assert type(wrapper).__name__ == "FunctionWrapper", type(wrapper)
        runner = vars(Client)["_session_runner"]
        assert type(runner).__name__ == "FunctionWrapper", type(runner)
        mcp_hooks.uninstrument("fastmcp")
        assert vars(ClientToolsMixin)["call_tool_mcp"] is wrapper.__wrapped__
        assert vars(Client)["_session_runner"] is runner.__wrapped__
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
