"""Healing beneath the SDK session: ``instrument("mcp")``.

- :mod:`.relay`: the relay between an SDK session and its transport, which rebuilds the transport
  beneath the session (the owner task, what the session set up, replay decided by the hooks);
- :mod:`.watch`: what the HTTP layer sees of a session (404 to a session-bearing request, a broken
  answer stream, the standing stream ending);
- :mod:`.messages`: JSON-RPC messages as the installed SDK major spells them;
- :mod:`.era`: an mcp 2.x session on the session-less protocol negotiates again, in place, when a request
  is refused for its protocol version (the era lives in the session object, above the relay);
- :mod:`.sdk_patch`: the built-in integration ``"mcp"`` that puts the relay beneath every SDK transport.
"""

from __future__ import annotations

from .relay import HEAL_DEADLINE, Relay, healed_streams
from .sdk_patch import SdkIntegration, bypass

__all__ = ["HEAL_DEADLINE", "Relay", "SdkIntegration", "bypass", "healed_streams"]
