"""Text fit for a log, a span or a metric: nothing that can carry a credential leaves here. URLs lose
user-info, query and fragment, bearer tokens and ``key=value`` secrets are masked, long texts are cut."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_URL = re.compile(r"""\b([a-zA-Z][a-zA-Z0-9+.-]*://)([^\s/'"<>@]*@)?([^\s?#'"<>]*)([?#][^\s'"<>]*)?""")
_BEARER = re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{4,}")
_SECRET = re.compile(
    r"(?i)\b(authorization|api[_-]?key|access[_-]?token|password|secret|token)(\s*[=:]\s*)([^\s,;'\"&]+)"
)
MAX_TEXT = 300


def text(value: object) -> str:
    """``value`` as text fit for a span, a metric or a log: no credential, at most ``MAX_TEXT`` characters."""
    out = _URL.sub(lambda m: m.group(1) + m.group(3), str(value))
    out = _BEARER.sub(lambda m: m.group(1) + " <redacted>", out)
    out = _SECRET.sub(lambda m: m.group(1) + m.group(2) + "<redacted>", out)
    return out if len(out) <= MAX_TEXT else out[: MAX_TEXT - 3] + "..."


def address(server: str) -> tuple[str | None, int | None]:
    """``server.address`` and ``server.port`` of a server key (a URL or ``stdio:COMMAND``)."""
    if "://" not in server:
        return None, None
    try:
        parts = urlsplit(server)
        return parts.hostname, parts.port
    except ValueError:
        return None, None
