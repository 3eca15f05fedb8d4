"""The start-up hook of ``mcp-hooks run``.

``mcp-hooks run`` puts this directory first on the program's ``PYTHONPATH``: its ``sitecustomize``
module is then run by Python as the interpreter starts (as ``opentelemetry-instrument`` does), turns the
integrations on, and runs the ``sitecustomize`` it shadows, if there is one. What it did is kept here.
"""

from __future__ import annotations

__all__ = ["ENV_HEALING_OPTIONS", "ENV_INTEGRATIONS", "enabled", "ran"]

#: The integrations ``mcp-hooks run --only`` asked for, comma-separated (absent: every installed one).
ENV_INTEGRATIONS = "MCP_HOOKS_RUN_INTEGRATIONS"
#: The healing layer's options ``mcp-hooks run`` was given (``--deadline`` ...), as a JSON object of
#: ``instrument("mcp", ...)`` keywords (absent: the defaults).
ENV_HEALING_OPTIONS = "MCP_HOOKS_RUN_HEALING_OPTIONS"

#: ``True`` once the start-up hook has run in this process.
ran = False
#: What the start-up hook turned on: integration name -> whether it is on.
enabled: dict[str, bool] = {}
