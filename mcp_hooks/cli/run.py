"""``mcp-hooks run -- COMMAND [ARGS...]``: run a program with the integrations on, without a code change."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence

from .._bootstrap import ENV_INTEGRATIONS
from .output import EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND, CliError

#: The directory whose ``sitecustomize`` turns the integrations on as the program's interpreter starts.
BOOTSTRAP_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "_bootstrap")
_INTEGRATION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
RUN_USAGE = "mcp-hooks run [--only NAME[,NAME]] -- COMMAND [ARGS...]"


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


def run_environment(only: Sequence[str] | None, environ: dict[str, str]) -> dict[str, str]:
    """The program's environment: the start-up hook first on ``PYTHONPATH`` (the rest kept as it was),
    and the integrations it is to turn on."""
    env = dict(environ)
    current = env.get("PYTHONPATH", "")
    kept = [entry for entry in current.split(os.pathsep) if os.path.abspath(entry) != BOOTSTRAP_DIR] if current else []
    env["PYTHONPATH"] = os.pathsep.join([BOOTSTRAP_DIR, *kept])
    if only is None:
        env.pop(ENV_INTEGRATIONS, None)
    else:
        env[ENV_INTEGRATIONS] = ",".join(only)
    return env


def cmd_run(args: argparse.Namespace) -> int:
    command = list(args.program)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise CliError(f"no command to run; usage: {RUN_USAGE}")
    env = run_environment(_only_names(args.only), dict(os.environ))
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
