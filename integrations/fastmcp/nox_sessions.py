# Exec'd by the project's noxfile with `nox`, `_integration` and `MCP_LINES` in scope.
# fastmcp 4.x runs on mcp 2.x only; fastmcp 3.x on mcp 1.x only: one session each, with the slim
# distribution's client extra (what pydantic-ai installs). fastmcp-slim 3.4.11 needs a certifi newer
# than the registry has, so the mcp 1.x line is pinned to 3.4.10.


@nox.session(name="fastmcp-mcp1")  # type: ignore[name-defined]  # noqa: F821
def fastmcp_mcp1(session):  # type: ignore[no-untyped-def]
    """The fastmcp Client 3.4.10 under the newest mcp 1.x."""
    _integration(session, "fastmcp", "fastmcp-slim[client]==3.4.10", MCP_LINES["mcp1"])  # noqa: F821


@nox.session(name="fastmcp-mcp2")  # type: ignore[name-defined]  # noqa: F821
def fastmcp_mcp2(session):  # type: ignore[no-untyped-def]
    """The fastmcp Client 4.1.6 under the newest mcp 2.x."""
    _integration(session, "fastmcp", "fastmcp-slim[client]==4.1.6", MCP_LINES["mcp2"])  # noqa: F821
