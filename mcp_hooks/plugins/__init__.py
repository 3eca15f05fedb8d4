"""The built-in plugins, registered exactly like third-party ones (and blockable by name).

- ``session-expiry`` (:mod:`.session_expiry`): answers ``should_reconnect`` last, from :func:`~mcp_hooks.classify`.
- ``replay-safety`` (:mod:`.replay_safety`): answers ``is_replay_safe`` last, from where the request was
  lost and the tool's annotations.
- ``recovery-log`` (:mod:`.recovery_log`): one INFO line per rebuild and per give-up.
- ``retry-after`` (:mod:`.retry_after`): answers ``retry_refused`` last: when a request refused with
  429 or 503 is sent again (the server's ``Retry-After`` when it fits the request's deadline, else
  backoff; 3 retries).
- ``circuit-breaker`` (:mod:`.circuit_breaker`): answers ``open_circuit`` last: calls to a server down
  for the configured time fail at once.
"""

from __future__ import annotations

from types import ModuleType

from . import circuit_breaker, recovery_log, replay_safety, retry_after, session_expiry

#: name -> plugin object, in registration order.
BUILTIN_PLUGINS: dict[str, ModuleType] = {
    "session-expiry": session_expiry,
    "replay-safety": replay_safety,
    "recovery-log": recovery_log,
    "retry-after": retry_after,
    "circuit-breaker": circuit_breaker,
}
