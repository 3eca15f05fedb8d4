"""Built-in plugin ``circuit-breaker``: when calls to a server that is down fail at once.

A server that could not be reached or rebuilt for the configured time (``connect(breaker_after=...)``, the
healing layer's rebuild deadline) gets its calls failed at once with an error naming it, instead of each
call waiting out its deadline; a single probe at a time closes the breaker once the server answers.
Answers last, so any plugin can veto it (``False``) or open it sooner (``True``).
"""

from __future__ import annotations

from ..calls import ToolCall
from ..hookspecs import hookimpl


@hookimpl(trylast=True)
def open_circuit(call: ToolCall, down_for: float, threshold: float | None) -> bool:
    return threshold is not None and down_for >= threshold
