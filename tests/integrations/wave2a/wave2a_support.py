"""Support for the wave-2a framework tests: ``instrument("mcp")`` (the healing layer beneath every SDK client
session) proven through the real tool paths of frameworks that run on mcp 1.x.

Imported by ``conftest.py`` (fixtures) and by the tests (helpers); named uniquely because the test folders
are not packages. Nothing here knows how the healing layer works: the tests only turn it on, count its
``on_reconnect`` hook and look at what each framework hands back.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

import mcp_hooks
from mcp_hooks.testing import FaultServer

# mcp-use reports anonymous telemetry (posthog/scarf) unless told not to: no network in tests.
os.environ.setdefault("MCP_USE_ANONYMIZED_TELEMETRY", "false")

#: ``"mcp"`` is the healing layer's integration name (CONTRACT.md, ``instrument``).
HEALING_AVAILABLE = "mcp" in mcp_hooks.integrations()

#: For the tests that need the healing layer: skipped, with the reason, in a tree that does not have it yet.
needs_healing = pytest.mark.skipif(
    not HEALING_AVAILABLE,
    reason='the healing layer is not in this tree yet: "mcp" is not in mcp_hooks.integrations() '
    "(mcp_hooks.instrument('mcp'), mcp_hooks/healing/)",
)

#: mcp 1.30 deprecates ``streamablehttp_client``, which strands (on mcp 1.x) and semantic-kernel call.
SDK_DEPRECATION = pytest.mark.filterwarnings("ignore:Use `streamable_http_client` instead:DeprecationWarning")

#: What the healing layer answers for a call lost after it may have reached the server (CONTRACT.md).
UNCERTAIN = "outcome uncertain"

#: How long a baseline test waits to show that a write lost in flight is still unanswered.
HANG_PROOF_SECONDS = 5.0

#: A call lost in flight must resolve within 20 s of the connection dying (CONTRACT.md); with the restart.
SETTLE_SECONDS = 30.0


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def healing() -> Iterator[None]:
    """``mcp_hooks.instrument("mcp")`` on for one test (after the frameworks were imported: the test modules
    import them at collection), off again at teardown."""
    assert mcp_hooks.instrument("mcp") == {"mcp": True}
    try:
        yield
    finally:
        mcp_hooks.uninstrument("mcp")


@pytest.fixture
def no_healing() -> None:
    """The framework as its users have it today: the healing layer off (if this tree has one)."""
    if HEALING_AVAILABLE:
        mcp_hooks.uninstrument("mcp")


class RebuildCounter:
    """A temporary plugin counting ``on_reconnect``: the contract fires it exactly once per rebuild."""

    def __init__(self) -> None:
        self.calls: list[mcp_hooks.ToolCall] = []
        self._lock = threading.Lock()  # strands heals on its own thread

    @mcp_hooks.hookimpl
    def on_reconnect(self, call: mcp_hooks.ToolCall, error: BaseException) -> None:
        with self._lock:
            self.calls.append(call)

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.calls)

    def __repr__(self) -> str:
        seen = [(c.framework, c.server, c.tool) for c in self.calls]
        return f"RebuildCounter({self.count}: {seen})"


@pytest.fixture
def rebuilds() -> Iterator[RebuildCounter]:
    counter = RebuildCounter()
    pm = mcp_hooks.plugin_manager()
    name = pm.register(counter, name=f"wave2a-rebuild-counter-{id(counter)}")
    try:
        yield counter
    finally:
        pm.unregister(name=name)


# --------------------------------------------------------------------------- helpers


def pid_in(answer: str) -> int:
    """The server pid in what ``echo`` / ``slow`` answer: ``"... (pid N)"``."""
    found = re.search(r"\(pid (\d+)\)", answer)
    assert found is not None, f"no pid in {answer!r}"
    return int(found.group(1))


async def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    give_up = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > give_up:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


async def restart_under(srv: FaultServer) -> None:
    """SIGKILL the server and start a new process on the same port, from a thread, so that the event loop
    (and every call in flight) sees the server go away while it happens."""
    import signal

    await asyncio.to_thread(srv.restart, signal.SIGKILL)


async def twenty_reads_across_a_kill(srv: FaultServer, read: Callable[[], Awaitable[str]]) -> None:
    """20 ``slow`` calls (``read()`` starts one and gives the text the model reads) in flight when the server
    is killed and restarted: every one answered by the new process, each killed in flight and replayed once
    (read-only)."""
    calls = [asyncio.ensure_future(read()) for _ in range(20)]
    await wait_until(lambda: srv.executions("slow") >= 20, "the 20 calls to reach the server")
    await restart_under(srv)
    answers = await asyncio.wait_for(asyncio.gather(*calls), 60)
    assert all(a.startswith("slept 2.0 s (pid ") for a in answers), answers
    assert {pid_in(a) for a in answers} == {srv.pid}
    assert srv.executions("slow") == 40


def arm_lost_write(srv: FaultServer, tool: str = "incr", revive_after: float = 0.0) -> threading.Thread:
    """The next ``tool`` runs on the server (its side effect done), then the server is SIGKILLed before it
    answers; a thread starts it again once it is dead (``revive_after`` seconds later)."""
    srv.kill_during_next_call(tool)
    if revive_after <= 0:
        return srv.revive_when_dead()

    def run() -> None:
        deadline = time.monotonic() + 30
        while srv.running and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(revive_after)
        if not srv.running:
            srv.start()

    thread = threading.Thread(target=run, name="wave2a-revive-later", daemon=True)
    thread.start()
    return thread


async def still_pending_after(call: Awaitable[Any], seconds: float = HANG_PROOF_SECONDS) -> bool:
    """Whether ``call`` is still unanswered after ``seconds`` (then it is cancelled): the baseline of a write
    lost in flight, which mcp 1.x leaves waiting for its read timeout (minutes)."""
    task = asyncio.ensure_future(call)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if done:
        return False
    task.cancel()
    try:
        await asyncio.wait_for(task, 10)
    except BaseException:  # cancelled, or whatever the framework made of the cancellation
        pass
    return True


async def outcome(call: Awaitable[Any], timeout: float = SETTLE_SECONDS) -> tuple[str, Any]:
    """``("ok", value)`` or ``("error", exception)``; bounded by ``timeout`` (a hang fails the test)."""
    try:
        return "ok", await asyncio.wait_for(call, timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"the call did not resolve within {timeout} s") from None
    except Exception as exc:
        return "error", exc


def error_words(error: BaseException) -> str:
    """Every message in an error's cause/context chain (the SDK's error may be wrapped by the framework)."""
    words: list[str] = []
    seen: set[int] = set()
    stack: list[BaseException | None] = [error]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        words.append(f"{type(current).__name__}: {current}")
        inner = getattr(current, "error", None)  # McpError.error (ErrorData)
        if inner is not None and getattr(inner, "message", None):
            words.append(str(inner.message))
        stack.extend([current.__cause__, current.__context__])
        stack.extend(getattr(current, "exceptions", ()) or ())
    return " | ".join(words)


def run_child(code: str, timeout: float = 150.0) -> str:
    """Run ``code`` in a fresh interpreter of this environment (nothing imported yet); its stdout."""
    env = {**os.environ, "MCP_USE_ANONYMIZED_TELEMETRY": "false", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout, env=env
    )
    assert done.returncode == 0, f"child failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    return done.stdout


def child_script(framework_modules: tuple[str, ...], body: str) -> str:
    """A script for :func:`run_child` that turns the healing layer on *before* the framework is imported (the
    in-process tests turn it on after), checks that none of ``framework_modules`` is imported yet, then runs
    ``body`` (which imports the framework and uses ``FaultServer``, ``asyncio``, ``signal``)."""
    prelude = f"""
import asyncio, signal, sys
import mcp_hooks
from mcp_hooks.testing import FaultServer

assert mcp_hooks.instrument("mcp") == {{"mcp": True}}
for name in {framework_modules!r}:
    assert name not in sys.modules, name + " was imported before instrument()"
"""
    return textwrap.dedent(prelude) + textwrap.dedent(body)


def scripted_chat_model() -> Any:
    """A LangChain chat model with no LLM behind it (langchain-mcp-adapters' and mcp-use's agents run on
    LangChain): each turn asks for the next tool call queued on ``.queue`` as ``(name, args)``; once a tool
    answered, it answers with the tool message's content, so the run's final answer is what the tool gave
    the model."""
    import uuid

    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
    from langchain_core.outputs import ChatGeneration, ChatResult
    from pydantic import Field

    class ScriptedChatModel(BaseChatModel):
        queue: list[tuple[str, dict[str, Any]]] = Field(default_factory=list)

        @property
        def _llm_type(self) -> str:
            return "wave2a-scripted"

        def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
            return self

        def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
            last = messages[-1]
            if isinstance(last, ToolMessage):
                content = last.content
                if not isinstance(content, str):
                    content = "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
                message = AIMessage(content=content)
            else:
                name, args = self.queue.pop(0)
                call = {"name": name, "args": args, "id": f"call_{uuid.uuid4().hex[:8]}", "type": "tool_call"}
                message = AIMessage(content="", tool_calls=[call])
            return ChatResult(generations=[ChatGeneration(message=message)])

    return ScriptedChatModel()
