"""The one kind of user mistake, and how every program reports it: `error: <one line>`, exit 2."""

from __future__ import annotations

import sys


class UserError(Exception):
    """A mistake in the user's input (config, data, paths, files): reported as one line, exit code 2."""


def one_line(text) -> str:
    """`text` on one line, whatever line breaks its source carried (YAML, jsonschema, W&B errors)."""
    return " ".join(str(text).split())


def report(err: Exception) -> int:
    """Print a user's mistake as programs here do, and return the exit code for it."""
    print(f"error: {one_line(err)}", file=sys.stderr)
    return 2
