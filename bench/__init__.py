"""The benchmarks (``python -m bench``; see bench/__main__.py)."""

from __future__ import annotations

import sys


def no_arguments(doc: str | None) -> None:
    """For a benchmark script that takes no arguments: ``-h``/``--help`` prints its docstring and ends; any
    other argument is refused (exit 2) instead of starting a run of minutes."""
    args = sys.argv[1:]
    if args and set(args) <= {"-h", "--help"}:
        print((doc or "").strip())
        raise SystemExit(0)
    if args:
        given = " ".join(args)
        print(f"{sys.argv[0]}: takes no arguments (got {given}); -h says what it measures", file=sys.stderr)
        raise SystemExit(2)
