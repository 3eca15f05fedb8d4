"""``mcp-hooks plugins``: the registered plugins and the hooks each implements."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..hookspecs import DECISION_HOOKS, OBSERVER_HOOKS
from ..manager import plugin_manager
from .output import EXIT_OK


def cmd_plugins(args: argparse.Namespace) -> int:
    pm = plugin_manager()
    rows: list[dict[str, Any]] = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        origin = pm.origins.get(name)
        hooks = sorted(caller.name for caller in (pm.get_hookcallers(plugin) or []))
        source = "registered"
        if origin is not None:
            source = origin.source
            if origin.distribution:
                source += f" ({origin.distribution} {origin.version or ''})".rstrip()
        rows.append({"name": name, "source": source, "hooks": hooks, "value": getattr(origin, "value", None)})
    blocked = [{"name": name, "why": why} for name, why in sorted(pm.not_loaded.items())]
    if args.json:
        print(json.dumps({"plugins": rows, "not_loaded": blocked}, indent=2))
        return EXIT_OK
    print(f"{len(rows)} plugin(s) registered (hooks: {', '.join(DECISION_HOOKS + OBSERVER_HOOKS)})")
    for row in rows:
        print(f"  {row['name']}: {row['source']}")
        print(f"      hooks: {', '.join(row['hooks']) or '(none)'}")
    for item in blocked:
        print(f"  {item['name']}: not loaded: {item['why']}")
    return EXIT_OK
