"""`hydro-rules graph RULESET`: the state machines as Mermaid (default) or Graphviz dot."""

from __future__ import annotations

from pathlib import Path

from ..cli import EXIT_OK, UsageError
from ..lang.graph import to_dot, to_mermaid
from ..lang.loader import MANIFEST, load
from ._common import err_console


def register(sub) -> None:
    p = sub.add_parser("graph", help="print the state machines as a Mermaid diagram (or Graphviz with --dot)")
    p.add_argument("site", metavar="RULESET", help="rule-set directory")
    p.add_argument("--dot", action="store_true", help="Graphviz dot instead of Mermaid")
    p.set_defaults(run=execute)


def execute(args) -> int:
    if not (Path(args.site) / MANIFEST).is_file():
        raise UsageError(f"{args.site} is not a rule-set directory (no {MANIFEST})")
    loaded = load(args.site)
    if loaded.ruleset is None or loaded.diags.errors:
        from ..lang import render

        render.to_human(loaded.diags.sorted(), loaded.sources, err_console())
        raise UsageError(f"{args.site} has errors; run `hydro-rules check {args.site}`")
    if not loaded.ruleset.machines:
        raise UsageError(f"{args.site} declares no state machine")
    print(to_dot(loaded.ruleset) if args.dot else to_mermaid(loaded.ruleset))
    return EXIT_OK
