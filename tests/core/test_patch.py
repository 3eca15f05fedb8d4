"""The patch kit (``mcp_hooks.Patch``) and the ``patches`` table of an ``Integration``, on real modules
written to a temporary directory and imported for the test."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import wrapt

import mcp_hooks
from mcp_hooks import Integration, Patch

pytestmark = pytest.mark.timeout(30)

SOURCE = """
def greet(name):
    return f"hello {name}"

class Base:
    def run(self, x):
        return x * 2

class Child(Base):
    async def fetch(self, x):
        return x + 1
"""


@pytest.fixture
def module_name(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """The name of a fresh module holding SOURCE, importable but not imported yet."""
    name = f"patch_target_{request.node.name.replace('[', '_').replace(']', '_').replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(SOURCE))
    sys.path.insert(0, str(tmp_path))
    try:
        yield name
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)


def shouting(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    return wrapped(*args, **kwargs).upper()


def test_a_function_is_wrapped_at_once_and_put_back_exactly(module_name: str) -> None:
    module = importlib.import_module(module_name)
    original = module.greet
    patch = Patch(module_name, "greet", shouting, owner="test")
    patch.add()
    patch.add()  # twice: wrapped once
    assert module.greet("ann") == "HELLO ANN"
    assert isinstance(module.greet, wrapt.FunctionWrapper)
    assert module.greet.__wrapped__ is original
    assert patch.applied and patch.original is original
    patch.remove()
    patch.remove()
    assert module.greet is original
    assert not patch.applied


def test_an_inherited_method_is_removed_again_not_copied_onto_the_class(module_name: str) -> None:
    module = importlib.import_module(module_name)
    patch = Patch(module_name, "Child.run", lambda wrapped, instance, args, kwargs: wrapped(*args) + 100)
    patch.add()
    assert "run" in vars(module.Child)
    assert module.Child().run(1) == 102
    assert module.Base().run(1) == 2  # the base class is not touched
    patch.remove()
    assert "run" not in vars(module.Child)
    assert module.Child().run(1) == 2


def test_an_async_method_stays_a_coroutine_function(module_name: str) -> None:
    module = importlib.import_module(module_name)
    seen: list[Any] = []

    def noting(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        seen.append(instance)
        return wrapped(*args, **kwargs)

    patch = Patch(module_name, "Child.fetch", noting)
    patch.add()
    try:
        child = module.Child()
        assert inspect.iscoroutinefunction(child.fetch)
        assert asyncio.run(child.fetch(1)) == 2
        assert seen == [child]
    finally:
        patch.remove()


def test_a_module_not_imported_yet_is_patched_when_it_is(module_name: str) -> None:
    assert module_name not in sys.modules
    patch = Patch(module_name, "greet", shouting)
    patch.add()
    assert not patch.applied
    module = importlib.import_module(module_name)
    assert patch.applied
    assert module.greet("bo") == "HELLO BO"
    patch.remove()
    assert module.greet("bo") == "hello bo"


def test_a_patch_removed_before_its_module_is_imported_does_nothing_then(module_name: str) -> None:
    patch = Patch(module_name, "greet", shouting)
    patch.add()
    patch.remove()
    module = importlib.import_module(module_name)  # the post-import hook runs, and must not patch
    assert not isinstance(module.greet, wrapt.FunctionWrapper)
    assert module.greet("cy") == "hello cy"


def test_a_wrapper_added_after_ours_is_kept_and_ours_goes_quiet(module_name: str) -> None:
    module = importlib.import_module(module_name)
    calls: list[str] = []

    def counting(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        calls.append("ours")
        return wrapped(*args, **kwargs)

    patch = Patch(module_name, "greet", counting)
    patch.add()
    foreign = wrapt.FunctionWrapper(module.greet, lambda wrapped, instance, args, kwargs: "[" + wrapped(*args) + "]")
    module.greet = foreign
    patch.remove()
    assert module.greet is foreign  # never dropped
    assert module.greet("di") == "[hello di]"
    assert calls == []  # ours, beneath it, passes the call straight through
    patch.add()  # active again, not wrapped a second time
    assert module.greet("di") == "[hello di]"
    assert calls == ["ours"]
    patch.remove()


def test_a_missing_target_is_an_error_naming_it_when_required(module_name: str) -> None:
    importlib.import_module(module_name)
    with pytest.raises(RuntimeError, match=rf"{module_name}:Child.gone not found"):
        Patch(module_name, "Child.gone", shouting, owner="mcp_hooks.test").add()
    optional = Patch(module_name, "Child.gone", shouting, required=False)
    optional.add()
    assert not optional.applied


@pytest.mark.parametrize(
    ("module", "qualname", "wrapper", "error"),
    [
        ("", "greet", shouting, ValueError),
        ("m", "not a name", shouting, ValueError),
        ("m", "greet", "not callable", TypeError),
    ],
)
def test_bad_arguments_fail_at_once(module: str, qualname: str, wrapper: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="Patch: "):
        Patch(module, qualname, wrapper)


class _Framework(Integration):
    name = "patch-kit-test"
    distribution = "pytest"  # installed: the version check passes

    def __init__(self, patches: tuple[Patch, ...]) -> None:
        super().__init__()
        self.patches = patches


def test_an_integration_applies_its_table_in_order_and_removes_it_on_uninstrument(module_name: str) -> None:
    module = importlib.import_module(module_name)
    original_greet, original_run = module.greet, vars(module.Child).get("run")
    shim = _Framework((Patch(module_name, "greet", shouting), Patch(module_name, "Child.run", shouting)))
    assert shim.instrument()
    assert module.greet("ed") == "HELLO ED"
    shim.uninstrument()
    assert module.greet is original_greet
    assert vars(module.Child).get("run") is original_run


def test_an_integration_whose_required_target_is_missing_turns_nothing_on(module_name: str) -> None:
    module = importlib.import_module(module_name)
    original = module.greet
    shim = _Framework((Patch(module_name, "greet", shouting), Patch(module_name, "Missing.thing", shouting)))
    with pytest.raises(RuntimeError, match=r"Missing\.thing not found"):
        shim.instrument()
    assert module.greet is original  # what was added before the failure is put back
    assert not shim.enabled


def test_patch_is_a_public_name() -> None:
    assert mcp_hooks.Patch is Patch
    assert "Patch" in mcp_hooks.__all__
