"""Fixtures for the hermes-agent shim tests (see ``hermes_helpers``).

Measurements (latency, calls answered across a restart) are collected with the ``measure`` fixture and
printed at the end of the run; nothing asserts a speed.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hermes_helpers import HOME, MEASUREMENTS, Hermes, Observed, Recorder
from mcp_hooks_hermes import mcp_hooks_integration

import mcp_hooks


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if MEASUREMENTS:
        terminalreporter.section("hermes-agent: measured (not asserted)")
        for name, value in MEASUREMENTS:
            terminalreporter.write_line(f"{name}: {value}")


def pytest_sessionfinish(session: Any) -> None:
    if "mcp-hooks-hermes-home-" in HOME:
        shutil.rmtree(HOME, ignore_errors=True)


@pytest.fixture
def measure() -> Callable[[str, str], None]:
    def record(name: str, value: str) -> None:
        MEASUREMENTS.append((name, value))

    return record


@pytest.fixture
def shim() -> Iterator[Any]:
    """The shim on (the way a user turns it on: ``mcp_hooks.instrument("hermes")``), off afterwards."""
    assert mcp_hooks.instrument("hermes") == {"hermes": True}
    try:
        yield mcp_hooks_integration
    finally:
        mcp_hooks.uninstrument("hermes")


@pytest.fixture
def no_shim() -> None:
    """hermes as shipped."""
    mcp_hooks.uninstrument("hermes")
    assert not mcp_hooks_integration.enabled


@pytest.fixture
def observed() -> Iterator[Observed]:
    """A plugin registered for the test that records every observer hook."""
    seen = Observed()
    pm = mcp_hooks.plugin_manager()
    recorder = Recorder(seen)
    pm.register(recorder, name="hermes-test-recorder")
    try:
        yield seen
    finally:
        pm.unregister(recorder)


@pytest.fixture
def hermes() -> Iterator[Hermes]:
    client = Hermes()
    try:
        yield client
    finally:
        client.close()
