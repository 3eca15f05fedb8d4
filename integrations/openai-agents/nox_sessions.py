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
