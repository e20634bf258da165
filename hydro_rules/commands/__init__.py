"""Subcommands of `hydro-rules`; each module has `register(subparsers)`."""
