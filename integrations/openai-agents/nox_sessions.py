# Exec'd by the project's noxfile with `nox`, `_integration` and `MCP_LINES` in scope.
# openai-agents 0.24.0 supports both mcp majors (mcp>=1.19,<3): one session each.


@nox.session(name="openai-agents-mcp1")  # type: ignore[name-defined]  # noqa: F821
def openai_agents_mcp1(session):  # type: ignore[no-untyped-def]
    """openai-agents 0.24.0 under the newest mcp 1.x."""
    _integration(session, "openai-agents", "openai-agents==0.24.0", MCP_LINES["mcp1"])  # noqa: F821


@nox.session(name="openai-agents-mcp2")  # type: ignore[name-defined]  # noqa: F821
def openai_agents_mcp2(session):  # type: ignore[no-untyped-def]
    """openai-agents 0.24.0 under the newest mcp 2.x."""
    _integration(session, "openai-agents", "openai-agents==0.24.0", MCP_LINES["mcp2"])  # noqa: F821


def _bench_openai_agents(session, mcp_line):  # type: ignore[no-untyped-def]
    session.install("-e", ".[test]", "-e", "integrations/openai-agents", "openai-agents==0.24.0", mcp_line)
    session.run("python", "-m", "benchmarks.frameworks.openai_agents", *session.posargs)


@nox.session(name="bench-openai-agents", default=False)  # type: ignore[name-defined]  # noqa: F821
def bench_openai_agents(session):  # type: ignore[no-untyped-def]
    """Figure 6 of the benchmarks: openai-agents 0.24 on mcp 1.x alone and with the shim (not part of plain
    ``nox``). Writes benchmarks/results/openai-agents.json; ``-- --quick`` checks that it runs."""
    _bench_openai_agents(session, MCP_LINES["mcp1"])  # noqa: F821


@nox.session(name="bench-openai-agents-mcp2", default=False)  # type: ignore[name-defined]  # noqa: F821
def bench_openai_agents_mcp2(session):  # type: ignore[no-untyped-def]
    """The same on mcp 2.x, where the client speaks the session-less protocol to the fault server
    (a restart is invisible; calls in flight across it are not). Writes openai-agents-mcp2.json."""
    _bench_openai_agents(session, MCP_LINES["mcp2"])  # noqa: F821
