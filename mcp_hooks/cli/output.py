"""What every command shares: its exit statuses, ``CliError`` (the one line a command ends on, exit 2), and
the formatting of figures and errors in what it prints."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CANNOT_EXECUTE = 126  # as a shell says of a command it found but could not run
EXIT_NOT_FOUND = 127  # as a shell says of a command it did not find


class CliError(Exception):
    """One line for the user, exit code 2."""


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _error_text(error: BaseException) -> str:
    from ..connection.owner import _unwrap

    error = _unwrap(error)
    code = getattr(getattr(error, "error", None), "code", None)
    text = str(error) or repr(error)
    prefix = f"{type(error).__name__}" + (f" {code}" if isinstance(code, int) else "")
    return f"{prefix}: {text}"[:160]


def _line(label: str, value: str) -> str:
    return f"   {label} {'.' * max(3, 40 - len(label))} {value}"
