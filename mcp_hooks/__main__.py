"""``python -m mcp_hooks``: the same as the ``mcp-hooks`` command."""

from .cli import main

raise SystemExit(main())
