"""What the observer hooks heard during a test: the ``mcp_recovery_events`` fixture's recorder.

Registered on the process-wide plugin manager, it hears every recovery in the process, whoever leads it
(``connect()``, the healing layer beneath an SDK session, a framework integration). A test then asserts
how many rebuilds a fault cost, and what was recovered or given up::

    async def test_one_rebuild(mcp_fault_server, mcp_recovery_events):
        ...
        assert len(mcp_recovery_events.reconnects) == 1
        assert not mcp_recovery_events.giveups
"""

from __future__ import annotations

import dataclasses

from mcp_hooks import ToolCall, hookimpl

__all__ = ["RecoveryEvents"]


@dataclasses.dataclass
class RecoveryEvents:
    """Each observer hook's calls, in order (``on_reconnect`` fires once per rebuild)."""

    #: ``on_reconnect``: the call whose failure led the rebuild (``tool`` is ``None``: healed on its own)
    reconnects: list[ToolCall] = dataclasses.field(default_factory=list)
    #: ``on_rebuilt``: ``(call, error or None, seconds)``, one per rebuild, when it ended
    rebuilt: list[tuple[ToolCall, BaseException | None, float]] = dataclasses.field(default_factory=list)
    #: ``on_recovered``: the calls answered after a rebuild, and each rebuild begun on its own that succeeded
    #: (``tool`` is ``None``)
    recovered: list[ToolCall] = dataclasses.field(default_factory=list)
    #: ``on_giveup``: ``(call, error)``, the calls recovery gave up on, and each rebuild begun on its own that
    #: was given up (``tool`` is ``None``)
    giveups: list[tuple[ToolCall, BaseException]] = dataclasses.field(default_factory=list)
    #: ``on_tool_error``: ``(call, error)``, every failure the hooks were asked about
    errors: list[tuple[ToolCall, BaseException]] = dataclasses.field(default_factory=list)

    @hookimpl
    def on_reconnect(self, call: ToolCall, error: BaseException) -> None:
        self.reconnects.append(call)

    @hookimpl
    def on_rebuilt(self, call: ToolCall, error: BaseException | None, seconds: float) -> None:
        self.rebuilt.append((call, error, seconds))

    @hookimpl
    def on_recovered(self, call: ToolCall) -> None:
        self.recovered.append(call)

    @hookimpl
    def on_giveup(self, call: ToolCall, error: BaseException) -> None:
        self.giveups.append((call, error))

    @hookimpl
    def on_tool_error(self, call: ToolCall, error: BaseException) -> None:
        self.errors.append((call, error))
