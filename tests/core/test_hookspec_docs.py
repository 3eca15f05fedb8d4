"""Every hook is documented: a docstring with an example in ``hookspecs.py``, and a line of README.md
that holds its exact signature, e.g. ``on_tool_error(call, error)`` (as datasette tests its hooks)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from mcp_hooks import hookspecs

README = Path(__file__).resolve().parents[2] / "README.md"


def _hookspecs() -> list[tuple[str, object]]:
    marker = f"{hookspecs.PROJECT_NAME}_spec"
    return [
        (name, function)
        for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(function, marker)
    ]


def signature_string(name: str, function: object) -> str:
    """``name(arg1, arg2)``: how README.md must spell the hook."""
    return f"{name}({', '.join(inspect.signature(function).parameters)})"  # type: ignore[arg-type]


HOOKS = _hookspecs()


def test_the_hookspecs_are_the_documented_set():
    assert {name for name, _ in HOOKS} == set(hookspecs.DECISION_HOOKS) | set(hookspecs.OBSERVER_HOOKS)
    assert len(HOOKS) == 10


@pytest.mark.parametrize(("name", "function"), HOOKS, ids=[name for name, _ in HOOKS])
def test_hookspec_has_a_docstring_with_an_example(name, function):
    doc = inspect.getdoc(function)
    assert doc, f"hookspec {name} has no docstring"
    summary = doc.split("\n\n", 1)[0]
    assert len(summary) > 20, f"hookspec {name}: the first paragraph should say what it is for"
    assert "Example::" in doc, f"hookspec {name}: the docstring needs an 'Example::' block"
    example = doc.split("Example::", 1)[1]
    assert "@hookimpl" in example, f"hookspec {name}: the example should show an @hookimpl"
    assert f"def {name}(" in example, f"hookspec {name}: the example should implement {name}"


@pytest.mark.parametrize(("name", "function"), HOOKS, ids=[name for name, _ in HOOKS])
def test_hookspec_is_documented_in_the_readme_under_its_signature(name, function):
    wanted = signature_string(name, function)
    text = README.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if wanted in line]
    assert lines, f"README.md has no heading or line with the signature {wanted!r}"
