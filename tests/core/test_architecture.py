"""ARCHITECTURE.md's arrows that must never exist, checked by reading every import of the package
(module level and inside functions)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "mcp_hooks"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, absolute: ``from .x import y`` counts as ``mcp_hooks.x`` and
    ``mcp_hooks.x.y``."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


MODULES = {_module_name(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def _ours(imports: set[str]) -> set[str]:
    return {i for i in imports if i == "mcp_hooks" or i.startswith("mcp_hooks.")}


def _touches(imports: set[str], target: str) -> bool:
    return any(i == target or i.startswith(target + ".") for i in imports)


def _in_cli(module: str) -> bool:
    """A module of the command line package (``mcp_hooks.cli`` and its submodules)."""
    return module == "mcp_hooks.cli" or module.startswith("mcp_hooks.cli.")


def test_the_map_sees_every_part() -> None:
    for expected in ("mcp_hooks.classify", "mcp_hooks.hookspecs", "mcp_hooks.healing.relay", "mcp_hooks.engine"):
        assert expected in MODULES


def test_the_classifier_needs_no_actor() -> None:
    assert _ours(MODULES["mcp_hooks.classify"]) == set()


@pytest.mark.parametrize("leaf", ["mcp_hooks.telemetry", "mcp_hooks.redact", "mcp_hooks.sdk"])
def test_observing_depends_on_nothing(leaf: str) -> None:
    assert _ours(MODULES[leaf]) == set()


def test_the_hook_contract_depends_on_nothing() -> None:
    assert _ours(MODULES["mcp_hooks.calls"]) == set()
    assert {i for i in _ours(MODULES["mcp_hooks.hookspecs"]) if not i.startswith("mcp_hooks.calls")} == set()


@pytest.mark.parametrize(
    "deciding", [m for m in MODULES if m.startswith("mcp_hooks.plugins") or m == "mcp_hooks.manager"]
)
def test_hooks_decide_and_import_no_actor(deciding: str) -> None:
    for actor in ("mcp_hooks.engine", "mcp_hooks.healing", "mcp_hooks.connection"):
        assert not _touches(MODULES[deciding], actor), f"{deciding} imports {actor}"


@pytest.mark.parametrize("healing", [m for m in MODULES if m.startswith("mcp_hooks.healing")])
def test_the_healing_layer_knows_no_caller_above_it(healing: str) -> None:
    for above in (
        "mcp_hooks.engine",
        "mcp_hooks.connection",
        "mcp_hooks.attach",
        "mcp_hooks.options",
        "mcp_hooks.cli",
    ):
        assert not _touches(MODULES[healing], above), f"{healing} imports {above}"


def test_the_option_checks_depend_on_nothing() -> None:
    """Every entry point checks its options with them, the healing layer included."""
    assert _ours(MODULES["mcp_hooks.checks"]) == set()


@pytest.mark.parametrize("core", [m for m in MODULES if not m.startswith("mcp_hooks.testing") and not _in_cli(m)])
def test_the_core_knows_no_framework_and_no_test_tool(core: str) -> None:
    imports = MODULES[core]
    assert not _touches(imports, "mcp_hooks.testing"), core
    assert not _touches(imports, "pytest"), core
    assert not any(i.startswith("mcp_hooks_") for i in imports), core


@pytest.mark.parametrize("module", sorted(MODULES))
def test_only_the_sdk_module_reads_the_sdk_version(module: str) -> None:
    if module == "mcp_hooks.sdk":
        return
    path = PACKAGE.parent.joinpath(*module.split(".")).with_suffix(".py")
    if not path.exists():
        path = PACKAGE.parent.joinpath(*module.split("."), "__init__.py")
    source = path.read_text(encoding="utf-8")
    assert 'version("mcp")' not in source, f"{module} reads the SDK version: use mcp_hooks.sdk.MCP_MAJOR"


def _imported_at_load(path: Path) -> set[str]:
    """The modules of the package ``path`` imports when it is loaded: module level, ``if``/``try`` blocks
    included, ``if TYPE_CHECKING:`` and imports inside functions left out (they run later)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    body = list(ast.parse(path.read_text(encoding="utf-8")).body)
    while body:
        node = body.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
            body += [*node.body, *node.orelse]
        elif isinstance(node, ast.Try):
            body += [*node.body, *node.orelse, *node.finalbody, *(s for h in node.handlers for s in h.body)]
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")
                module = ".".join([*base[: len(base) - (node.level - 1)], *([module] if module else [])])
            found.update(f"{module}.{a.name}" if f"{module}.{a.name}" in MODULES else module for a in node.names)
    # importing a.b.c loads the packages a and a.b first (not the importer's own packages: already loading)
    found |= {".".join(i.split(".")[:k]) for i in found for k in range(1, i.count(".") + 1)}
    return {i for i in found if i in MODULES and i != name and not name.startswith(i + ".")}


def test_no_import_cycles() -> None:
    """No module of the package needs, while it loads, a module that needs it back: a cycle works or
    breaks depending on which module a user imports first."""
    loads = {_module_name(p): _imported_at_load(p) for p in sorted(PACKAGE.rglob("*.py"))}
    state: dict[str, int] = {}  # 1: being visited, 2: done

    def visit(module: str, path: tuple[str, ...]) -> None:
        state[module] = 1
        for needed in sorted(loads[module]):
            if state.get(needed) == 1:
                cycle = [*path[path.index(needed) :], module, needed] if needed in path else [module, needed]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if needed not in state:
                visit(needed, (*path, module))
        state[module] = 2

    assert len(loads) > 40 and any(loads.values())
    for module in sorted(loads):
        if module not in state:
            visit(module, ())


#: Run in a fresh interpreter where the MCP SDK and what it stands on cannot be imported.
_WITHOUT_THE_SDK = """
import importlib.abc, sys
class NoSdk(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {"mcp", "anyio", "httpx", "httpx2", "pydantic"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, NoSdk())
import mcp_hooks
print(mcp_hooks.classify(RuntimeError("Session terminated")).loss.name)
missing = [name for name in mcp_hooks.__all__ if not hasattr(mcp_hooks, name)]
print(f"missing: {missing}")
from mcp_hooks import ResilientSession, connect
for use in (lambda: connect("http://127.0.0.1:9/mcp"), lambda: ResilientSession()):
    try:
        use()
    except ImportError as exc:
        print(exc)
"""


def test_the_package_imports_without_the_sdk_and_says_what_needs_it() -> None:
    """The hooks, the classifier, the engine and attachment need no SDK; every public name still imports,
    and using ``connect`` or ``ResilientSession`` there raises an ``ImportError`` naming the SDK."""
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_THE_SDK], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    loss, missing, *errors = done.stdout.splitlines()
    assert loss == "REJECTED" and missing == "missing: []"
    for name, error in zip(("connect", "ResilientSession"), errors, strict=True):
        assert error.startswith(f"mcp_hooks.{name} needs the MCP SDK (pip install mcp): No module named"), error


def test_connect_is_loaded_on_first_use() -> None:
    import mcp_hooks
    from mcp_hooks.connection import ResilientSession, connect

    assert mcp_hooks.connect is connect
    assert mcp_hooks.ResilientSession is ResilientSession
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        mcp_hooks.nope  # noqa: B018 - the attribute look-up is what is tested
