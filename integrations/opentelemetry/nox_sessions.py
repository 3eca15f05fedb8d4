# Exec'd by the project's noxfile with `nox`, `_integration` and `MCP_LINES` in scope.
# The tests need the OpenTelemetry SDK (in-memory exporters); the integration itself needs the API only.


@nox.session(name="opentelemetry-mcp1")  # type: ignore[name-defined]  # noqa: F821
def opentelemetry_mcp1(session):  # type: ignore[no-untyped-def]
    """Spans and metrics of every MCP session under the newest mcp 1.x."""
    _integration(session, "opentelemetry", "opentelemetry-sdk>=1.20", MCP_LINES["mcp1"])  # noqa: F821


@nox.session(name="opentelemetry-mcp2")  # type: ignore[name-defined]  # noqa: F821
def opentelemetry_mcp2(session):  # type: ignore[no-untyped-def]
    """Spans and metrics of every MCP session under the newest mcp 2.x."""
    _integration(session, "opentelemetry", "opentelemetry-sdk>=1.20", MCP_LINES["mcp2"])  # noqa: F821


@nox.session(name="bench-opentelemetry", default=False)  # type: ignore[name-defined]  # noqa: F821
def bench_opentelemetry(session):  # type: ignore[no-untyped-def]
    """The integration's cost on a loopback call against tracing off (not part of plain ``nox``).

    Writes benchmarks/results/opentelemetry-mcp2.json; ``-- --quick`` checks that it runs."""
    session.install("-e", ".", "-e", "integrations/opentelemetry", "opentelemetry-sdk>=1.20", MCP_LINES["mcp2"])  # noqa: F821
    session.run("python", "-m", "benchmarks.otel", *session.posargs)
