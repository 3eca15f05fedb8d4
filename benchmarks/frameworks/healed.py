"""The frameworks that need only ``instrument("mcp")``: each alone and healed, in the same run.

Run it in a framework environment (wave 2a: ``nox -s bench-wave2a-mcp1``, ``nox -s bench-wave2a-mcp2``; wave 2b:
``nox -s bench-wave2b-mcp1``, ``nox -s bench-wave2b-crewai-mcp1``, ``nox -s bench-wave2b-mcp2``; or
``python -m benchmarks.frameworks.healed`` where the frameworks are installed); a framework that is not
installed is left out. The suite is named after the file it writes (``--out``; by default
``healed-mcp<major>.json``)::

    python -m benchmarks.frameworks.healed [--quick] [--out PATH]

Each framework calls the testing kit's server (streamable HTTP, loopback) through the function its
agent calls for a tool call, on a session held across calls, as its users hold it; the frameworks whose
tools block (smolagents and crewai-tools over mcpadapt's own thread and loop, mcp-haystack over its
executor's loop) are called on threads of their own, as their agents' workers call them. A call is
answered when the framework hands back the tool's real answer (``echo`` and ``slow`` name the server's
pid); an error it turns into text (autogen-ext's ``ToolResult``) or raises is not. "Alone" is the
framework as shipped (``uninstrument("mcp")``), "healed" is ``instrument("mcp")`` before it connects.
For each, in the same round and against the same server:

- after a SIGKILL restart, the next call: answered alone? answered healed? and the healed call's time
  as a ratio to a brand-new raw-SDK connect + initialize + call to the same restarted server;
- N = 20 concurrent read-only calls (``slow``) in flight across a SIGKILL restart: how many are answered,
  alone and healed, and how many sessions were rebuilt (``on_reconnect``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import signal
import threading
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import mcp_hooks
from benchmarks.common import Figure, Suite, arguments, fail, ratio
from benchmarks.frameworks import MCP_MAJOR, counting_reconnects, fresh_call, med, ms, times
from mcp_hooks.testing import FaultServer

GROUP = 'Frameworks healed by instrument("mcp")'
N = 20
SLOW = 1.0
CALL_TIMEOUT = 30.0
#: ``--quick``: a call of the framework alone is given up sooner (mcp 1.x leaves a call lost in flight
#: waiting for ever: 20 of them cost the full timeout per framework); healed calls keep the full one.
QUICK_ALONE_TIMEOUT = 5.0

os.environ.setdefault("MCP_USE_ANONYMIZED_TELEMETRY", "false")
os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
os.environ.setdefault("OTEL_SDK_DISABLED", "true")
warnings.simplefilter("ignore")

Call = Callable[[str, dict[str, Any]], Awaitable[str]]
T = TypeVar("T")


def on_thread(function: Callable[[], T], name: str = "bench-framework-call") -> asyncio.Future[T]:
    """Run a blocking framework call on a daemon thread of its own, as an agent's worker does: N calls run at
    once (no pool to queue them), and a call the framework leaves waiting forever (mcpadapt waits with no
    timeout) is given up by the caller's bound without holding the event loop's or the process's exit."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(value: Any, error: BaseException | None) -> None:
        if future.done():  # the caller gave up on it
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    def run() -> None:
        value: Any = None
        error: BaseException | None = None
        try:
            value = function()
        except Exception as exc:
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits for it any more
            loop.call_soon_threadsafe(settle, value, error)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


# --- each framework's tool path: an async context manager yielding ``call(tool, args) -> text`` ------------


@contextlib.asynccontextmanager
async def langchain(url: str) -> AsyncIterator[Call]:
    """langchain-mcp-adapters, a persistent ``client.session()``: what LangGraph's ``ToolNode`` awaits."""
    from langchain_mcp_adapters.client import MultiServerMCPClient
    from langchain_mcp_adapters.tools import load_mcp_tools

    client = MultiServerMCPClient({"kit": {"transport": "streamable_http", "url": url}})
    async with client.session("kit") as session:
        tools = {t.name: t for t in await load_mcp_tools(session, server_name="kit")}

        async def call(name: str, args: dict[str, Any]) -> str:
            call_id = f"call_{uuid.uuid4().hex[:8]}"
            message = await tools[name].ainvoke({"name": name, "args": args, "id": call_id, "type": "tool_call"})
            return str(message.content)

        yield call


@contextlib.asynccontextmanager
async def strands(url: str) -> AsyncIterator[Call]:
    """strands-agents' ``MCPClient``: what its tool executor streams for a model's tool use."""
    from strands.tools.mcp import MCPClient

    client = MCPClient(url=url)
    await asyncio.to_thread(client.start)
    try:
        tools = {t.tool_name: t for t in await asyncio.to_thread(client.list_tools_sync)}

        async def call(name: str, args: dict[str, Any]) -> str:
            use = {"toolUseId": f"tooluse_{uuid.uuid4().hex[:8]}", "name": name, "input": args}
            last: Any = None
            async for event in tools[name].stream(use, {}):  # type: ignore[arg-type]
                last = event
            result = last["tool_result"] if isinstance(last, dict) else {}
            return "".join(str(block.get("text", "")) for block in result.get("content", []))

        yield call
    finally:
        await asyncio.to_thread(client.stop, None, None, None)


@contextlib.asynccontextmanager
async def mcp_use(url: str) -> AsyncIterator[Call]:
    """mcp-use's ``MCPClient`` and the LangChain tools ``MCPAgent`` builds on it."""
    from mcp_use import MCPClient
    from mcp_use.agents.adapters import LangChainAdapter

    client = MCPClient({"mcpServers": {"kit": {"url": url}}})
    try:
        tools = {t.name: t for t in await LangChainAdapter().create_tools(client)}

        async def call(name: str, args: dict[str, Any]) -> str:
            return str(await tools[name].ainvoke(args))

        yield call
    finally:
        await client.close_all_sessions()


@contextlib.asynccontextmanager
async def semantic_kernel(url: str) -> AsyncIterator[Call]:
    """semantic-kernel's ``MCPStreamableHttpPlugin``: what auto function calling runs for a tool call."""
    from semantic_kernel import Kernel
    from semantic_kernel.connectors.mcp import MCPStreamableHttpPlugin
    from semantic_kernel.contents import ChatHistory, FunctionCallContent

    kernel = Kernel()
    async with MCPStreamableHttpPlugin(name="kit", url=url) as plugin:
        kernel.add_plugin(plugin)

        async def call(name: str, args: dict[str, Any]) -> str:
            history = ChatHistory()
            content = FunctionCallContent(
                id=f"call_{uuid.uuid4().hex[:8]}", name=f"kit-{name}", arguments=json.dumps(args)
            )
            await kernel.invoke_function_call(content, history)
            result = history.messages[-1].items[0].result
            if isinstance(result, list):
                return "".join(str(getattr(item, "text", item)) for item in result)
            return str(result)

        yield call


@contextlib.asynccontextmanager
async def agno(url: str) -> AsyncIterator[Call]:
    """agno's ``MCPTools``: the function entrypoint its agent awaits for a tool call."""
    from agno.tools.mcp import MCPTools

    async with MCPTools(url=url, transport="streamable-http") as tools:

        async def call(name: str, args: dict[str, Any]) -> str:
            result = tools.functions[name].entrypoint(**args)  # type: ignore[misc]
            if asyncio.iscoroutine(result):
                result = await result
            return str(getattr(result, "content", result))

        yield call


@contextlib.asynccontextmanager
async def google_adk(url: str) -> AsyncIterator[Call]:
    """google-adk: one agent turn (``Runner`` -> ``LlmAgent`` -> ``McpToolset`` -> ``McpTool.run_async``) in
    which a scripted model asks for the call; what the model reads back."""
    from benchmarks.frameworks.adk_agent import agent, text_of

    async with agent(url) as adk:

        async def call(name: str, args: dict[str, Any]) -> str:
            (response,) = await adk.call((name, args))
            return text_of(response)

        yield call


@contextlib.asynccontextmanager
async def autogen_ext(url: str) -> AsyncIterator[Call]:
    """autogen-ext's ``McpWorkbench.call_tool``: what ``AssistantAgent(workbench=...)`` awaits for a function call.
    It turns an error into ``ToolResult(is_error=True)``; the model reads ``to_text()`` either way."""
    from autogen_ext.tools.mcp import McpWorkbench, StreamableHttpServerParams

    workbench = McpWorkbench(StreamableHttpServerParams(url=url))
    await asyncio.wait_for(workbench.start(), CALL_TIMEOUT)
    try:

        async def call(name: str, args: dict[str, Any]) -> str:
            return (await workbench.call_tool(name, args)).to_text()

        yield call
    finally:
        await asyncio.wait_for(workbench.stop(), CALL_TIMEOUT)


@contextlib.asynccontextmanager
async def smolagents(url: str) -> AsyncIterator[Call]:
    """smolagents' ``ToolCollection.from_mcp`` (mcpadapt's ``MCPAdapt``: one session on its own thread and loop):
    the tool called as its agents call it, ``tool(**args, sanitize_inputs_outputs=True)``, which raises an error
    (the agent shows the model ``"Error: ..."``)."""
    from smolagents import ToolCollection

    stack = contextlib.ExitStack()
    params = {"url": url, "transport": "streamable-http"}
    collection = ToolCollection.from_mcp(params, trust_remote_code=True, structured_output=False)
    found = await asyncio.wait_for(on_thread(lambda: stack.enter_context(collection)), CALL_TIMEOUT)
    try:
        tools = {t.name: t for t in found.tools}

        async def call(name: str, args: dict[str, Any]) -> str:
            return str(await on_thread(lambda: tools[name](**args, sanitize_inputs_outputs=True)))

        yield call
    finally:
        await asyncio.wait_for(on_thread(stack.close), CALL_TIMEOUT)


@contextlib.asynccontextmanager
async def camel(url: str) -> AsyncIterator[Call]:
    """camel-ai's ``MCPToolkit``: a tool's ``func.async_call``, what ``ChatAgent`` awaits for a tool call (it
    raises an error; the agent shows the model ``"Tool execution failed: ..."``)."""
    from camel.toolkits import MCPToolkit
    from camel.utils.mcp_client import MCPClient

    toolkit = MCPToolkit(clients=[MCPClient({"url": url, "type": "streamable_http"})])
    await asyncio.wait_for(toolkit.connect(), CALL_TIMEOUT)
    try:
        tools = {t.get_function_name(): t for t in toolkit.get_tools()}

        async def call(name: str, args: dict[str, Any]) -> str:
            return str(await tools[name].func.async_call(**args))

        yield call
    finally:
        await asyncio.wait_for(toolkit.disconnect(), CALL_TIMEOUT)


@contextlib.asynccontextmanager
async def crewai_tools(url: str) -> AsyncIterator[Call]:
    """crewai-tools' ``MCPServerAdapter`` (mcpadapt's ``MCPAdapt``: one session on its own thread and loop): a
    tool's ``run(**args)``, what crewai's tool-calling step calls (it raises an error; the step shows the model
    ``"Error executing tool: ..."``)."""
    from crewai_tools import MCPServerAdapter

    adapter = await asyncio.wait_for(
        on_thread(lambda: MCPServerAdapter({"url": url, "transport": "streamable-http"})), CALL_TIMEOUT
    )
    try:
        tools = {t.name: t for t in adapter.tools}

        async def call(name: str, args: dict[str, Any]) -> str:
            return str(await on_thread(lambda: tools[name].run(**args)))

        yield call
    finally:
        await asyncio.wait_for(on_thread(adapter.stop), CALL_TIMEOUT)


@contextlib.asynccontextmanager
async def haystack(url: str) -> AsyncIterator[Call]:
    """mcp-haystack's ``MCPToolset`` (what a pipeline's ``ToolInvoker`` or ``Agent`` is given), warmed up as they
    warm it up: a tool's ``invoke(**args)``, run on a thread as the invoker's pool runs it. It answers the
    result as JSON (the text is taken out of it) and raises an error (``ToolInvocationError``)."""
    from haystack_integrations.tools.mcp import MCPToolset, StreamableHttpServerInfo

    toolset = MCPToolset(StreamableHttpServerInfo(url=url))
    await asyncio.wait_for(on_thread(toolset.warm_up), CALL_TIMEOUT)
    try:
        tools = {t.name: t for t in toolset.tools}

        async def call(name: str, args: dict[str, Any]) -> str:
            result = json.loads(await on_thread(lambda: tools[name].invoke(**args)))
            return "".join(str(block.get("text", "")) for block in result.get("content", []))

        yield call
    finally:
        await asyncio.wait_for(on_thread(toolset.close), CALL_TIMEOUT)


@contextlib.asynccontextmanager
async def llama_index(url: str) -> AsyncIterator[Call]:
    """llama-index-tools-mcp's ``McpToolSpec`` over a long-lived ``ClientSession`` the application holds (the
    default ``BasicMCPClient`` opens a session per call: nothing to heal): a tool's ``acall``, what the agent's
    ``_call_tool`` awaits (it raises an error; the agent gives the model ``str(error)``)."""
    import mcp
    from llama_index.tools.mcp import McpToolSpec
    from mcp.client.streamable_http import streamable_http_client

    async with contextlib.AsyncExitStack() as stack:
        read, write, *_ = await stack.enter_async_context(streamable_http_client(url))
        session = await stack.enter_async_context(mcp.ClientSession(read, write))
        await asyncio.wait_for(session.initialize(), CALL_TIMEOUT)
        spec = McpToolSpec(client=session)
        tools = {t.metadata.get_name(): t for t in await asyncio.wait_for(spec.to_tool_list_async(), CALL_TIMEOUT)}

        async def call(name: str, args: dict[str, Any]) -> str:
            result = (await tools[name].acall(**args)).raw_output
            text = "".join(str(getattr(block, "text", "")) for block in result.content)
            failed = getattr(result, "is_error", None) or getattr(result, "isError", None)
            return f"Error: {text}" if failed else text

        yield call


#: framework -> (module that tells it is installed, its tool path)
FRAMEWORKS: dict[str, tuple[str, Callable[[str], contextlib.AbstractAsyncContextManager[Call]]]] = {
    "langchain-mcp-adapters": ("langchain_mcp_adapters", langchain),
    "strands-agents": ("strands", strands),
    "mcp-use": ("mcp_use", mcp_use),
    "semantic-kernel": ("semantic_kernel", semantic_kernel),
    "agno": ("agno", agno),
    "google-adk": ("google.adk.tools.mcp_tool", google_adk),
    "autogen-ext": ("autogen_ext.tools.mcp", autogen_ext),
    "smolagents": ("smolagents", smolagents),
    "camel-ai": ("camel", camel),
    "crewai-tools": ("crewai_tools", crewai_tools),
    "mcp-haystack": ("haystack_integrations.tools.mcp", haystack),
    "llama-index-tools-mcp": ("llama_index.tools.mcp", llama_index),
}


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (a dotted name whose parent package is missing is not)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def answered(text: str) -> bool:
    """A tool's real answer (``echo`` and ``slow`` name the server's pid), not an error turned into text."""
    return "(pid " in text and "failed" not in text.lower() and "error" not in text.lower()[:40]


async def attempt(call: Call, tool: str, args: dict[str, Any], timeout: float = CALL_TIMEOUT) -> tuple[bool, float]:
    started = time.perf_counter()
    try:
        text = await asyncio.wait_for(call(tool, args), timeout)
    except Exception:
        return False, time.perf_counter() - started
    return answered(text), time.perf_counter() - started


def _heal(on: bool) -> None:
    if on:
        mcp_hooks.instrument("mcp")
    else:
        mcp_hooks.uninstrument("mcp")


async def after_restart(srv: FaultServer, path: Any, healed: bool) -> tuple[bool, float, float]:
    """The next call after a SIGKILL restart: answered?, its seconds, and a fresh connect's seconds."""
    _heal(healed)
    async with path(srv.url) as call:
        ok, _ = await attempt(call, "echo", {"text": "warm"})
        if not ok:
            fail("the warm-up call was not answered")
        await asyncio.to_thread(srv.restart, signal.SIGKILL)
        fresh = await fresh_call(srv.url)
        ok, took = await attempt(call, "echo", {"text": "after"})
    _heal(False)
    return ok, took, fresh


async def concurrent(srv: FaultServer, path: Any, healed: bool, timeout: float = CALL_TIMEOUT) -> tuple[int, int]:
    """N concurrent ``slow`` calls across a SIGKILL restart: how many answered (each within ``timeout``), how
    many rebuilds."""
    _heal(healed)
    with counting_reconnects("mcp") as counter:
        async with path(srv.url) as call:
            ok, _ = await attempt(call, "echo", {"text": "warm"})
            if not ok:
                fail("the warm-up call was not answered")
            before = srv.executions("slow")
            tasks = [asyncio.ensure_future(attempt(call, "slow", {"seconds": SLOW}, timeout)) for _ in range(N)]
            for _ in range(1000):  # until all N run on the server (bounded: 20 s)
                if srv.executions("slow") >= before + N:
                    break
                await asyncio.sleep(0.02)
            await asyncio.to_thread(srv.restart, signal.SIGKILL)
            results = await asyncio.gather(*tasks)
        rebuilds = counter.count
    _heal(False)
    return sum(1 for ok, _ in results if ok), rebuilds


async def measure(suite: Suite, srv: FaultServer, name: str, path: Any) -> None:
    rounds = 1 if suite.quick else 3
    alone_ok = healed_ok = 0
    healed_s: list[float] = []
    fresh_s: list[float] = []
    for _ in range(rounds):
        ok, _, _ = await after_restart(srv, path, healed=False)
        alone_ok += ok
        ok, took, fresh = await after_restart(srv, path, healed=True)
        healed_ok += ok
        if ok:
            healed_s.append(took)
            fresh_s.append(fresh)
    if not healed_s:
        fail(f"{name}: no call answered after a restart with instrument('mcp')")
    r = ratio(med(healed_s), med(fresh_s))
    suite.add(
        Figure(
            f"healed.{name}.restart",
            GROUP,
            f"{name}: the next call after a restart, answered alone / healed; healed vs a fresh connect",
            med(healed_s) * 1e3,
            med(fresh_s) * 1e3,
            "ms",
            f"{alone_ok}/{rounds} / {healed_ok}/{rounds}; {times(r)} ({ms(med(healed_s))} vs {ms(med(fresh_s))})",
            note=f"median of {rounds} rounds; the healing layer may start rebuilding when it sees the restart "
            "(a standing stream ends), before the call, as it does for a user",
        )
    )
    alone_timeout = QUICK_ALONE_TIMEOUT if suite.quick else CALL_TIMEOUT
    alone_n, _ = await concurrent(srv, path, healed=False, timeout=alone_timeout)
    healed_n, rebuilds = await concurrent(srv, path, healed=True)
    suite.add(
        Figure(
            f"healed.{name}.concurrent",
            GROUP,
            f"{name}: {N} concurrent calls across a SIGKILL restart, answered alone / healed (rebuilds)",
            float(healed_n),
            float(alone_n),
            "calls",
            f"{alone_n}/{N} / {healed_n}/{N} ({rebuilds} rebuild{'s' if rebuilds != 1 else ''})",
            note=f"a call is given up after {alone_timeout:g} s alone, {CALL_TIMEOUT:g} s healed",
        )
    )


def main() -> None:
    args = arguments(__doc__.splitlines()[0])
    present = {n: p for n, (module, p) in FRAMEWORKS.items() if installed(module)}
    if not present:
        fail("none of the frameworks is installed here")
    out: Path | None = args.out
    suite_name = out.stem if out is not None else f"healed-mcp{MCP_MAJOR}"
    suite = Suite(suite_name, quick=args.quick, distributions=tuple(present))
    with FaultServer(legacy_only=True) as srv:
        for name, path in present.items():
            print(f"{name}:", flush=True)
            asyncio.run(measure(suite, srv, name, path))
    suite.write(args.out)


if __name__ == "__main__":
    main()
