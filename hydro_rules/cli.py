"""The `hydro-rules` command. Thin: parses arguments and hands over to a subcommand.

Exit codes mean one thing each: 0 clean, 1 problems found (errors, failed
tests, files to reformat), 2 usage errors, 3 an internal error.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from . import __version__

#: modules under hydro_rules.commands, in the order `--help` lists them
COMMANDS = (
    "check",
    "fmt",
    "test",
    "dry_run",
    "explain",
    "safety",
    "diff",
    "replay",
    "export",
    "graph",
    "db",
    "serve",
    "run",
    "log",
    "nodes",
    "demo",
    "token",
    "aggregate",
)

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


class UsageError(Exception):
    """Bad arguments found after parsing (a missing path, a malformed fault)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hydro-rules",
        description="Check, format, test and simulate hydroponic rule sets; run the site service.",
    )
    parser.add_argument("--version", action="version", version=f"hydro-rules {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"hydro_rules.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except UsageError as e:
        print(f"hydro-rules {args.command}: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as e:  # a bug in hydro-rules: one line, never a traceback at a rule author
        if os.environ.get("HYDRO_RULES_TRACEBACK"):
            raise
        print(
            f"hydro-rules {args.command}: internal error ({type(e).__name__}: {e}); your files may be fine. "
            "Please report this with the files that caused it (HYDRO_RULES_TRACEBACK=1 shows the traceback).",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
