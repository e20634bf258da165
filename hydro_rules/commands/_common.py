"""Argument types and loading shared by the subcommands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from ..cli import UsageError
from ..lang import render
from ..lang.loader import MANIFEST, Loaded, load
from ..twin import parse_duration


def duration(text: str) -> float:
    """An argparse type: `10m`, `36h`, `1h30m` -> seconds."""
    try:
        value = parse_duration(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 90s, 10m, 36h or 7d") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("a duration must be longer than 0")
    return value


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if v <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return v


def load_site(path: str, console: Console | None = None) -> Loaded:
    """A rule set with at least one zone, or a usage error; its errors are printed."""
    p = Path(path)
    if not (p / MANIFEST).is_file():
        raise UsageError(f"{path} is not a rule-set directory (no {MANIFEST})")
    loaded = load(p)
    if loaded.diags.errors or loaded.ruleset is None:
        render.to_human(loaded.diags.sorted(), loaded.sources, console or Console(stderr=True))
        raise UsageError(f"{path} has errors; run `hydro-rules check {path}`")
    if not loaded.ruleset.zones:
        raise UsageError(f"{path} declares no site with zones")
    return loaded


def zone_uids(loaded: Loaded, zone: str | None) -> list[str]:
    uids = [z.uid for z in loaded.ruleset.zones]
    if zone is None:
        return uids
    if zone not in uids:
        raise UsageError(f"no zone {zone!r}; zones: {', '.join(uids)}")
    return [zone]


def err_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True, file=sys.stderr)
