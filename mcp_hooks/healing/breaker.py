"""The relay's circuit breaker: open while a server cannot be rebuilt, so requests fail at once with a
message that says since when, and one probe at a time (in the background) finds the server back."""

from __future__ import annotations

import time

#: Circuit breaker: once the server has been unreachable (or failing to rebuild) for ``breaker_after`` (by
#: default the rebuild deadline, ``HEAL_DEADLINE``) and the ``open_circuit`` hook agrees, requests are
#: answered at once with an error until the next probe: one rebuild attempt, made in the background this
#: many seconds later (or by the first request then), doubled after each failed probe up to
#: ``BREAKER_PROBE_MAX``; a server that is back is found without a request paying for it.
#: Session loss alone never opens it: only a server that cannot be reached or rebuilt.
BREAKER_PROBE_INITIAL = 1.0
BREAKER_PROBE_MAX = 10.0


class _Breaker:
    """Open while a server cannot be rebuilt: what the fast failures say, and when the next probe is due."""

    def __init__(self, down_since: float) -> None:
        self.down_since = down_since  # wall-clock time the outage began
        self.interval = BREAKER_PROBE_INITIAL
        self.probe_at = time.monotonic() + self.interval
        self.probing = False

    def admit(self) -> bool:
        """Whether a request may wait for a rebuild: the probe is due (the first one due starts it) or on."""
        if self.probing:
            return True
        if time.monotonic() >= self.probe_at:
            self.probing = True
            return True
        return False

    def probe_failed(self) -> None:
        self.probing = False
        self.interval = min(BREAKER_PROBE_MAX, self.interval * 2)
        self.probe_at = time.monotonic() + self.interval

    def describe(self, server: str) -> str:
        since = time.strftime("%H:%M:%S", time.localtime(self.down_since))
        left = max(0.0, self.probe_at - time.monotonic())
        return (
            f"MCP server {server} unreachable since {since} ({time.time() - self.down_since:.0f} s); "
            f"next probe in {left:.1f} s"
        )
