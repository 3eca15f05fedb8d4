"""One session per environment: the core under the newest mcp 1.x and 2.x, lint, each integration.

Run every test: ``nox``. One session: ``nox -s core-mcp2``. ``.ci/run`` runs exactly ``nox``.
The benchmarks are not tests and never run by default: ``nox -s bench`` (``-- --quick`` for a short run).
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = False
nox.options.error_on_missing_interpreters = True

ROOT = Path(__file__).parent
MCP_LINES = {"mcp1": "mcp>=1.24,<2", "mcp2": "mcp>=2,<3"}
PYTEST = ("python", "-m", "pytest", "-p", "no:cacheprovider", "-q", "-ra")


def _install_core(session: nox.Session, mcp_spec: str) -> None:
    session.install("-e", ".[test]", mcp_spec)


@nox.session(name="core-mcp1")
def core_mcp1(session: nox.Session) -> None:
    """The core, connect(), CLI and testing kit under the newest mcp 1.x."""
    _install_core(session, MCP_LINES["mcp1"])
    session.run(*PYTEST, "tests", "--ignore=tests/integrations", *session.posargs)


@nox.session(name="core-mcp2")
def core_mcp2(session: nox.Session) -> None:
    """The core, connect(), CLI and testing kit under the newest mcp 2.x."""
    _install_core(session, MCP_LINES["mcp2"])
    session.run(*PYTEST, "tests", "--ignore=tests/integrations", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint and format) and mypy --strict, under both mcp majors."""
    session.install("-e", ".[lint,test]", MCP_LINES["mcp2"])
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
    session.install(MCP_LINES["mcp1"])
    session.run("mypy")


#: Frameworks that need only ``instrument("mcp")`` (no integration of their own), sharing one mcp 1.x
#: environment; the versions their tests were written against.
WAVE2A_MCP1 = (
    "langchain-mcp-adapters==0.3.2",
    "strands-agents==1.62.0",
    "mcp-use==1.7.1",
    "semantic-kernel==1.45.0",
    "google-adk==2.13.0",
)


@nox.session(name="wave2a-mcp1")
def wave2a_mcp1(session: nox.Session) -> None:
    """langchain-mcp-adapters, strands-agents, mcp-use, semantic-kernel and google-adk through their own
    tool paths, healed by ``instrument("mcp")`` alone, under the newest mcp 1.x."""
    session.install("-e", ".[test]", MCP_LINES["mcp1"], *WAVE2A_MCP1)
    session.run(*PYTEST, "tests/integrations/wave2a", *session.posargs)


#: Frameworks on mcp 2.x that need only ``instrument("mcp")``, sharing one environment. google-adk pins
#: opentelemetry <= 1.44, so fastmcp (agno's client) stays at 4.1.x (4.2.3 needs opentelemetry >= 1.45.2).
WAVE2A_MCP2 = (
    "google-adk==2.13.0",
    "agno==3.1.10",
    "fastmcp==4.1.7",
)


@nox.session(name="wave2a-mcp2")
def wave2a_mcp2(session: nox.Session) -> None:
    """google-adk and agno through their own tool paths, healed by ``instrument("mcp")`` alone, under the
    newest mcp 2.x."""
    session.install("-e", ".[test]", MCP_LINES["mcp2"], *WAVE2A_MCP2)
    session.run(*PYTEST, "tests/integrations/wave2a", *session.posargs)


#: Frameworks that are mcp 1.x only in practice (each declares an unbounded ``mcp``), sharing one environment.
#: autogen-agentchat is for the agent-level test (``AssistantAgent``); camel-ai pins pydantic <= 2.12.0 and
#: websockets < 15.1, which the other two accept.
WAVE2B_MCP1 = (
    "autogen-ext[mcp]==0.7.5",
    "autogen-agentchat==0.7.5",
    "smolagents[mcp]==1.26.0",
    "mcpadapt==0.1.19",
    "camel-ai==0.2.90",
)
WAVE2B_FILES_MCP1_ONLY = ("test_autogen_ext.py", "test_smolagents.py", "test_camel.py", "test_bench_healed.py")


@nox.session(name="wave2b-mcp1")
def wave2b_mcp1(session: nox.Session) -> None:
    """autogen-ext's ``McpWorkbench``, smolagents over mcpadapt and camel-ai's ``MCPToolkit`` through their own
    tool paths, healed by ``instrument("mcp")`` alone, under the newest mcp 1.x."""
    session.install("-e", ".[test]", MCP_LINES["mcp1"], *WAVE2B_MCP1)
    session.run(*PYTEST, *(f"tests/integrations/wave2b/{name}" for name in WAVE2B_FILES_MCP1_ONLY), *session.posargs)


#: crewai pins ``mcp>=1.30,<2`` (so mcp 1.30.0 exactly); mcp-haystack runs on either major and joins it.
WAVE2B_CREWAI_MCP1 = (
    "mcp==1.30.0",
    "crewai==1.15.30",
    "crewai-tools[mcp]==1.15.30",
    "mcpadapt==0.1.19",
    "mcp-haystack==2.1.1",
    "haystack-ai==3.4.1",
)
WAVE2B_FILES_MCP1 = ("test_crewai.py", "test_haystack.py", "test_bench_healed.py")


@nox.session(name="wave2b-crewai-mcp1")
def wave2b_crewai_mcp1(session: nox.Session) -> None:
    """crewai-tools' ``MCPServerAdapter``, crewai's native ``mcps=`` and mcp-haystack through their own tool
    paths, healed by ``instrument("mcp")`` alone, under mcp 1.30.0 (crewai's pin)."""
    session.install("-e", ".[test]", *WAVE2B_CREWAI_MCP1)
    session.run(*PYTEST, *(f"tests/integrations/wave2b/{name}" for name in WAVE2B_FILES_MCP1), *session.posargs)


#: llama-index-tools-mcp 0.6 needs mcp 2.x; mcp-haystack again, on the other major.
WAVE2B_MCP2 = (
    "llama-index-tools-mcp==0.6.0",
    "llama-index-core==0.14.25",
    "mcp-haystack==2.1.1",
    "haystack-ai==3.4.1",
)
WAVE2B_FILES_MCP2 = ("test_llama_index.py", "test_haystack.py", "test_bench_healed.py")


@nox.session(name="wave2b-mcp2")
def wave2b_mcp2(session: nox.Session) -> None:
    """llama-index-tools-mcp and mcp-haystack through their own tool paths, healed by ``instrument("mcp")``
    alone, under the newest mcp 2.x."""
    session.install("-e", ".[test]", MCP_LINES["mcp2"], *WAVE2B_MCP2)
    session.run(*PYTEST, *(f"tests/integrations/wave2b/{name}" for name in WAVE2B_FILES_MCP2), *session.posargs)


@nox.session(name="bench-wave2a-mcp1", default=False)
def bench_wave2a_mcp1(session: nox.Session) -> None:
    """langchain-mcp-adapters, strands-agents, mcp-use, semantic-kernel and google-adk alone and healed
    (figures only)."""
    session.install("-e", ".", MCP_LINES["mcp1"], *WAVE2A_MCP1)
    session.run(
        "python", "-m", "benchmarks.frameworks.healed", "--out", "benchmarks/results/healed-mcp1.json", *session.posargs
    )


@nox.session(name="bench-wave2a-mcp2", default=False)
def bench_wave2a_mcp2(session: nox.Session) -> None:
    """google-adk and agno alone and healed (figures only)."""
    session.install("-e", ".", MCP_LINES["mcp2"], *WAVE2A_MCP2)
    session.run(
        "python", "-m", "benchmarks.frameworks.healed", "--out", "benchmarks/results/healed-mcp2.json", *session.posargs
    )


@nox.session(name="bench-wave2b-mcp1", default=False)
def bench_wave2b_mcp1(session: nox.Session) -> None:
    """autogen-ext, smolagents and camel-ai alone and healed (figures only)."""
    session.install("-e", ".", MCP_LINES["mcp1"], *WAVE2B_MCP1)
    session.run(
        "python",
        "-m",
        "benchmarks.frameworks.healed",
        "--out",
        "benchmarks/results/healed-wave2b-mcp1.json",
        *session.posargs,
    )


@nox.session(name="bench-wave2b-crewai-mcp1", default=False)
def bench_wave2b_crewai_mcp1(session: nox.Session) -> None:
    """crewai-tools' ``MCPServerAdapter`` and mcp-haystack alone and healed, under mcp 1.30.0 (figures only)."""
    session.install("-e", ".", *WAVE2B_CREWAI_MCP1)
    session.run(
        "python",
        "-m",
        "benchmarks.frameworks.healed",
        "--out",
        "benchmarks/results/healed-wave2b-crewai-mcp1.json",
        *session.posargs,
    )


@nox.session(name="bench-wave2b-mcp2", default=False)
def bench_wave2b_mcp2(session: nox.Session) -> None:
    """llama-index-tools-mcp (a long-lived session) and mcp-haystack alone and healed, under the newest mcp 2.x
    (figures only)."""
    session.install("-e", ".", MCP_LINES["mcp2"], *WAVE2B_MCP2)
    session.run(
        "python",
        "-m",
        "benchmarks.frameworks.healed",
        "--out",
        "benchmarks/results/healed-wave2b-mcp2.json",
        *session.posargs,
    )


BENCH_SUITES = (
    "bench-core-mcp1",
    "bench-core-mcp2",
    "bench-hermes",
    "bench-openai-agents",
    "bench-opentelemetry",
    "bench-wave2a-mcp1",
    "bench-wave2a-mcp2",
    "bench-wave2b-mcp1",
    "bench-wave2b-crewai-mcp1",
    "bench-wave2b-mcp2",
)


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Every benchmark suite, each in its own environment, then the table (printed and put in README.md)."""
    for name in BENCH_SUITES:
        session.notify(name, posargs=session.posargs)
    session.notify("bench-report")


def _bench_core(session: nox.Session, mcp_spec: str) -> None:
    session.install("-e", ".", mcp_spec)
    session.run("python", "-m", "benchmarks.core", *session.posargs)


@nox.session(name="bench-core-mcp1", default=False)
def bench_core_mcp1(session: nox.Session) -> None:
    """The core figures against the raw SDK, under the newest mcp 1.x."""
    _bench_core(session, MCP_LINES["mcp1"])


@nox.session(name="bench-core-mcp2", default=False)
def bench_core_mcp2(session: nox.Session) -> None:
    """The core figures against the raw SDK, under the newest mcp 2.x."""
    _bench_core(session, MCP_LINES["mcp2"])


@nox.session(name="bench-report", default=False, venv_backend="none")
def bench_report(session: nox.Session) -> None:
    """The latest figures of every suite as one table, also written into README.md."""
    session.run("python", "-m", "benchmarks.report", "--readme", external=True)


def _integration(session: nox.Session, name: str, *requirements: str) -> None:
    """Install the core and one integration distribution, run its tests, then mypy --strict over its
    package, against the framework versions this session installed."""
    module = name.replace("-", "_")
    session.install("-e", ".[test]", "-e", f"integrations/{name}", *requirements)
    session.run(*PYTEST, f"tests/integrations/{module}", *session.posargs)
    session.install("mypy>=1.11")
    session.run("mypy", "--strict", "--python-version", "3.10", f"integrations/{name}/mcp_hooks_{module}")


#: Every integration's test session, one per framework and mcp major it supports: the distribution under
#: ``integrations/`` and what the session installs beside it (the framework, pinned; the mcp line).
#: - fastmcp 4.x runs on mcp 2.x only, fastmcp 3.x on mcp 1.x only (fastmcp-slim 3.4.11 needs a certifi
#:   newer than the registry has, so the 1.x line is pinned to 3.4.10);
#: - hermes-agent pins mcp==1.26.0 through its ``mcp`` extra: one session, and hermes' pin decides the SDK;
#: - openai-agents 0.24.0 supports both majors (mcp>=1.19,<3);
#: - the OpenTelemetry tests need the SDK (in-memory exporters); the integration itself needs the API only;
#: - pydantic-ai 2.x calls MCP through the fastmcp Client (fastmcp 4 on mcp 2.x, fastmcp 3 on mcp 1.x);
#:   mcp-hooks-pydantic-ai depends on mcp-hooks-fastmcp, which is not on PyPI: installed from this tree.
INTEGRATIONS: dict[str, tuple[str, ...]] = {
    "fastmcp-mcp1": ("fastmcp", "fastmcp-slim[client]==3.4.10", MCP_LINES["mcp1"]),
    "fastmcp-mcp2": ("fastmcp", "fastmcp-slim[client]==4.1.6", MCP_LINES["mcp2"]),
    "hermes-mcp1": ("hermes", "hermes-agent[mcp]==0.19.0"),
    "openai-agents-mcp1": ("openai-agents", "openai-agents==0.24.0", MCP_LINES["mcp1"]),
    "openai-agents-mcp2": ("openai-agents", "openai-agents==0.24.0", MCP_LINES["mcp2"]),
    "opentelemetry-mcp1": ("opentelemetry", "opentelemetry-sdk>=1.20", MCP_LINES["mcp1"]),
    "opentelemetry-mcp2": ("opentelemetry", "opentelemetry-sdk>=1.20", MCP_LINES["mcp2"]),
    "pydantic-ai-mcp1": (
        "pydantic-ai",
        *("-e", "integrations/fastmcp", "pydantic-ai-slim[mcp]==2.68.0", "fastmcp-slim[client]==3.4.10"),
        MCP_LINES["mcp1"],
    ),
    "pydantic-ai-mcp2": (
        "pydantic-ai",
        *("-e", "integrations/fastmcp", "pydantic-ai-slim[mcp]==2.68.0", "fastmcp-slim[client]==4.1.6"),
        MCP_LINES["mcp2"],
    ),
}


def _integration_session(name: str, integration: str, requirements: tuple[str, ...]) -> None:
    def run(session: nox.Session) -> None:
        _integration(session, integration, *requirements)

    run.__doc__ = f"The {integration} integration's tests and mypy --strict: {' '.join(requirements)}."
    nox.session(name=name)(run)


for _name, (_integration_name, *_requirements) in INTEGRATIONS.items():
    _integration_session(_name, _integration_name, tuple(_requirements))


def _bench_framework(session: nox.Session, integration: str, module: str, *requirements: str) -> None:
    session.install("-e", ".[test]", "-e", f"integrations/{integration}", *requirements)
    session.run("python", "-m", f"benchmarks.frameworks.{module}", *session.posargs)


@nox.session(name="bench-hermes", default=False)
def bench_hermes(session: nox.Session) -> None:
    """hermes-agent 0.19 alone and with the shim; writes benchmarks/results/hermes.json (``-- --quick``)."""
    _bench_framework(session, "hermes", "hermes", "hermes-agent[mcp]==0.19.0")


@nox.session(name="bench-openai-agents", default=False)
def bench_openai_agents(session: nox.Session) -> None:
    """openai-agents 0.24 on mcp 1.x alone and with the shim; writes benchmarks/results/openai-agents.json."""
    _bench_framework(session, "openai-agents", "openai_agents", "openai-agents==0.24.0", MCP_LINES["mcp1"])


@nox.session(name="bench-openai-agents-mcp2", default=False)
def bench_openai_agents_mcp2(session: nox.Session) -> None:
    """The same on mcp 2.x, where the client speaks the session-less protocol to the fault server (a
    restart is invisible; calls in flight across it are not). Writes openai-agents-mcp2.json."""
    _bench_framework(session, "openai-agents", "openai_agents", "openai-agents==0.24.0", MCP_LINES["mcp2"])


@nox.session(name="bench-opentelemetry", default=False)
def bench_opentelemetry(session: nox.Session) -> None:
    """The OpenTelemetry integration's cost on a loopback call against tracing off; writes
    benchmarks/results/opentelemetry-mcp2.json (``-- --quick`` checks that it runs)."""
    session.install("-e", ".", "-e", "integrations/opentelemetry", "opentelemetry-sdk>=1.20", MCP_LINES["mcp2"])
    session.run("python", "-m", "benchmarks.otel", *session.posargs)
