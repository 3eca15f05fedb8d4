# Exec'd by the project's noxfile with ``nox``, ``_integration`` and ``MCP_LINES`` in scope.
# hermes-agent pins mcp==1.26.0 through its ``mcp`` extra, so there is one session, on mcp 1.x, and
# hermes' own pin (not MCP_LINES) decides the exact SDK version.


@nox.session(name="hermes-mcp1")  # type: ignore[name-defined]  # noqa: F821
def hermes_mcp1(session):  # type: ignore[no-untyped-def]
    """hermes-agent 0.19.0 (its MCP client: tools.mcp_tool) with the shim, against the fault server."""
    _integration(session, "hermes", "hermes-agent[mcp]==0.19.0")  # type: ignore[name-defined]  # noqa: F821


@nox.session(name="bench-hermes", default=False)  # type: ignore[name-defined]  # noqa: F821
def bench_hermes(session):  # type: ignore[no-untyped-def]
    """Figure 6 of the benchmarks: hermes-agent 0.19 alone and with the shim (not part of plain ``nox``).

    Writes benchmarks/results/hermes.json; ``nox -s bench-hermes -- --quick`` checks that it runs."""
    session.install("-e", ".[test]", "-e", "integrations/hermes", "hermes-agent[mcp]==0.19.0")
    session.run("python", "-m", "benchmarks.frameworks.hermes", *session.posargs)
