"""pytest fixtures for the fault-injecting MCP server (loaded through the ``pytest11`` entry point).

A test then reads::

    async def test_survives_restart(mcp_fault_server):
        async with mcp_hooks.connect(mcp_fault_server.url) as session:
            await session.call_tool("incr", {})
            mcp_fault_server.restart()
            await session.call_tool("echo", {"text": "hi"})
        assert mcp_fault_server.executions("incr") == 1

Options for ``mcp_fault_server`` come from a marker or an indirect parameter::

    @pytest.mark.mcp_fault_server(json_response=True, stale_style="typescript")
    def test_something(mcp_fault_server): ...

Under mcp 2.x, clients in their default ``mode="auto"`` speak the session-less 2026-07-28 protocol
to the kit and have no session to lose; ``legacy_only=True`` (marker or factory) makes the server
refuse that protocol like a pre-2026 server, so they hold a session. For every fixture at once::

    # pytest.ini / [tool.pytest.ini_options]
    mcp_fault_legacy_only = true

``mcp_recovery_events`` records what the observer hooks heard during the test, from every session in the
process (``.reconnects``: one per rebuild; ``.rebuilt``, ``.recovered``, ``.giveups``, ``.errors``).

When a test fails, the tail of each of its servers' logs is added to the failure report.

This module is imported by every pytest run where mcp-hooks is installed, so it imports nothing
heavy: the controller (stdlib only) is imported when a fixture is first used.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from mcp_hooks.testing.controller import FaultServer
    from mcp_hooks.testing.events import RecoveryEvents

__all__ = [
    "mcp_fault_server",
    "mcp_fault_server_factory",
    "mcp_recovery_events",
    "mcp_shared_fault_server",
    "mcp_stdio_fault_server",
]

_SERVERS = pytest.StashKey[list["FaultServer"]]()
_LOG_TAIL_CHARS = 3000


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "mcp_fault_legacy_only",
        type="bool",
        default=False,
        help="mcp-hooks fault servers refuse the session-less 2026-07-28 protocol (legacy_only=True) by default",
    )


def _defaults(config: pytest.Config) -> dict[str, Any]:
    """FaultServer keyword arguments set for every fixture by the ini file."""
    return {"legacy_only": True} if config.getini("mcp_fault_legacy_only") else {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "mcp_fault_server(**options): FaultServer keyword arguments for the mcp_fault_server fixture",
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if report.failed and report.when in ("setup", "call"):
        for server in item.stash.get(_SERVERS, []):
            tail = server.files.tail_log(_LOG_TAIL_CHARS)
            if tail:
                report.sections.append((f"mcp fault server log ({server.state_dir})", tail))
    return report


@pytest.fixture
def mcp_fault_server_factory(request: pytest.FixtureRequest) -> Iterator[Callable[..., FaultServer]]:
    """A callable taking ``FaultServer`` keyword arguments and returning a started server.

    Every server it made is stopped (and its temporary state directory removed) at teardown.
    """
    from mcp_hooks.testing.controller import FaultServer

    servers = request.node.stash.setdefault(_SERVERS, [])

    defaults = _defaults(request.config)

    def make(**kwargs: Any) -> FaultServer:
        server = FaultServer(**{**defaults, **kwargs})
        servers.append(server)
        if server.transport == "http":
            server.start()
        return server

    try:
        yield make
    finally:
        errors: list[Exception] = []
        for server in reversed(servers):
            try:
                server.kill()  # nothing to wait for: SIGKILL is as good as a graceful stop here
                server.close()
            except Exception as exc:  # close the others, then report
                errors.append(exc)
        servers.clear()
        if errors:
            raise errors[0]


def _options(request: pytest.FixtureRequest) -> dict[str, Any]:
    options: dict[str, Any] = {}
    marker = request.node.get_closest_marker("mcp_fault_server")
    if marker is not None:
        options.update(marker.kwargs)
    param = getattr(request, "param", None)
    if isinstance(param, dict):
        options.update(param)
    return options


@pytest.fixture
def mcp_fault_server(
    request: pytest.FixtureRequest, mcp_fault_server_factory: Callable[..., FaultServer]
) -> FaultServer:
    """A started streamable-HTTP fault server (``.url``), stopped after the test."""
    return mcp_fault_server_factory(**_options(request))


@pytest.fixture
def mcp_stdio_fault_server(mcp_fault_server_factory: Callable[..., FaultServer]) -> FaultServer:
    """A stdio fault server: spawn it with ``.stdio_server_parameters()``; its state dir is ready."""
    return mcp_fault_server_factory(transport="stdio")


@pytest.fixture(scope="module")
def _mcp_fault_server_module(pytestconfig: pytest.Config) -> Iterator[FaultServer]:
    from mcp_hooks.testing.controller import FaultServer

    with FaultServer(**_defaults(pytestconfig)) as server:
        yield server


@pytest.fixture
def mcp_shared_fault_server(_mcp_fault_server_module: FaultServer) -> FaultServer:
    """One streamable-HTTP fault server for the whole test module (starting one costs about a second),
    handed to each test running and disarmed. Totals carry over between tests: count with
    ``srv.executions_from_now()`` and use counter keys of the test's own."""
    server = _mcp_fault_server_module
    if not server.running:
        server.start()
    server.clear_controls()
    return server


@pytest.fixture
def mcp_recovery_events() -> Iterator[RecoveryEvents]:
    """What the observer hooks heard during the test (see :class:`~mcp_hooks.testing.events.RecoveryEvents`),
    registered on the process-wide plugin manager for the test only."""
    import mcp_hooks
    from mcp_hooks.testing.events import RecoveryEvents

    recorder = RecoveryEvents()
    pm = mcp_hooks.plugin_manager()
    name = pm.register(recorder, name=f"mcp-recovery-events-{id(recorder)}")
    try:
        yield recorder
    finally:
        pm.unregister(name=name)
