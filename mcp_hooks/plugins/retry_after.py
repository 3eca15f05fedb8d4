"""Built-in plugin ``retry-after``: when a request the server refused with 429 or 503 is sent again.

A refused request never ran: sending it again cannot run anything twice. The server's ``Retry-After``
is honoured when it fits in the time the request has left (``remaining``; at most
:data:`RETRY_AFTER_MAX` seconds when that is unknown); a longer one is not waited out (the refusal goes
back to the caller at once, with the server's own status). Without the header the wait is jittered
exponential backoff, never past ``remaining``. At most :data:`MAX_RETRIES` retries per request.
"""

from __future__ import annotations

import random

from ..calls import ToolCall
from ..hookspecs import hookimpl

#: The longest ``Retry-After`` that is waited out when the request's own deadline is unknown (seconds).
RETRY_AFTER_MAX = 10.0
#: How many times one refused request is sent again.
MAX_RETRIES = 3
#: Backoff without ``Retry-After``: the first wait, doubled on each retry (jittered down to half).
BACKOFF_INITIAL = 0.5


@hookimpl(trylast=True)
def retry_refused(call: ToolCall, status: int, retry_after: float | None, remaining: float | None) -> float | bool:
    if call.attempt > MAX_RETRIES:
        return False
    if retry_after is not None:
        fits = retry_after <= RETRY_AFTER_MAX if remaining is None else retry_after < remaining
        return max(0.0, retry_after) if fits else False
    step = BACKOFF_INITIAL * 2 ** (call.attempt - 1)
    wait = random.uniform(step / 2, step)
    return wait if remaining is None or wait < remaining else False
