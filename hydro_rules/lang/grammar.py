"""The grammar of each language version, and what its top level consists of."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

#: the language versions this hydro-rules reads, oldest first, as the header writes them
SUPPORTED_VERSIONS = ("1", "1.1", "1.2")
#: a version -> the version its grammar extends (its own file holds only the additions, `%extend`)
BASE_VERSION = {"1.1": "1", "1.2": "1.1"}

#: keywords that start a top-level declaration
DECL_KEYWORDS = (
    "ruleset",
    "use",
    "metric",
    "channel",
    "site",
    "recipe",
    "profile",
    "alert",
    "guard",
    "machine",
    "rule",
    "test",
    "settings",
    "replace",
    "extend",
)

#: a text (its closing quote may be missing), a comment, or a bracket: for the scans that match
#: brackets without the parser, and must skip brackets inside texts and comments
TEXT_COMMENT_OR_BRACKET = re.compile(r'"(?:[^"\\\n]|\\.)*"?|#[^\n]*|[(){}]')


def version_key(version: str) -> tuple[int, ...]:
    """A version as numbers, for comparing: `1.1` -> (1, 1)."""
    return tuple(int(p) for p in str(version).split("."))


def grammar_text(version: int | str) -> str:
    """The Lark grammar of a language version (its base version's grammar, then its additions),
    from the wheel or the source tree."""
    version = str(version)
    name = f"hydro_v{version}.lark"
    packaged = resources.files("hydro_rules").joinpath("grammar", name)
    if packaged.is_file():
        own = packaged.read_text(encoding="utf-8")
    else:
        own = (Path(__file__).resolve().parents[2] / "grammar" / name).read_text(encoding="utf-8")
    base = BASE_VERSION.get(version)
    return own if base is None else grammar_text(base) + "\n" + own
