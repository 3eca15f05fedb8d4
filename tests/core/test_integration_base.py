"""The Integration base class every framework shim builds on: version gate, alternative distributions,
idempotent instrument, exact uninstrument."""

from __future__ import annotations

import logging
import sys
import types
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from mcp_hooks import Integration


@pytest.fixture
def framework_module() -> Iterator[types.ModuleType]:
    module = types.ModuleType("fake_framework_for_base_test")

    class Server:
        def call_tool(self, name: str, arguments: dict[str, Any] | None = None) -> str:
            return f"ran {name}"

    module.Server = Server  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    yield module
    del sys.modules[module.__name__]


class Shim(Integration):
    name = "shim-under-test"
    distribution = "no-such-distribution-xyz"
    distributions = ("no-such-distribution-xyz", "pluggy")  # pluggy is installed: found second
    min_version = "1"

    def targets(self) -> Iterable[tuple[str, dict[str, Any]]]:
        return [("fake_framework_for_base_test:Server.call_tool", {"framework": "fake"})]


def test_alternative_distributions_are_tried_in_order() -> None:
    import importlib.metadata

    assert Shim().framework_version() == importlib.metadata.version("pluggy")
    assert Shim().check() is None


def test_missing_or_out_of_range_framework_steps_aside_with_one_line(
    caplog: pytest.LogCaptureFixture, framework_module: types.ModuleType
) -> None:
    class Missing(Shim):
        distributions = ("no-such-distribution-xyz",)

    class TooOld(Shim):
        min_version = "999"

    caplog.set_level(logging.INFO, logger="mcp_hooks")
    missing, too_old = Missing(), TooOld()
    assert missing.instrument() is False
    assert missing.instrument() is False  # said once, not twice
    assert too_old.instrument() is False
    lines = [r.getMessage() for r in caplog.records if "steps aside" in r.getMessage()]
    assert len(lines) == 2
    assert "no-such-distribution-xyz is not installed" in lines[0]
    assert "outside the supported range" in lines[1]
    assert "call_tool" in vars(framework_module.Server)
    assert not hasattr(vars(framework_module.Server)["call_tool"], "__wrapped__")


def test_instrument_twice_wraps_once_and_uninstrument_restores(framework_module: types.ModuleType) -> None:
    original = vars(framework_module.Server)["call_tool"]
    shim = Shim()
    assert shim.instrument() is True
    wrapped = vars(framework_module.Server)["call_tool"]
    assert wrapped is not original
    assert shim.instrument() is True
    assert vars(framework_module.Server)["call_tool"] is wrapped  # not wrapped again
    assert framework_module.Server().call_tool("echo") == "ran echo"
    shim.uninstrument()
    shim.uninstrument()
    assert vars(framework_module.Server)["call_tool"] is original


class Configurable(Shim):
    name = "configurable-under-test"

    def __init__(self) -> None:
        super().__init__()
        self.options: dict[str, Any] = {}

    def configure(self, **options: Any) -> None:
        unknown = sorted(set(options) - {"deadline"})
        if unknown:
            raise TypeError(f"configurable: unknown option {unknown[0]!r}")
        self.options.update(options)


def test_instrument_sets_the_options_first(framework_module: types.ModuleType) -> None:
    shim = Configurable()
    try:
        assert shim.instrument(deadline=5) is True
        assert shim.options == {"deadline": 5}
    finally:
        shim.uninstrument()


def test_an_unknown_option_fails_before_anything_is_on(framework_module: types.ModuleType) -> None:
    shim = Configurable()
    original = framework_module.Server.call_tool
    with pytest.raises(TypeError, match="'retries'"):
        shim.instrument(retries=3)
    assert not shim.enabled
    assert framework_module.Server.call_tool is original


def test_a_shim_without_options_names_the_one_it_was_given(framework_module: types.ModuleType) -> None:
    shim = Shim()
    with pytest.raises(TypeError, match=r"'shim-under-test' takes no options; got 'deadline'"):
        shim.instrument(deadline=5)
    assert not shim.enabled


def test_module_instrument_passes_options_to_the_named_integration_only(
    framework_module: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mcp_hooks
    from mcp_hooks import integration as integration_module

    shim = Configurable()
    monkeypatch.setattr(integration_module, "integrations", lambda: {"configurable-under-test": shim})
    try:
        assert mcp_hooks.instrument("configurable-under-test", deadline=7) == {"configurable-under-test": True}
        assert shim.options == {"deadline": 7}
    finally:
        shim.uninstrument()
    with pytest.raises(TypeError, match="need the name of the integration"):
        mcp_hooks.instrument(deadline=7)
