"""``mcp-hooks run -- COMMAND [ARGS...]``: the real command line in a subprocess, running a Python program
whose interpreter turns the integrations on at start-up (a ``sitecustomize`` first on its ``PYTHONPATH``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import mcp_hooks
from mcp_hooks._bootstrap import ENV_INTEGRATIONS
from mcp_hooks.cli import BOOTSTRAP_DIR, run_environment

TIMEOUT = 60

# What the program sees: the start-up hook's own record, and the integrations as the process has them.
SCRIPT = """\
import json, os, sys
import mcp_hooks
from mcp_hooks import _bootstrap
found = mcp_hooks.integrations()
print(json.dumps({
    "ran": _bootstrap.ran,
    "enabled": sorted(name for name, integration in found.items() if integration.enabled),
    "runnable": sorted(name for name, integration in found.items() if integration.check() is None),
    "user_sitecustomize": os.environ.get("TEST_USER_SITECUSTOMIZE"),
    "user_path_kept": "/tmp/added-by-user-sitecustomize" in sys.path,
    "argv": sys.argv[1:],
}))
sys.exit(int(os.environ.get("TEST_EXIT", "0")))
"""


def _env(**changes: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", ENV_INTEGRATIONS, "MCP_HOOKS_DISABLE")}
    env.update(changes)
    return env


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, module: bool = True
) -> subprocess.CompletedProcess[str]:
    """``python -m mcp_hooks run ARGS`` (or, ``module=False``, the same through ``-c``)."""
    how = ["-m", "mcp_hooks"] if module else ["-c", "from mcp_hooks.cli import main; raise SystemExit(main())"]
    return subprocess.run(
        [sys.executable, *how, "run", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
        env=env if env is not None else _env(),
        cwd=cwd,
    )


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "script.py"
    path.write_text(SCRIPT)
    return path


def _report(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    lines = done.stdout.strip().splitlines()
    assert lines, (done.stdout, done.stderr)
    report: dict[str, Any] = json.loads(lines[-1])
    return report


def test_run_turns_every_installed_integration_on(script: Path) -> None:
    done = run("--", sys.executable, str(script), "a", "--only", "b", env=_env(TEST_EXIT="3"))
    assert done.returncode == 3, done.stderr  # the program's own exit status: it replaced mcp-hooks
    report = _report(done)
    assert report["ran"] is True
    assert report["argv"] == ["a", "--only", "b"]  # everything after the command is the program's
    assert report["enabled"] == report["runnable"]
    assert report["enabled"], "no integration turned on"
    if "mcp" in report["runnable"]:  # built in: always there
        assert "mcp" in report["enabled"]
    assert "mcp-hooks run" not in done.stderr, done.stderr


def test_without_run_nothing_is_turned_on(script: Path) -> None:
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=TIMEOUT, env=_env())
    assert done.returncode == 0, done.stderr
    report = _report(done)
    assert report["ran"] is False
    assert report["enabled"] == []


def test_the_programs_own_sitecustomize_still_runs(script: Path, tmp_path: Path) -> None:
    own = tmp_path / "own"
    own.mkdir()
    (own / "sitecustomize.py").write_text(
        "import os, sys\n"
        "os.environ['TEST_USER_SITECUSTOMIZE'] = 'ran'\n"
        "sys.path.append('/tmp/added-by-user-sitecustomize')\n"
    )
    done = run("--", sys.executable, str(script), env=_env(PYTHONPATH=str(own)))
    assert done.returncode == 0, done.stderr
    report = _report(done)
    assert report["ran"] is True
    assert report["user_sitecustomize"] == "ran"
    assert report["user_path_kept"] is True  # what it changed in sys.path stays
    assert report["enabled"] == report["runnable"]


@pytest.mark.parametrize("only", ["no-such-integration", "mcp,no-such-integration"])
def test_only_with_an_unknown_name_warns_in_the_programs_log_and_the_program_runs(script: Path, only: str) -> None:
    done = run("--only", only, "--", sys.executable, str(script))
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "mcp-hooks run" in line]
    assert len(warnings) == 1, done.stderr
    assert "'no-such-integration'" in warnings[0]
    report = _report(done)
    assert report["ran"] is True
    asked = [name for name in only.split(",") if name in report["runnable"]]
    assert report["enabled"] == asked  # the known names only; never every integration


def test_only_turns_on_just_the_named_ones(script: Path) -> None:
    done = run("--only", "mcp", "--", sys.executable, str(script))
    assert done.returncode == 0, done.stderr
    report = _report(done)
    if "mcp" not in report["runnable"]:
        pytest.skip("the built-in 'mcp' integration is not available here")
    assert report["enabled"] == ["mcp"]
    assert "mcp-hooks run" not in done.stderr, done.stderr


def test_a_failing_start_up_hook_is_one_warning_and_the_program_runs(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    (broken / "mcp_hooks").mkdir(parents=True)
    (broken / "mcp_hooks" / "__init__.py").write_text("raise RuntimeError('broken on purpose')\n")
    program = tmp_path / "program.py"
    program.write_text("print('the program ran')\n")
    # The program's interpreter finds this broken mcp_hooks first (PYTHONPATH comes before the installed
    # one); mcp-hooks itself runs from the directory holding the real one (`-c`: the current directory
    # comes first on its path).
    real = Path(mcp_hooks.__file__).resolve().parent.parent
    done = run("--", sys.executable, str(program), env=_env(PYTHONPATH=str(broken)), cwd=real, module=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "the program ran"
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "mcp-hooks run" in lines[0] and "broken on purpose" in lines[0]


@pytest.mark.parametrize("args", [[], ["--"], ["--only", "mcp"], ["--only", ",", "--", "true"]])
def test_no_command_or_bad_input_is_a_usage_error(args: list[str]) -> None:
    done = run(*args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("mcp-hooks run: ")
    assert "Traceback" not in done.stderr


def test_a_command_not_found_exits_127() -> None:
    done = run("--", "mcp-hooks-test-no-such-command", "x")
    assert done.returncode == 127
    assert done.stderr.strip() == "mcp-hooks run: mcp-hooks-test-no-such-command: command not found"


HEALING_SCRIPT = """\
import dataclasses, json
import mcp_hooks
from mcp_hooks.healing import settings
found = mcp_hooks.integrations()
print(json.dumps({
    "enabled": found["mcp"].enabled,
    "settings": {k: sorted(v) if isinstance(v, frozenset) else v
                 for k, v in dataclasses.asdict(settings.current()).items()},
}))
"""


@pytest.mark.parametrize("only", [None, "mcp"])
def test_run_gives_the_healing_layer_its_options(tmp_path: Path, only: str | None) -> None:
    path = tmp_path / "healing.py"
    path.write_text(HEALING_SCRIPT)
    flags = ["--deadline", "30", "--max-reconnects", "1", "--breaker-after", "never", "--replay-safe-tools", "a,b"]
    flags += ["--replay-safe-tools", "c", *(["--only", only] if only else [])]
    done = run(*flags, "--", sys.executable, str(path))
    assert done.returncode == 0, done.stderr
    report = _report(done)
    assert report["enabled"] is True
    assert report["settings"] == {
        "deadline": 30.0,
        "max_reconnects": 1,
        "breaker_after": None,
        "breaker": False,
        "replay_safe_tools": ["a", "b", "c"],
        "background": True,  # connect(heal=False)'s, never an option of instrument("mcp")
    }
    # without the flags, the defaults
    done = run("--", sys.executable, str(path))
    assert done.returncode == 0, done.stderr
    assert _report(done)["settings"]["deadline"] is None and _report(done)["settings"]["breaker"] is True


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--deadline", "-3"], "--deadline"),
        (["--deadline", "soon"], "--deadline"),
        (["--max-reconnects", "1.5"], "--max-reconnects"),
        (["--max-reconnects", "-1"], "--max-reconnects"),
        (["--breaker-after", "0"], "--breaker-after"),
        (["--only", "fastmcp", "--deadline", "3"], "add mcp to --only"),
    ],
)
def test_a_bad_healing_option_is_a_usage_error_naming_it(args: list[str], named: str) -> None:
    done = run(*args, "--", sys.executable, "-c", "print('ran')")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == ""  # the program never ran
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mcp-hooks run: ") and named in lines[0], done.stderr


def test_the_environment_puts_the_hook_first_and_keeps_the_rest() -> None:
    sep = os.pathsep
    env = run_environment(None, {"PYTHONPATH": f"/a{sep}{BOOTSTRAP_DIR}{sep}/b", ENV_INTEGRATIONS: "x", "HOME": "/h"})
    assert env["PYTHONPATH"] == f"{BOOTSTRAP_DIR}{sep}/a{sep}/b"  # once, first; a nested run adds it once
    assert ENV_INTEGRATIONS not in env  # every integration
    assert env["HOME"] == "/h"
    assert run_environment(["mcp", "other"], {})[ENV_INTEGRATIONS] == "mcp,other"
    assert run_environment(None, {"PYTHONPATH": ""})["PYTHONPATH"] == BOOTSTRAP_DIR
    assert (Path(BOOTSTRAP_DIR) / "sitecustomize.py").is_file()
