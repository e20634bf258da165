"""The grammar of each language version, and what its top level consists of."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

SUPPORTED_VERSIONS = (1,)

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
)

#: a text (its closing quote may be missing), a comment, or a bracket: for the scans that match
#: brackets without the parser, and must skip brackets inside texts and comments
TEXT_COMMENT_OR_BRACKET = re.compile(r'"(?:[^"\\\n]|\\.)*"?|#[^\n]*|[(){}]')


def grammar_text(version: int) -> str:
    """The Lark grammar of a language version, from the wheel or the source tree."""
    name = f"hydro_v{version}.lark"
    packaged = resources.files("hydro_rules").joinpath("grammar", name)
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    return (Path(__file__).resolve().parents[2] / "grammar" / name).read_text(encoding="utf-8")
