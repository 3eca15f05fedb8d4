"""What every hook receives (:class:`ToolCall`), what a refused replay raises (:class:`OutcomeUncertain`) and
what a silent tool call ends with (:class:`CallTimeout`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class ToolCall:
    """The context of one MCP call that failed, handed to every hook.

    Built only when a call fails; a call that succeeds builds none.

    :param server: a stable key of the connection: its URL, its command, or the framework's name.
    :param tool: the tool's name, or ``None`` for a request that is not a tool call.
    :param arguments: the tool's arguments, or ``None``.
    :param annotations: the tool's MCP annotations as known (an SDK ``ToolAnnotations`` of either major,
        or a mapping), or ``None`` when unknown.
    :param attempt: which attempt failed (or, in ``on_recovered``, succeeded), from 1.
    :param owner: the object that owns the session (a framework's server or client), or ``None``.
    :param framework: who made the call: ``"mcp"``, ``"openai-agents"``, ``"fastmcp"``, ...
    """

    server: str
    tool: str | None = None
    arguments: Mapping[str, Any] | None = None
    annotations: Any = None
    attempt: int = 1
    owner: Any = dataclasses.field(default=None, compare=False)
    framework: str = "mcp"

    def replace(self, **changes: Any) -> ToolCall:
        """A copy with some fields changed (the next attempt, annotations learnt, ...)."""
        return dataclasses.replace(self, **changes)


class OutcomeUncertain(Exception):
    """The session was lost after the request may have reached the server, and the tool is not known
    to be safe to run twice. The call was not replayed; the session was healed for the next call.

    ``__cause__`` is the original error. The message is written to be shown to a model: it says to
    check whether the action happened before trying it again.
    """

    def __init__(self, server: str, tool: str | None, reason: str = "") -> None:
        self.server = server
        self.tool = tool
        self.reason = reason
        what = f"tool {tool!r}" if tool else "the request"
        msg = (
            f"outcome uncertain: the connection to MCP server {server} was lost while {what} was in "
            "flight, so it may or may not have run. It was not sent again because it is not known to "
            "be safe to repeat: check whether the action took effect before trying it again."
        )
        if reason:
            msg += f" ({reason})"
        super().__init__(msg)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.server, self.tool, self.reason))


class CallTimeout(TimeoutError):
    """A tool call sent nothing back (no answer, no progress notification) for ``seconds``: it was given up.

    Not session loss: the session is kept and nothing is sent again (a tool that went silent once would
    again). ``outcome_uncertain`` is ``True`` unless the tool is known to be safe to run twice, and then
    the message tells a model to check whether the action took effect before trying it again.
    """

    def __init__(self, server: str, tool: str | None, seconds: float, outcome_uncertain: bool = True) -> None:
        self.server = server
        self.tool = tool
        self.seconds = seconds
        self.outcome_uncertain = outcome_uncertain
        what = f"tool {tool!r}" if tool else "the request"
        msg = (
            f"MCP server {server}: {what} sent no answer and no progress for {seconds:g} s and was given up; "
            "the server and the session are fine. "
        )
        if outcome_uncertain:
            msg += (
                "Outcome uncertain: it may still be running or have run; check whether the action took effect "
                "before trying it again."
            )
        else:
            msg += "It is safe to try again."
        super().__init__(msg)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.server, self.tool, self.seconds, self.outcome_uncertain))
