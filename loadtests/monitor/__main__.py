"""`python -m loadtests.monitor agent|doctor ...`: the two commands without the main CLI."""

from __future__ import annotations

import argparse
import sys

from loadtests.monitor.cli import register

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mailswarm")
    register(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
