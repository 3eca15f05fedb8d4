"""Built-in plugin ``replay-safety``: may a call be sent again after its session was lost?

- Yes when the server refused the request before running it (404 / session not found or terminated,
  connection refused): the tool did not run.
- Otherwise (lost in flight: the tool may have run) only for tools annotated ``readOnlyHint=True`` or
  ``idempotentHint=True``, or named in ``MCP_HOOKS_REPLAY_SAFE_TOOLS`` (comma separated). Unset hints
  count as false, as the MCP spec says. Annotations are read in both SDK shapes (1.x camelCase
  attributes, 2.x snake_case) and from plain mappings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ..calls import ToolCall
from ..classify import Loss, classify
from ..hookspecs import hookimpl

ENV_ALLOW_LIST = "MCP_HOOKS_REPLAY_SAFE_TOOLS"

# snake_case first: mcp 2.x names; some libraries mark the camelCase aliases deprecated there.
_HINT_SPELLINGS = {
    "readOnlyHint": ("read_only_hint", "readOnlyHint"),
    "idempotentHint": ("idempotent_hint", "idempotentHint"),
    "destructiveHint": ("destructive_hint", "destructiveHint"),
    "openWorldHint": ("open_world_hint", "openWorldHint"),
}


def annotation_hint(annotations: Any, hint: str) -> bool | None:
    """The value of ``hint`` (camelCase name) in ``annotations`` of either SDK shape, ``None`` when unset."""
    if annotations is None:
        return None
    for spelling in _HINT_SPELLINGS.get(hint, (hint,)):
        if isinstance(annotations, Mapping):
            value = annotations.get(spelling)
        else:
            value = getattr(annotations, spelling, None)
        if value is not None:
            return bool(value)
    return None


def repeatable(annotations: Any) -> bool:
    """Whether annotations say a second run has no further effect (read-only or idempotent)."""
    return bool(annotation_hint(annotations, "readOnlyHint")) or bool(annotation_hint(annotations, "idempotentHint"))


def allow_listed() -> frozenset[str]:
    """Tool names that ``MCP_HOOKS_REPLAY_SAFE_TOOLS`` declares always safe to replay."""
    raw = os.environ.get(ENV_ALLOW_LIST, "")
    return frozenset(name.strip() for name in raw.split(",") if name.strip())


@hookimpl(trylast=True)
def is_replay_safe(call: ToolCall, error: BaseException) -> bool | None:
    """Safe when the request never ran, or when the tool is read-only, idempotent or allow-listed."""
    verdict = classify(error)
    if verdict.loss is Loss.INTERRUPTED:
        return False
    if verdict.loss is Loss.REJECTED:
        return True
    if call.tool is not None and call.tool in allow_listed():
        return True
    return repeatable(call.annotations)
