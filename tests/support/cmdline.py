"""Reading a container's or a command's argument list as its parser will."""

from __future__ import annotations


def flag(args: list[str], name: str) -> str | None:
    """The value of `name` (`--flag`) in `args`, given as `--flag=value` or `--flag value`;
    the last one when given twice, since argparse keeps the last. None when absent."""
    found = None
    for i, arg in enumerate(args):
        if arg.startswith(f"{name}="):
            found = arg.split("=", 1)[1]
        elif arg == name and i + 1 < len(args):
            found = args[i + 1]
    return found
