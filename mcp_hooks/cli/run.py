"""``mcp-hooks run -- COMMAND [ARGS...]``: run a program with the integrations on, without a code change."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

from .._bootstrap import ENV_HEALING_OPTIONS, ENV_INTEGRATIONS
from .output import EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND, CliError

#: The directory whose ``sitecustomize`` turns the integrations on as the program's interpreter starts.
BOOTSTRAP_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "_bootstrap")
_INTEGRATION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
RUN_USAGE = (
    "mcp-hooks run [--only NAME[,NAME]] [--deadline S] [--max-reconnects N] [--breaker-after S|never] "
    "[--replay-safe-tools NAME[,NAME]] -- COMMAND [ARGS...]"
)


def _only_names(values: Sequence[str] | None) -> list[str] | None:
    """The integrations ``--only`` names (``None``: every installed one)."""
    if values is None:
        return None
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    if not names:
        raise CliError("--only needs integration names, e.g. --only mcp")
    for name in names:
        if not _INTEGRATION_NAME.fullmatch(name):
            raise CliError(f"--only: {name!r} is not an integration name")
    return list(dict.fromkeys(names))


def _number(flag: str, value: str, kind: type[Any]) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise CliError(
            f"{flag}: {value!r} is not {'a whole number' if kind is int else 'a number of seconds'}"
        ) from None


def healing_options(args: argparse.Namespace) -> dict[str, Any]:
    """``instrument("mcp", ...)``'s options from ``--deadline`` and the rest, checked as ``instrument`` checks
    them (a bad one is a usage error naming it)."""
    from .. import checks

    options: dict[str, Any] = {}
    try:
        if args.deadline is not None:
            options["deadline"] = checks.deadline("", _number("--deadline", args.deadline, float), "--deadline")
        if args.max_reconnects is not None:
            value = _number("--max-reconnects", args.max_reconnects, int)
            options["max_reconnects"] = checks.max_reconnects("", value, "--max-reconnects")
        if args.breaker_after is not None:
            never = args.breaker_after.strip().lower() in ("never", "none", "off")
            value = None if never else _number("--breaker-after", args.breaker_after, float)
            options["breaker_after"] = checks.breaker_after("", value, "--breaker-after")
    except (TypeError, ValueError) as exc:
        raise CliError(str(exc).removeprefix(": ")) from None
    if args.replay_safe_tools is not None:
        options["replay_safe_tools"] = [n.strip() for v in args.replay_safe_tools for n in v.split(",") if n.strip()]
    return options


def run_environment(
    only: Sequence[str] | None, environ: dict[str, str], healing: dict[str, Any] | None = None
) -> dict[str, str]:
    """The program's environment: the start-up hook first on ``PYTHONPATH`` (the rest kept as it was),
    the integrations it is to turn on, and the healing layer's options."""
    env = dict(environ)
    current = env.get("PYTHONPATH", "")
    kept = [entry for entry in current.split(os.pathsep) if os.path.abspath(entry) != BOOTSTRAP_DIR] if current else []
    env["PYTHONPATH"] = os.pathsep.join([BOOTSTRAP_DIR, *kept])
    if only is None:
        env.pop(ENV_INTEGRATIONS, None)
    else:
        env[ENV_INTEGRATIONS] = ",".join(only)
    if healing:
        env[ENV_HEALING_OPTIONS] = json.dumps(healing)
    else:
        env.pop(ENV_HEALING_OPTIONS, None)
    return env


def cmd_run(args: argparse.Namespace) -> int:
    command = list(args.program)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise CliError(f"no command to run; usage: {RUN_USAGE}")
    only = _only_names(args.only)
    healing = healing_options(args)
    if healing and only is not None and "mcp" not in only:
        raise CliError(
            "--deadline, --max-reconnects, --breaker-after and --replay-safe-tools are the healing "
            "layer's: add mcp to --only"
        )
    env = run_environment(only, dict(os.environ), healing)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(command[0], command, env)  # replaces this process: returns only on failure
    except FileNotFoundError:
        print(f"mcp-hooks run: {command[0]}: command not found", file=sys.stderr)
        return EXIT_NOT_FOUND
    except OSError as exc:
        print(f"mcp-hooks run: {command[0]}: cannot run it: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_CANNOT_EXECUTE
