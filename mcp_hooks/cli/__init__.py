"""The command line: ``mcp-hooks demo``, ``mcp-hooks plugins``, ``mcp-hooks probe URL``,
``mcp-hooks run -- COMMAND [ARGS...]``.

Bad input gets one clear line on stderr and a non-zero exit (2), never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .demo import cmd_demo
from .output import EXIT_USAGE, CliError, _error_text
from .plugins import cmd_plugins
from .probe import cmd_probe
from .run import BOOTSTRAP_DIR, RUN_USAGE, cmd_run, run_environment

__all__ = ["BOOTSTRAP_DIR", "CliError", "build_parser", "main", "run_environment"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mcp-hooks", description="Survive MCP session loss: see it, prove it.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="restart a real local MCP server under a live session and recover")
    demo.add_argument("--json", action="store_true", help="print the figures as JSON")
    demo.add_argument("--transport", choices=("http", "stdio"), default="http")
    demo.set_defaults(func=cmd_demo)
    plugins = sub.add_parser("plugins", help="list the registered plugins and the hooks each implements")
    plugins.add_argument("--json", action="store_true")
    plugins.set_defaults(func=cmd_plugins)
    probe = sub.add_parser("probe", help="how a server answers a lost session, and whether it is recognised")
    probe.add_argument("url")
    probe.add_argument("--header", "-H", action="append", help="'Name: value' (sent, never printed)")
    probe.add_argument("--timeout", type=float, default=10.0)
    probe.add_argument("--json", action="store_true")
    probe.set_defaults(func=cmd_probe)
    run = sub.add_parser(
        "run",
        help="run a program with every installed integration on, without a code change",
        usage=RUN_USAGE,
        description="Run COMMAND with the mcp-hooks integrations on in its Python interpreter (through a "
        "sitecustomize put first on its PYTHONPATH; one the program had runs too).",
    )
    run.add_argument(
        "--only", action="append", metavar="NAME[,NAME]", help="turn on just these integrations (default: all)"
    )
    run.add_argument("--deadline", metavar="S", help="seconds calls wait for a rebuild of a down server (15)")
    run.add_argument("--max-reconnects", metavar="N", help="times one call may be sent again after losses (3)")
    run.add_argument(
        "--breaker-after", metavar="S|never", help="seconds unreachable before calls fail at once (the deadline)"
    )
    run.add_argument(
        "--replay-safe-tools", action="append", metavar="NAME[,NAME]", help="tools replayed after a loss in flight"
    )
    run.add_argument("program", nargs=argparse.REMAINDER, metavar="COMMAND [ARGS...]")
    run.set_defaults(func=cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0) if isinstance(exit_.code, int) else EXIT_USAGE
    try:
        return int(args.func(args))
    except CliError as exc:
        print(f"mcp-hooks {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"mcp-hooks {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        print(f"mcp-hooks {args.command}: {_error_text(exc)}", file=sys.stderr)
        return EXIT_USAGE
