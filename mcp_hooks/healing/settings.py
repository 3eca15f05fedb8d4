"""The healing layer's options, ``instrument("mcp", deadline=..., max_reconnects=..., breaker_after=...,
replay_safe_tools=...)``: the names and checks of ``connect()``'s own. Each relay reads them once, when
its session opens (sessions already open keep theirs); ``uninstrument("mcp")`` puts the defaults back."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from .. import checks

__all__ = ["NAMES", "HealSettings", "check", "configure", "current", "reset"]

#: The options ``instrument("mcp", ...)`` takes.
NAMES = ("deadline", "max_reconnects", "breaker_after", "replay_safe_tools")
_WHERE = "mcp_hooks.instrument('mcp')"


@dataclasses.dataclass(frozen=True)
class HealSettings:
    """What a relay is bounded by; ``None`` is the relay's default (:data:`~.relay.HEAL_DEADLINE`,
    :data:`~.relay.MAX_RESENDS`, a breaker threshold equal to the deadline)."""

    #: seconds requests wait for a rebuild while the server cannot be reached, before they are answered
    deadline: float | None = None
    #: how often one request may be sent again after losses (each rebuild that loses it again counts)
    max_reconnects: int | None = None
    #: seconds the server must have been unreachable before requests fail at once (the ``open_circuit``
    #: hook's ``threshold``); ``None`` with :attr:`breaker` on: the deadline
    breaker_after: float | None = None
    #: ``False``: ``breaker_after=None`` was given, the breaker is never asked to open
    breaker: bool = True
    #: tools always safe to send again after a loss in flight, whatever the hooks say
    replay_safe_tools: frozenset[str] = frozenset()
    #: ``False``: a session lost while no request was out is rebuilt only once a request needs it (not in
    #: the background at once); ``connect(heal=False)``'s, not an ``instrument("mcp")`` option
    background: bool = True


_current = [HealSettings()]


def current() -> HealSettings:
    return _current[0]


def configure(options: Mapping[str, Any]) -> None:
    """Check ``options`` (a bad one raises naming it, and nothing changes) and set them, over the ones set
    before; the options not given keep their value."""
    _current[0] = dataclasses.replace(_current[0], **check(options))


def check(options: Mapping[str, Any], where: str = _WHERE) -> dict[str, Any]:
    """The :class:`HealSettings` fields ``options`` set; a bad option raises naming it."""
    unknown = sorted(set(options) - set(NAMES))
    if unknown:
        raise TypeError(f"{where}: unknown option(s) {', '.join(map(repr, unknown))}; known: {', '.join(NAMES)}")
    changes: dict[str, Any] = {}
    if "deadline" in options:
        changes["deadline"] = checks.deadline(where, options["deadline"])
    if "max_reconnects" in options:
        changes["max_reconnects"] = checks.max_reconnects(where, options["max_reconnects"])
    if "replay_safe_tools" in options:
        changes["replay_safe_tools"] = checks.tool_names(where, options["replay_safe_tools"])
    if "breaker_after" in options:
        after = checks.breaker_after(where, options["breaker_after"])
        changes["breaker_after"] = after
        changes["breaker"] = after is not None
    return changes


def reset() -> None:
    _current[0] = HealSettings()
