"""The fenced code blocks of README.md, with their line numbers and test markers, and a way to run them.

Stdlib only. The tests that run README examples import this module by path (``tests/readme`` for the
core blocks, ``tests/integrations/<dir>/test_readme_<dir>.py`` for the framework blocks).

Marker syntax
-------------
An HTML comment (invisible on GitHub) on the line right before a block's opening fence says who runs it::

    <!-- test: core -->
    ```python
    ...
    ```

- ``<!-- test: RUNNER -->`` or ``<!-- test: RUNNER, RUNNER, ... -->``: the block runs in each of these
  test environments. Runners (``RUNNERS``): ``core`` (``tests/readme/test_readme_examples.py``, the
  core-mcp1/core-mcp2 sessions) and one per framework, ``hermes``, ``openai-agents``, ``fastmcp``,
  ``pydantic-ai``, ``opentelemetry`` (``tests/integrations/<dir>/test_readme_<dir>.py``, that framework's sessions).
- ``<!-- test: skip (why) -->``: the block is not run; the reason in parentheses is required.

Every ``python`` block needs a marker; other blocks (bash, toml, text) may have one. The meta-test in
``tests/readme`` enforces both, and that every runner named has its test file.

Conventions inside blocks, so that an example stays a plain example for a reader:

- ``PLACEHOLDER_URL`` (``http://127.0.0.1:8000/mcp``) stands for "your MCP server": the tests put the
  testing kit's server URL there (:meth:`Block.with_url`).
- A line the test must fill in (a ``# restart the server ...`` comment, a ``...`` standing for "your
  program") is replaced by one statement of the test's (:meth:`Block.replace_line`); line numbers
  stay those of README.md, so tracebacks point at the README.

:func:`run` executes a block (top-level ``await``/``async with`` allowed, as in the README) in a
namespace and returns the values of its top-level expression statements, so that a test can assert on
what a line like ``classify(error)  # Verdict(...)`` produces.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "PLACEHOLDER_URL",
    "README",
    "RUNNERS",
    "SKIP",
    "Block",
    "blocks",
    "blocks_for",
    "parse",
    "run",
    "run_sync",
    "stray_markers",
]

README = Path(__file__).resolve().parent.parent / "README.md"

#: runner name -> the test file (relative to the repository root) that runs its blocks
RUNNERS: dict[str, str] = {
    "core": "tests/readme/test_readme_examples.py",
    "hermes": "tests/integrations/hermes/test_readme_hermes.py",
    "openai-agents": "tests/integrations/openai_agents/test_readme_openai_agents.py",
    "fastmcp": "tests/integrations/fastmcp/test_readme_fastmcp.py",
    "pydantic-ai": "tests/integrations/pydantic_ai/test_readme_pydantic_ai.py",
    "opentelemetry": "tests/integrations/opentelemetry/test_readme_opentelemetry.py",
}
SKIP = "skip"

PLACEHOLDER_URL = "http://127.0.0.1:8000/mcp"

_FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*?)\s*$")
_MARKER = re.compile(r"^\s*<!--\s*test:(?P<body>.*?)-->\s*$")
_MARKER_START = re.compile(r"^\s*<!--\s*test:")
_SKIP = re.compile(r"^skip\s*\((?P<why>.*\S.*)\)$")
_SHOW = "__readme_show__"


@dataclasses.dataclass(frozen=True)
class Block:
    """One fenced code block of the README."""

    path: Path
    #: 1-based line of the opening fence; the code starts on the next line
    line: int
    language: str
    source: str
    #: the marker's text after ``test:`` (None: no marker)
    marker: str | None = None
    #: who runs it (empty for no marker, a skip, or a malformed marker)
    runners: tuple[str, ...] = ()
    skip_reason: str | None = None
    #: why the marker is not valid (None when it is, or when there is none)
    marker_error: str | None = None

    @property
    def where(self) -> str:
        return f"{self.path.name}:{self.line}"

    @property
    def first_line(self) -> int:
        return self.line + 1

    def __str__(self) -> str:
        first = next((s for s in self.source.splitlines() if s.strip()), "")
        return f"{self.where} ({self.language or 'no language'}: {first.strip()[:60]})"

    def with_url(self, url: str) -> Block:
        """The block with :data:`PLACEHOLDER_URL` replaced by ``url`` (which must appear)."""
        if PLACEHOLDER_URL not in self.source:
            raise AssertionError(f"{self}: no {PLACEHOLDER_URL} to replace")
        return dataclasses.replace(self, source=self.source.replace(PLACEHOLDER_URL, url))

    def replace_line(self, pattern: str, statement: str) -> Block:
        """The block with the one line whose stripped text matches ``pattern`` (a full regex match)
        replaced by ``statement``, at that line's indentation; fails unless exactly one line matches."""
        lines = self.source.split("\n")
        hits = [i for i, text in enumerate(lines) if re.fullmatch(pattern, text.strip())]
        if len(hits) != 1:
            raise AssertionError(f"{self}: {len(hits)} lines match {pattern!r}, expected exactly one")
        index = hits[0]
        indent = lines[index][: len(lines[index]) - len(lines[index].lstrip())]
        lines[index] = indent + statement
        return dataclasses.replace(self, source="\n".join(lines))

    def compile(self) -> Any:
        """The block as a code object whose line numbers and file name are the README's."""
        tree = ast.parse("\n" * self.line + self.source, filename=str(self.path))
        tree.body = [_show(node) for node in tree.body]
        ast.fix_missing_locations(tree)
        return compile(tree, str(self.path), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)


def _show(node: ast.stmt) -> ast.stmt:
    """``expr`` becomes ``__readme_show__(expr)`` (a top-level expression statement, not ``...``)."""
    if not isinstance(node, ast.Expr) or isinstance(node.value, ast.Constant):
        return node
    call = ast.Call(func=ast.Name(id=_SHOW, ctx=ast.Load()), args=[node.value], keywords=[])
    return ast.copy_location(ast.Expr(value=ast.copy_location(call, node.value)), node)


def _marker(body: str) -> tuple[tuple[str, ...], str | None, str | None]:
    """(runners, skip reason, error) of a marker's text."""
    body = body.strip()
    if body == SKIP or body.startswith((f"{SKIP} ", f"{SKIP}(")):
        found = _SKIP.match(body)
        if found is None:
            return (), None, "a skip needs its reason: <!-- test: skip (why) -->"
        return (), found["why"].strip(), None
    names = tuple(name.strip() for name in body.split(","))
    if not body or not all(names):
        return (), None, "no runner named: <!-- test: RUNNER[, RUNNER...] -->"
    unknown = [name for name in names if name not in RUNNERS]
    if unknown:
        return (), None, f"unknown runner {', '.join(map(repr, unknown))}; known: {', '.join(RUNNERS)}, skip (why)"
    if len(set(names)) != len(names):
        return (), None, "a runner is named twice"
    return names, None, None


def _closes(line: str, fence: str) -> bool:
    closing = _FENCE.match(line)
    return (
        closing is not None
        and not closing["info"]
        and closing["fence"][0] == fence[0]
        and len(closing["fence"]) >= len(fence)
    )


def _fences(lines: list[str]) -> Iterator[tuple[int, int, str]]:
    """(opening index, closing index, info string) of every fenced block (an unclosed one ends the file)."""
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence = opening["fence"]
        close = index + 1
        while close < len(lines) and not _closes(lines[close], fence):
            close += 1
        yield index, close, opening["info"]
        index = close + 1


def parse(text: str, path: Path = README) -> list[Block]:
    """Every fenced code block of a Markdown text, in order."""
    lines = text.split("\n")
    found: list[Block] = []
    for start, end, info in _fences(lines):
        marker = _MARKER.match(lines[start - 1]) if start > 0 else None
        body = None if marker is None else marker["body"].strip()
        runners, skip, error = _marker(body) if body is not None else ((), None, None)
        found.append(
            Block(
                path=path,
                line=start + 1,
                language=info.split()[0].lower() if info else "",
                source="\n".join(lines[start + 1 : end]) + "\n",
                marker=body,
                runners=runners,
                skip_reason=skip,
                marker_error=error,
            )
        )
    return found


def stray_markers(text: str) -> list[int]:
    """1-based lines of ``<!-- test: ... -->`` markers that do not sit right before an opening fence."""
    lines = text.split("\n")
    openings = {start for start, _end, _info in _fences(lines)}
    return [i + 1 for i, line in enumerate(lines) if _MARKER_START.match(line) and i + 1 not in openings]


def blocks(path: Path = README) -> list[Block]:
    """Every fenced code block of the README."""
    return parse(path.read_text(encoding="utf-8"), path)


def blocks_for(runner: str, path: Path = README) -> list[Block]:
    """The blocks whose marker names ``runner``."""
    if runner not in RUNNERS:
        raise ValueError(f"unknown runner {runner!r}; known: {', '.join(RUNNERS)}")
    return [block for block in blocks(path) if runner in block.runners]


def _prepare(block: Block, namespace: dict[str, Any]) -> tuple[Any, list[Any]]:
    shown: list[Any] = []
    namespace.setdefault("__name__", f"readme_{block.line}")
    namespace[_SHOW] = shown.append
    return block.compile(), shown


async def run(block: Block, namespace: dict[str, Any]) -> list[Any]:
    """Execute ``block`` in ``namespace`` (awaiting it when it awaits); the values of its top-level
    expression statements, in order."""
    code, shown = _prepare(block, namespace)
    pending = eval(code, namespace)
    if pending is not None:
        await pending
    return shown


def run_sync(block: Block, namespace: dict[str, Any]) -> list[Any]:
    """:func:`run` for a block that does not await."""
    code, shown = _prepare(block, namespace)
    pending = eval(code, namespace)
    if pending is not None:
        pending.close()
        raise AssertionError(f"{block}: awaits; use `await run(...)`")
    return shown
