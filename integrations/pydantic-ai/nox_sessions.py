# Exec'd by the project's noxfile with `nox`, `_integration` and `MCP_LINES` in scope.
# pydantic-ai 2.x calls MCP through the fastmcp Client (extra `mcp`: fastmcp-slim[client]>=3.3,<5), so
# it runs on both mcp majors: fastmcp 4 on mcp 2.x, fastmcp 3 on mcp 1.x. mcp-hooks-pydantic-ai
# depends on mcp-hooks-fastmcp, which is not on PyPI: it is installed from this tree alongside.


@nox.session(name="pydantic-ai-mcp1")  # type: ignore[name-defined]  # noqa: F821
def pydantic_ai_mcp1(session):  # type: ignore[no-untyped-def]
    """pydantic-ai-slim 2.68.0 (fastmcp-slim 3.4.10) under the newest mcp 1.x."""
    _integration(  # noqa: F821
        session,
        "pydantic-ai",
        "-e",
        "integrations/fastmcp",
        "pydantic-ai-slim[mcp]==2.68.0",
        "fastmcp-slim[client]==3.4.10",
        MCP_LINES["mcp1"],  # noqa: F821
    )


@nox.session(name="pydantic-ai-mcp2")  # type: ignore[name-defined]  # noqa: F821
def pydantic_ai_mcp2(session):  # type: ignore[no-untyped-def]
    """pydantic-ai-slim 2.68.0 (fastmcp-slim 4.1.6) under the newest mcp 2.x."""
    _integration(  # noqa: F821
        session,
        "pydantic-ai",
        "-e",
        "integrations/fastmcp",
        "pydantic-ai-slim[mcp]==2.68.0",
        "fastmcp-slim[client]==4.1.6",
        MCP_LINES["mcp2"],  # noqa: F821
    )
