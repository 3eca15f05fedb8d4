"""Every code example of README.md runs as a test (issue #4).

The meta-tests check that every ``python`` block carries a ``<!-- test: ... -->`` marker naming known
runners (see ``tests/readme_blocks.py``). Each ``core`` block is then executed as written against the
testing kit's real MCP server on 127.0.0.1, restarted where the example's point is recovery, and what it
produces is asserted. The framework blocks run in their own environments
(``tests/integrations/<dir>/test_readme_<dir>.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import inspect
import re
import sys
import types
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import readme_blocks

import mcp_hooks
from mcp_hooks import ENTRY_POINT_GROUP, Loss, PluginOrigin, build_plugin_manager, hookimpl, is_session_expired
from mcp_hooks.connection import MCP_MAJOR
from mcp_hooks.testing import FaultServer

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(90)


BLOCKS = readme_blocks.blocks()


# --- the meta-tests -------------------------------------------------------------------------------------


def test_the_readme_has_python_examples() -> None:
    assert sum(block.language == "python" for block in BLOCKS) >= 5, [str(b) for b in BLOCKS]


def test_every_python_block_has_a_marker() -> None:
    unmarked = [str(b) for b in BLOCKS if b.language == "python" and b.marker is None]
    assert not unmarked, f"add <!-- test: RUNNER --> (or <!-- test: skip (why) -->) right before: {unmarked}"


def test_every_marker_names_known_runners() -> None:
    bad = [f"{b}: {b.marker_error}" for b in BLOCKS if b.marker_error is not None]
    assert not bad, bad
    text = readme_blocks.README.read_text(encoding="utf-8")
    stray = readme_blocks.stray_markers(text)
    assert not stray, f"README.md lines {stray}: a test marker must sit on the line right before a fence"


def test_every_runner_named_has_its_test_file() -> None:
    named = {runner for block in BLOCKS for runner in block.runners}
    missing = [readme_blocks.RUNNERS[r] for r in sorted(named) if not (ROOT / readme_blocks.RUNNERS[r]).is_file()]
    assert not missing, missing


def test_the_parser_reads_markers_and_lines() -> None:
    text = (
        "prose\n"
        "<!-- test: core -->\n"
        "```python\n"
        "x = 1\n"
        "```\n"
        "<!-- test: skip (needs a model provider) -->\n"
        "~~~python\n"
        "```\n"
        "~~~\n"
        "<!-- test: core, nope -->\n"
        "```python\n"
        "```\n"
        "<!-- test: skip -->\n"
        "```toml\n"
        "```\n"
        "<!-- test: fastmcp -->\n"
        "\n"
        "```bash\n"
        "```\n"
    )
    core, skipped, unknown, no_reason, bash = readme_blocks.parse(text, Path("X.md"))
    assert (core.line, core.language, core.source, core.runners) == (3, "python", "x = 1\n", ("core",))
    assert core.where == "X.md:3"
    assert (skipped.runners, skipped.skip_reason, skipped.source) == ((), "needs a model provider", "```\n")
    assert "unknown runner 'nope'" in unknown.marker_error
    assert "reason" in no_reason.marker_error
    assert bash.marker is None
    assert readme_blocks.stray_markers(text) == [16]


async def test_run_returns_the_top_level_expressions_and_awaits() -> None:
    block = readme_blocks.parse("```python\nimport asyncio\n\nawait asyncio.sleep(0)\nx = 2\nx * 3\n...\n```\n")[0]
    namespace: dict[str, Any] = {}
    assert await readme_blocks.run(block, namespace) == [None, 6]
    assert namespace["x"] == 2
    with pytest.raises(AssertionError, match="awaits"):
        readme_blocks.run_sync(block, {})
    with pytest.raises(ZeroDivisionError) as failed:
        await readme_blocks.run(block.replace_line(r"x = 2", "x = 1 / 0"), {})
    assert failed.traceback[-1].lineno + 1 == 5  # README line numbers: the fence is line 1
    assert str(failed.traceback[-1].path) == str(readme_blocks.README)
    assert readme_blocks.run_sync(block.replace_line(r"await .*", "x = 0"), {}) == [6]


# --- helpers: a plain MCP SDK session, and the shared kit server -------------------------------------------


async def _sdk_session(url: str, stack: contextlib.AsyncExitStack) -> Any:
    """A plain MCP SDK session (no mcp-hooks) on a session-bearing protocol, for either mcp major."""
    sdk: Any = importlib.import_module("mcp")
    if MCP_MAJOR >= 2:
        return await stack.enter_async_context(sdk.Client(url, mode="legacy"))
    from mcp.client.streamable_http import streamable_http_client

    streams = await stack.enter_async_context(streamable_http_client(url))
    session = await stack.enter_async_context(sdk.ClientSession(streams[0], streams[1]))
    await session.initialize()
    return session


class SdkSession:
    """A plain SDK session as a user keeps one: opened and closed with an ``AsyncExitStack`` in the
    caller's own task (mcp-hooks runs a rebuild in the failing call's task, so closing and reopening
    the SDK's anyio contexts there is allowed). ``opened`` counts the sessions opened."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session: Any = None
        self.opened = 0
        self._stack: contextlib.AsyncExitStack | None = None

    async def open(self) -> Any:
        stack = contextlib.AsyncExitStack()
        self.session = await _sdk_session(self.url, stack)  # bounded by the test's timeout mark
        self._stack = stack
        self.opened += 1
        return self.session

    async def close(self) -> None:
        stack, self._stack = self._stack, None
        if stack is None:
            return
        await stack.aclose()

    async def reopen(self) -> None:
        await self.close()
        await self.open()

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> Any:
        return await self.session.call_tool(name, arguments)


def text(result: Any) -> str:
    assert not getattr(result, "isError", False) and not getattr(result, "is_error", False), result
    return str(result.content[0].text)


def pid_in(answer: str) -> int:
    """The server pid that ``echo`` reports: ``"<text> (pid N)"``."""
    return int(answer.rsplit("(pid ", 1)[1].rstrip(")"))


def restarter(srv: FaultServer) -> Callable[[], Awaitable[None]]:
    """``await restart()``: a new server process on the same port, from a thread (the loop keeps running)."""

    async def restart() -> None:
        await asyncio.to_thread(srv.restart)

    return restart


# --- one function per core example: it runs the block as written and checks what it did -------------------


async def connect_example(block: Any, request: pytest.FixtureRequest) -> None:
    srv: FaultServer = request.getfixturevalue("mcp_shared_fault_server")
    ran = srv.executions_from_now()
    before = srv.pid
    code = block.with_url(srv.url).replace_line(r"# restart the server at will.*", "await restart()")
    namespace: dict[str, Any] = {"restart": restarter(srv)}
    await readme_blocks.run(code, namespace)
    answer = text(namespace["result"])
    assert answer.startswith("hello again (pid ")
    assert pid_in(answer) == srv.pid != before  # answered by the restarted server
    assert ran("echo") == 2
    # mcp 2.x negotiates its session-less protocol by default: there a restart leaves nothing to rebuild
    assert namespace["session"].reconnects == (0 if MCP_MAJOR >= 2 else 1)


async def instrument_mcp_example(block: Any, request: pytest.FixtureRequest) -> None:
    srv: FaultServer = request.getfixturevalue("mcp_fault_server_factory")(legacy_only=True)
    ran = srv.executions_from_now()
    before = srv.pid
    code = block.with_url(srv.url).replace_line(r"# restart the server at will.*", "await restart()")
    # The block runs as a script does: in a module's namespace (a script is ``__main__``), which is where
    # instrument() finds the SDK function the block imported before calling it.
    script = types.ModuleType("readme_instrument_example")
    namespace: dict[str, Any] = script.__dict__
    namespace["restart"] = restarter(srv)
    sys.modules[script.__name__] = script
    try:
        await readme_blocks.run(code, namespace)
    finally:
        mcp_hooks.uninstrument("mcp")
        del sys.modules[script.__name__]
    answer = text(namespace["result"])
    assert answer.startswith("hello again (pid ")
    assert pid_in(answer) == srv.pid != before  # the same SDK session, answered by the restarted server
    assert ran("echo") == 2


async def instrument_options_example(block: Any, request: pytest.FixtureRequest) -> None:
    from mcp_hooks.healing import settings

    try:
        await readme_blocks.run(block, {"mcp_hooks": mcp_hooks})
        assert settings.current() == settings.HealSettings(
            deadline=30.0, max_reconnects=3, breaker_after=60.0, replay_safe_tools=frozenset({"search"})
        )
        assert mcp_hooks.integrations()["mcp"].enabled
    finally:
        mcp_hooks.uninstrument("mcp")
    assert settings.current() == settings.HealSettings()


async def with_mcp_recovery_example(block: Any, request: pytest.FixtureRequest) -> None:
    srv: FaultServer = request.getfixturevalue("mcp_shared_fault_server")
    ran = srv.executions_from_now()
    namespace: dict[str, Any] = {}
    assert await readme_blocks.run(block, namespace) == []

    class Tools(namespace["MyAgentTools"]):  # type: ignore[misc]
        """The README's class, with the session handling it leaves to the reader."""

        def __init__(self) -> None:
            self.sdk = SdkSession(srv.url)

        @property
        def session(self) -> Any:
            return self.sdk.session

        async def open_session(self) -> None:
            await self.sdk.open()

        async def close_session(self) -> None:
            await self.sdk.close()

    tools = Tools()
    await tools.open_session()
    try:
        first = text(await tools.call_tool("echo", {"text": "before"}))
        await restarter(srv)()
        second = text(await tools.call_tool("echo", {"text": "after"}))
        key = f"readme-{uuid.uuid4().hex[:8]}"
        counted = text(await tools.call_tool("incr", {"key": key}))
    finally:
        await tools.close_session()
    assert pid_in(second) == srv.pid != pid_in(first)
    assert tools.sdk.opened == 2  # the first session, and the one rebuild() opened
    assert ran("echo") == 2  # the request the dead session sent was refused, never run
    assert counted == "1"
    assert srv.counter(key) == 1


FRAMEWORK_MODULE = '''
"""A framework's MCP client, as a framework ships it: a session it keeps, no recovery."""


class Server:
    def __init__(self, session):
        self.session = session

    async def call_tool(self, name, arguments):
        return await self.session.call_tool(name, arguments)
'''


class SomeFrameworkRebuild:
    """What an integration adds for ``attach``: the ``reconnect`` hook rebuilding the framework's session."""

    def __init__(self) -> None:
        self.calls: list[mcp_hooks.ToolCall] = []

    @hookimpl
    def reconnect(self, call: mcp_hooks.ToolCall) -> Any:
        if call.framework != "some-framework":
            return None
        self.calls.append(call)
        return call.owner.session.reopen()


async def attach_example(block: Any, request: pytest.FixtureRequest) -> None:
    srv: FaultServer = request.getfixturevalue("mcp_shared_fault_server")
    tmp_path: Path = request.getfixturevalue("tmp_path")
    target = re.search(r'attach\("([\w.]+):([\w.]+)"', block.source)
    assert target is not None, block
    module_name, qualname = target.groups()
    assert (module_name, qualname) == ("some_framework.mcp", "Server.call_tool")
    assert importlib.util.find_spec("some_framework") is None, "a real some_framework is installed here"
    package = tmp_path / "some_framework"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "mcp.py").write_text(FRAMEWORK_MODULE)
    rebuild = SomeFrameworkRebuild()
    pm = mcp_hooks.plugin_manager()
    pm.register(rebuild, name="readme-some-framework-rebuild")
    sys.path.insert(0, str(tmp_path))
    importlib.invalidate_caches()
    seen: dict[str, Any] = {}

    async def program(handle: mcp_hooks.AttachHandle) -> None:
        """Stands for the README's ``...``: the program importing and using the framework."""
        seen["status before import"] = handle.status
        framework = importlib.import_module(module_name)
        seen["status after import"] = handle.status
        seen["Server"] = framework.Server
        seen["original"] = vars(framework.Server)["call_tool"].__wrapped__
        sdk = SdkSession(srv.url)
        await sdk.open()
        server = framework.Server(sdk)
        try:
            seen["first"] = text(await server.call_tool("echo", {"text": "before"}))
            await restarter(srv)()
            seen["second"] = text(await server.call_tool("echo", {"text": "after"}))
        finally:
            await sdk.close()

    namespace: dict[str, Any] = {"program": program}
    try:
        await readme_blocks.run(block.replace_line(r"\.\.\.", "await program(handle)"), namespace)
    finally:
        with contextlib.suppress(KeyError):
            namespace["handle"].detach()
        pm.unregister(rebuild)
        sys.path.remove(str(tmp_path))
        for name in ("some_framework.mcp", "some_framework"):
            sys.modules.pop(name, None)
    assert seen["status before import"] == "pending"  # the module was not imported yet
    assert seen["status after import"] == "attached"
    assert pid_in(seen["second"]) == srv.pid != pid_in(seen["first"])
    assert [(c.tool, c.framework, type(c.owner).__name__) for c in rebuild.calls] == [
        ("echo", "some-framework", "Server")
    ]
    assert namespace["handle"].status == "detached"
    assert vars(seen["Server"])["call_tool"] is seen["original"]  # the original, exactly


async def classify_example(block: Any, request: pytest.FixtureRequest) -> None:
    srv: FaultServer = request.getfixturevalue("mcp_shared_fault_server")
    sdk = SdkSession(srv.url)
    await sdk.open()
    try:
        await sdk.call_tool("echo", {"text": "before"})
        await restarter(srv)()
        with pytest.raises(Exception) as lost:  # the plain SDK: the session is gone
            await sdk.call_tool("echo", {"text": "after"})
    finally:
        await sdk.close()
    expired, verdict = await readme_blocks.run(block, {"error": lost.value})
    assert expired is True
    assert verdict.loss is Loss.REJECTED and verdict.is_session_loss, verdict
    assert verdict.reason
    expired, verdict = await readme_blocks.run(block, {"error": ValueError("not a session problem")})
    assert expired is False
    assert verdict.loss is Loss.NONE


ENTRY_POINTS_HEADER = re.compile(r"^\[project\.entry-points\.(?P<group>[\w.-]+)\]$")
ENTRY_POINT_LINE = re.compile(r'^(?P<name>[\w.-]+)\s*=\s*"(?P<value>[\w.:]+)"$')


def _entry_points(toml: str) -> tuple[str, dict[str, str]]:
    """(group, name -> value) of the ``[project.entry-points.GROUP]`` table of a pyproject snippet."""
    group, entries = None, {}
    for line in toml.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        header = ENTRY_POINTS_HEADER.match(line)
        if header is not None:
            assert group is None, f"one entry-point table expected: {toml!r}"
            group = header["group"]
            continue
        entry = ENTRY_POINT_LINE.match(line)
        assert entry is not None and group is not None, f"unexpected line {line!r}"
        entries[entry["name"]] = entry["value"]
    assert group is not None, toml
    return group, entries


async def plugin_example(block: Any, request: pytest.FixtureRequest) -> None:
    """The plugin module and its ``pyproject.toml`` entry point, installed as an installer would (a
    ``*.dist-info`` with ``entry_points.txt`` on ``sys.path``): the plugin manager loads it."""
    tmp_path: Path = request.getfixturevalue("tmp_path")
    index = BLOCKS.index(block)
    plugin, toml = (BLOCKS[index], BLOCKS[index + 1]) if block.language == "python" else BLOCKS[index - 1 : index + 1]
    assert (plugin.language, toml.language) == ("python", "toml"), "the plugin block is followed by its toml"
    filename = re.match(r"# (?P<module>\w+)\.py\n", plugin.source)
    assert filename is not None, "the plugin block starts with its file name"
    module = filename["module"]
    group, entries = _entry_points(toml.source)
    assert group == ENTRY_POINT_GROUP
    assert list(entries.values()) == [module], entries
    (name,) = entries
    assert importlib.util.find_spec(module) is None, f"a real {module} is installed here"
    (tmp_path / f"{module}.py").write_text(plugin.source)
    dist = f"readme_plugin_{uuid.uuid4().hex[:8]}"
    info = tmp_path / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n{name} = {entries[name]}\n")
    sys.path.insert(0, str(tmp_path))
    importlib.invalidate_caches()
    try:
        pm = build_plugin_manager(disable=())
        loaded = pm.get_plugin(name)
        assert loaded is not None, pm.not_loaded
        assert loaded is sys.modules[module]
        assert pm.origins[name] == PluginOrigin(name, "entry point", distribution=dist, version="0.1", value=module)
        gateway = RuntimeError("502: the gateway lost your session")
        assert is_session_expired(gateway, plugin_manager_=pm) is True
        assert is_session_expired(gateway, plugin_manager_=build_plugin_manager(entry_points=False)) is False
        assert is_session_expired(RuntimeError("disk full"), plugin_manager_=pm) is False  # no opinion
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(module, None)
        importlib.invalidate_caches()


MY_FRAMEWORK = """
class MCPToolset:
    def __init__(self):
        self.reconnects = 0
        self.lose_session = False

    def run_tool(self, name, raise_errors=False):
        try:
            return self.call_tool(name)
        except Exception as exc:
            if raise_errors:
                raise
            return f"Error: {exc}"

    def call_tool(self, name):
        if self.lose_session:
            raise ConnectionError("Session terminated")
        return f"ran {name}"

    def reconnect(self):
        self.reconnects += 1
        self.lose_session = False
        return True
"""


async def integration_example(block: Any, request: pytest.FixtureRequest) -> None:
    """The README's shim, against a framework written for the test (``my_framework.mcp``, which turns
    errors into text): turned on, the lost session is rebuilt by the framework's own ``reconnect`` and the
    tool answers; turned off, every patched function is the framework's own again."""
    tmp_path: Path = request.getfixturevalue("tmp_path")
    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    filename = re.match(r"# (?P<module>\w+)\.py\n", block.source)
    assert filename is not None, "the integration block starts with its file name"
    module_name = filename["module"]
    (tmp_path / "my_framework").mkdir()
    (tmp_path / "my_framework" / "__init__.py").write_text("")
    (tmp_path / "my_framework" / "mcp.py").write_text(MY_FRAMEWORK)
    (tmp_path / f"{module_name}.py").write_text(block.source)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        shim = importlib.import_module(module_name)
        toolset_class = importlib.import_module("my_framework.mcp").MCPToolset
        originals = dict(vars(toolset_class))
        integration = shim.mcp_hooks_integration
        assert integration.instrument() is False  # my-framework is not installed: it steps aside
        assert integration.why_not == "my-framework is not installed"
        monkeypatch.setattr(integration, "framework_version", lambda: "1.3")
        pm = mcp_hooks.plugin_manager()
        pm.register(shim, name="readme-my-framework")
        try:
            assert integration.instrument() is True
            toolset = toolset_class()
            toolset.lose_session = True
            assert toolset.run_tool("search") == "ran search"  # rebuilt by its own reconnect, replayed
            assert toolset.reconnects == 1
        finally:
            integration.uninstrument()
            pm.unregister(name="readme-my-framework")
        assert dict(vars(toolset_class)) == originals  # every patch put back exactly
        toolset = toolset_class()
        toolset.lose_session = True
        assert toolset.run_tool("search") == "Error: Session terminated"  # the framework alone again
    finally:
        for name in (module_name, "my_framework.mcp", "my_framework"):
            sys.modules.pop(name, None)


async def kit_example(block: Any, request: pytest.FixtureRequest) -> None:
    """The README's test, run with the fixtures it names (the kit's pytest plugin provides them)."""
    namespace: dict[str, Any] = {}
    await readme_blocks.run(block, namespace)
    tests = {name: f for name, f in namespace.items() if name.startswith("test_") and inspect.isfunction(f)}
    assert list(tests) == ["test_survives_restart"], tests
    test = tests["test_survives_restart"]
    fixtures = {name: request.getfixturevalue(name) for name in inspect.signature(test).parameters}
    await test(**fixtures)
    srv = fixtures["mcp_fault_server"]
    first, second = srv.execution_pids("incr")  # the README's own assert counted two
    assert first != second  # a restart came between them
    # one rebuild under mcp 1.x; none on the session-less protocol mcp 2.x speaks to the kit by default
    assert len(fixtures["mcp_recovery_events"].reconnects) == (1 if MCP_MAJOR < 2 else 0)


#: example -> (a fragment only its block contains, the function that runs it)
EXAMPLES: dict[str, tuple[str, Callable[[Any, pytest.FixtureRequest], Awaitable[None]]]] = {
    "instrument-mcp": ('mcp_hooks.instrument("mcp")', instrument_mcp_example),
    "instrument-mcp-options": ("breaker_after=60,", instrument_options_example),
    "connect": ('async with mcp_hooks.connect("', connect_example),
    "with_mcp_recovery": ("@with_mcp_recovery(", with_mcp_recovery_example),
    "attach": ("mcp_hooks.attach(", attach_example),
    "classify": ("classify(error)", classify_example),
    "plugin": ("# my_gateway_plugin.py", plugin_example),
    "integration": ("# mcp_hooks_my_framework.py", integration_example),
    "plugin-entry-point": ("[project.entry-points.", plugin_example),
    "testing-kit": ("async def test_", kit_example),
}
CORE = readme_blocks.blocks_for("core")


def _examples_in(block: Any) -> list[str]:
    return [name for name, (fragment, _run) in EXAMPLES.items() if fragment in block.source]


def test_every_core_example_has_one_block() -> None:
    """A runner whose block left the README (or changed beyond recognition) fails here."""
    claimed = [name for block in CORE for name in _examples_in(block)]
    assert sorted(claimed) == sorted(EXAMPLES)


@pytest.mark.parametrize("block", CORE, ids=lambda b: "+".join(_examples_in(b)) or b.where)
async def test_core_block(block: Any, request: pytest.FixtureRequest) -> None:
    names = _examples_in(block)
    assert len(names) == 1, f"{block}: {names or 'no test knows this block'}; add it to EXAMPLES"
    await EXAMPLES[names[0]][1](block, request)
