"""`python -m loadtests.stack ACTION ...`: the `mailswarm stack` command on its own."""

from __future__ import annotations

import argparse
import sys

from loadtests.stack.cli import register

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mailswarm")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(["stack", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
