"""Healing beneath the SDK session: ``instrument("mcp")``.

- :mod:`.relay`: the relay between an SDK session and its transport, which rebuilds the transport
  beneath the session (the owner task, what the session set up, replay decided by the hooks);
  :mod:`.link` what it tracks (one generation of the transport, each request not answered yet);
  :mod:`.breaker` its circuit breaker; :mod:`.settings` its options (``instrument("mcp", deadline=...)``);
  :mod:`.streams` what a patched transport yields (the healed streams);
- :mod:`.watch`: what the HTTP layer sees of a session (404 to a session-bearing request, a broken
  answer stream, the standing stream ending);
- :mod:`.messages`: JSON-RPC messages as the installed SDK major spells them;
- :mod:`.sdk_session`: what lives in the session object, above the relay: a request its caller abandoned is
  forgotten (mcp 1.x), and a session-less session negotiates its era again when refused for it (mcp 2.x);
- :mod:`.sdk_patch`: the built-in integration ``"mcp"`` that puts the relay beneath every SDK transport.
- :mod:`.settle`: for the framework shims that keep their framework's own session: a request the SDK would
  wait for forever is answered in place with an error (around the SDK transport's handler, on a closing
  mcp 1.x session, or in the HTTP transport beneath the SDK).
"""

from __future__ import annotations

from .relay import HEAL_DEADLINE, Relay
from .sdk_patch import SdkIntegration, bypass
from .streams import healed_streams

__all__ = ["HEAL_DEADLINE", "Relay", "SdkIntegration", "bypass", "healed_streams"]
