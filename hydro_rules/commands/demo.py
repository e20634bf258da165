"""`hydro-rules demo`: placeholder while issue 9 lands (replaced by its owner)."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("demo", help="(being built)")
    p.set_defaults(run=lambda args: 2)
