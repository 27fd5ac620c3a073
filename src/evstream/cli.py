"""What the subcommands of ``python -m evstream`` share: the errors and exit statuses, the parser with
one-line errors, help text, and argument types that refuse bad values as usage errors."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from typing import Any, NoReturn, TextIO

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_RUNTIME",
    "EXIT_STATUSES",
    "EXIT_USAGE",
    "ArgumentParser",
    "CommandError",
    "UsageError",
    "command_help",
    "non_negative_float",
    "non_negative_int",
    "one_line",
    "os_error",
    "port_number",
    "positive_float",
    "positive_int",
    "write_text",
]

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_STATUSES = (
    "exit status: 0 success; 1 the command failed (connection, stream, data or service error);\n"
    "2 usage error (bad option or value, unreadable input file, unknown profile); 130 interrupted.\n"
    "Errors are one line on stderr; EVSTREAM_DEBUG=1 prints the traceback as well."
)


class UsageError(Exception):
    """A mistake in how the command was called (exit status 2)."""


class CommandError(Exception):
    """The command ran and failed (exit status 1); the message is the whole story."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors (argparse prints the usage block, then the error)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def command_help(description: str, examples: list[str]) -> dict[str, Any]:
    """The parser keywords of a subcommand: its description and examples, as plain text."""
    lines = "\n".join(f"  {example}" for example in examples)
    return {
        "description": description,
        "epilog": f"example{'s' if len(examples) > 1 else ''}:\n{lines}\n\n{EXIT_STATUSES}",
        "formatter_class": argparse.RawDescriptionHelpFormatter,
    }


def positive_int(text: str) -> int:
    value: int = _number(int, text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return value


def non_negative_int(text: str) -> int:
    value: int = _number(int, text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def positive_float(text: str) -> float:
    value: float = _number(float, text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


def non_negative_float(text: str) -> float:
    value: float = _number(float, text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or a positive number, not {text}")
    return value


def port_number(text: str) -> int:
    value: int = _number(int, text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535, not {text}")
    return value


def _number(kind: Callable[[str], Any], text: str) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def os_error(exc: OSError) -> str:
    """An OS error's words without its errno and file name (the caller says which file)."""
    return exc.strerror or str(exc)


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def write_text(pieces: Iterable[str], out: TextIO) -> None:
    """Write the pieces as they come; the output ends with a newline, even when the stream fails."""
    last = "\n"
    try:
        for piece in pieces:
            out.write(piece)
            out.flush()
            last = piece[-1:] or last
    finally:
        if last != "\n":
            out.write("\n")
            out.flush()
